#include "pals/profile/power_model.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>

#include "pals/profile/model_fit.hpp"
#include "profile_test_helpers.hpp"

namespace pals::profile {
namespace {

const std::vector<double> kCaps = {200, 300, 400, 500, 600, 700};
const std::vector<int> kBatches = {1, 4, 16, 64, 256};

PowerModel synthetic_model() {
    auto fit = fit_profile(testing::synthetic_profile(kCaps, kBatches, {"chat", "code"}));
    EXPECT_TRUE(fit.is_ok()) << fit.status().message();
    auto model = PowerModel::parse(model_json(fit.value()), "synthetic.json");
    EXPECT_TRUE(model.is_ok()) << model.status().message();
    return model.value();
}

bool meets(const Prediction& p, const Query& q) {
    return (q.demand_tok_s <= 0.0 || p.throughput_tok_s >= q.demand_tok_s) &&
           (q.max_itl_s <= 0.0 || p.itl_p90_s <= q.max_itl_s) &&
           (q.max_power_w <= 0.0 || p.power_w <= q.max_power_w) &&
           (q.max_power_cap_w <= 0.0 || p.power_cap_w <= q.max_power_cap_w);
}

/// The lowest J/token meeting the query over the same grid best_point searches, by brute force.
std::optional<Prediction> brute_force(const PowerModel& m, const Query& q) {
    std::optional<Prediction> best;
    for (int b : m.batch_caps()) {
        for (double cap = m.cap_min_w(); cap <= m.cap_max_w() + 1e-9; cap += m.query_cap_step_w()) {
            const Prediction p = m.predict(std::min(cap, m.cap_max_w()), b).value();
            if (meets(p, q) && (!best || p.j_per_token < best->j_per_token)) {
                best = p;
            }
        }
    }
    return best;
}

TEST(PowerModelTest, DescribesItsGrid) {
    const PowerModel m = synthetic_model();
    EXPECT_EQ(m.workloads(), (std::vector<std::string>{"chat", "code"}));
    EXPECT_DOUBLE_EQ(m.cap_min_w(), 200.0);
    EXPECT_DOUBLE_EQ(m.cap_max_w(), 700.0);
    EXPECT_EQ(m.batch_caps(), kBatches);
    EXPECT_EQ(m.caps_w(), kCaps);
    EXPECT_EQ(m.gpus_per_group(), 1);
    EXPECT_EQ(m.shape().model, "test-model");
}

TEST(PowerModelTest, PredictChecksRangesAndWorkloads) {
    const PowerModel m = synthetic_model();
    EXPECT_OK(m.predict(200.0, 1));
    EXPECT_OK(m.predict(700.0, 256, "code"));
    EXPECT_OK(m.predict(456.7, 100));
    EXPECT_STATUS(m.predict(199.0, 4), StatusCode::kOutOfRange,
                  "outside the profiled range 200-700 W");
    EXPECT_STATUS(m.predict(701.0, 4), StatusCode::kOutOfRange, "cap 701 W");
    EXPECT_STATUS(m.predict(std::nan(""), 4), StatusCode::kOutOfRange, "cap");
    EXPECT_STATUS(m.predict(300.0, 257), StatusCode::kOutOfRange, "batch cap 257");
    EXPECT_STATUS(m.predict(300.0, 0), StatusCode::kOutOfRange, "batch cap 0");
    EXPECT_STATUS(m.predict(300.0, 4, "nope"), StatusCode::kNotFound, "workload 'nope'");
    // "" is the first workload.
    EXPECT_DOUBLE_EQ(m.predict(300.0, 4).value().power_w,
                     m.predict(300.0, 4, "chat").value().power_w);
}

TEST(PowerModelTest, BatchInterpolationIsMonotoneBetweenProfiledBatches) {
    const PowerModel m = synthetic_model();
    double prev = 0.0;
    for (int b = 1; b <= 256; ++b) {
        const double t = m.predict(500.0, b).value().throughput_tok_s;
        EXPECT_GE(t, prev) << b;
        prev = t;
    }
}

TEST(PowerModelTest, PredictAtClockFindsTheCapThatRunsThatClock) {
    const PowerModel m = synthetic_model();
    const Prediction top = m.predict(700.0, 64).value();
    const Prediction bottom = m.predict(200.0, 64).value();
    ASSERT_LT(bottom.sm_clock_mhz, top.sm_clock_mhz);
    // A clock between the lowest and the highest cap's: the cap where the model runs it.
    const double mid_clock = 0.5 * (bottom.sm_clock_mhz + top.sm_clock_mhz);
    const Prediction at = m.predict_at_clock(mid_clock, 64, 700.0).value();
    EXPECT_NEAR(at.sm_clock_mhz, mid_clock, 1.0);
    EXPECT_GT(at.power_cap_w, 200.0);
    EXPECT_LT(at.power_cap_w, 700.0);
    EXPECT_LT(at.throughput_tok_s, top.throughput_tok_s);
    EXPECT_GT(at.itl_p90_s, top.itl_p90_s) << "a slower clock, a longer ITL";
    // At or above the clock of the cap given: that cap's prediction.
    const Prediction capped = m.predict_at_clock(top.sm_clock_mhz + 100.0, 64, 450.0).value();
    EXPECT_DOUBLE_EQ(capped.power_cap_w, 450.0);
    // Below the lowest cap's clock: the lowest cap's.
    EXPECT_DOUBLE_EQ(m.predict_at_clock(1.0, 64, 700.0).value().power_cap_w, 200.0);
    // No clock reading: the cap given.
    EXPECT_DOUBLE_EQ(m.predict_at_clock(0.0, 64, 450.0).value().power_cap_w, 450.0);
    EXPECT_STATUS(m.predict_at_clock(mid_clock, 64, 700.0, "nope"), StatusCode::kNotFound,
                  "workload 'nope'");
}

TEST(PowerModelTest, BestPointWithoutConstraintsIsTheMostEfficientPoint) {
    const PowerModel m = synthetic_model();
    const QueryResult r = m.best_point(Query{});
    ASSERT_TRUE(r.feasible);
    const auto best = brute_force(m, Query{});
    ASSERT_TRUE(best);
    EXPECT_DOUBLE_EQ(r.point.j_per_token, best->j_per_token);
    EXPECT_EQ(r.point.batch_cap, best->batch_cap);
}

TEST(PowerModelTest, BestPointMeetsEveryConstraintAndMatchesBruteForce) {
    const PowerModel m = synthetic_model();
    std::mt19937_64 rng(11);
    std::uniform_real_distribution<double> demand(0.0, 4500.0);
    std::uniform_real_distribution<double> itl(0.002, 0.2);
    std::uniform_real_distribution<double> power(100.0, 800.0);
    std::uniform_real_distribution<double> cap(150.0, 750.0);
    std::uniform_real_distribution<double> coin(0.0, 1.0);
    int feasible = 0;
    for (int i = 0; i < 300; ++i) {
        Query q;
        q.demand_tok_s = coin(rng) < 0.8 ? demand(rng) : 0.0;
        q.max_itl_s = coin(rng) < 0.6 ? itl(rng) : 0.0;
        q.max_power_w = coin(rng) < 0.6 ? power(rng) : 0.0;
        q.max_power_cap_w = coin(rng) < 0.4 ? cap(rng) : 0.0;
        const QueryResult r = m.best_point(q);
        const auto best = brute_force(m, q);
        ASSERT_EQ(r.feasible, best.has_value()) << i;
        if (!r.feasible) {
            continue;
        }
        ++feasible;
        EXPECT_TRUE(meets(r.point, q)) << i;
        EXPECT_NEAR(r.point.j_per_token, best->j_per_token, 1e-9 * best->j_per_token) << i;
        // The answer is a model prediction at that point.
        const Prediction p = m.predict(r.point.power_cap_w, r.point.batch_cap).value();
        EXPECT_DOUBLE_EQ(p.throughput_tok_s, r.point.throughput_tok_s);
    }
    EXPECT_GT(feasible, 100);
}

TEST(PowerModelTest, InfeasibleQueriesGetTheBestEffort) {
    const PowerModel m = synthetic_model();
    // Demand beyond the node: the highest throughput within the power bound.
    Query q;
    q.demand_tok_s = 1e9;
    q.max_power_w = 400.0;
    QueryResult r = m.best_point(q);
    EXPECT_FALSE(r.feasible);
    EXPECT_LE(r.point.power_w, 400.0);
    double best_t = 0.0;
    for (int b : m.batch_caps()) {
        for (double cap = 200.0; cap <= 700.0; cap += 1.0) {
            const Prediction p = m.predict(cap, b).value();
            if (p.power_w <= 400.0) {
                best_t = std::max(best_t, p.throughput_tok_s);
            }
        }
    }
    EXPECT_NEAR(r.point.throughput_tok_s, best_t, 1e-9 * best_t);
    // A power bound nothing meets: the lowest-power point.
    q = Query{};
    q.max_power_w = 1.0;
    r = m.best_point(q);
    EXPECT_FALSE(r.feasible);
    EXPECT_DOUBLE_EQ(r.point.power_cap_w, 200.0);
    EXPECT_EQ(r.point.batch_cap, 1);
    // A cap bound below the range behaves the same.
    q = Query{};
    q.max_power_cap_w = 100.0;
    r = m.best_point(q);
    EXPECT_FALSE(r.feasible);
    EXPECT_DOUBLE_EQ(r.point.power_cap_w, 200.0);
    // An unknown workload: infeasible, empty.
    EXPECT_FALSE(m.best_point(Query{}, "nope").feasible);
}

TEST(PowerModelTest, CopiesShareTheModel) {
    const PowerModel a = synthetic_model();
    const PowerModel b = a;  // NOLINT(performance-unnecessary-copy-initialization)
    EXPECT_DOUBLE_EQ(a.best_point(Query{}).point.j_per_token,
                     b.best_point(Query{}).point.j_per_token);
}

TEST(PowerModelTest, LoadReportsFileAndField) {
    const auto dir = testing::temp_dir("model");
    EXPECT_STATUS(PowerModel::load(dir / "none.json"), StatusCode::kNotFound, "none.json");
    EXPECT_STATUS(PowerModel::parse("{", "m.json"), StatusCode::kInvalidArgument,
                  "m.json: not valid JSON");
    EXPECT_STATUS(PowerModel::parse(std::string(100000, '[') + std::string(100000, ']'), "m.json"),
                  StatusCode::kInvalidArgument, "m.json: not valid JSON: JSON nested deeper than");
    EXPECT_STATUS(PowerModel::parse("{}", "m.json"), StatusCode::kInvalidArgument,
                  "m.json: (top level): missing field 'schema_version'");
    EXPECT_STATUS(PowerModel::parse(R"({"schema_version": 99})", "m.json"),
                  StatusCode::kInvalidArgument, "schema_version 99 is not supported");

    auto fit = fit_profile(testing::synthetic_profile(kCaps, kBatches));
    ASSERT_OK(fit);
    const std::string good = model_json(fit.value());
    std::string bad = good;
    const std::size_t at = bad.find("\"power_w\"");
    bad.replace(at, 9, "\"power_x\"");
    EXPECT_STATUS(PowerModel::parse(bad, "m.json"), StatusCode::kInvalidArgument,
                  "m.json: workloads[0].quantities: missing field 'power_w'");
    std::string neg = good;
    const std::size_t v = neg.find("\"values\"", neg.find("\"power_w\""));
    const std::size_t num = neg.find_first_of("0123456789", v);
    neg.insert(num, "-");
    EXPECT_STATUS(PowerModel::parse(neg, "m.json"), StatusCode::kInvalidArgument,
                  "workloads[0].quantities.power_w.values[0][0]: must be > 0");
    std::filesystem::remove_all(dir);
}

TEST(PowerModelTest, SimulatedModelAnswersTheControllersQuestion) {
    auto fit = fit_profile(testing::small_sim_profile());
    ASSERT_OK(fit);
    auto model = PowerModel::parse(model_json(fit.value()), "sim.json");
    ASSERT_OK(model);
    // Meet 6000 tok/s with ITL p90 <= 50 ms on the least energy.
    Query q;
    q.demand_tok_s = 6000.0;
    q.max_itl_s = 0.05;
    const QueryResult r = model->best_point(q);
    ASSERT_TRUE(r.feasible);
    EXPECT_GE(r.point.throughput_tok_s, 6000.0);
    EXPECT_LE(r.point.itl_p90_s, 0.05);
    // The cheapest point at this demand is neither the lowest nor the highest cap.
    EXPECT_GT(r.point.power_cap_w, 200.0);
    EXPECT_LT(r.point.power_cap_w, 700.0);
    // A tighter power bound is met (feasibly or as the best effort), never exceeded.
    q.max_power_w = r.point.power_w - 50.0;
    const QueryResult tighter = model->best_point(q);
    EXPECT_LE(tighter.point.power_w, q.max_power_w + 1e-9);
    EXPECT_LT(tighter.point.throughput_tok_s, 6000.0 + 1e-9);
    // A lower demand never costs more energy per token.
    q = Query{};
    q.demand_tok_s = 3000.0;
    q.max_itl_s = 0.05;
    EXPECT_LE(model->best_point(q).point.j_per_token, r.point.j_per_token);
}

}  // namespace
}  // namespace pals::profile
