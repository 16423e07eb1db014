#include "pals/profile/pareto.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "pals/profile/model_fit.hpp"
#include "profile_test_helpers.hpp"

namespace pals::profile {
namespace {

Prediction point(double j, double t, double itl, double cap = 300.0, int batch = 8) {
    Prediction p;
    p.j_per_token = j;
    p.throughput_tok_s = t;
    p.itl_p90_s = itl;
    p.power_cap_w = cap;
    p.batch_cap = batch;
    p.power_w = j * t;
    return p;
}

TEST(ParetoFrontierTest, DominanceIsOnAllThreeObjectives) {
    const Prediction a = point(0.1, 1000, 0.02);
    EXPECT_TRUE(dominates(a, point(0.2, 1000, 0.02)));   // more energy
    EXPECT_TRUE(dominates(a, point(0.1, 900, 0.02)));    // less throughput
    EXPECT_TRUE(dominates(a, point(0.1, 1000, 0.03)));   // more latency
    EXPECT_FALSE(dominates(a, a));                       // equal is not better
    EXPECT_FALSE(dominates(a, point(0.2, 1100, 0.02)));  // a trade-off
    EXPECT_FALSE(dominates(a, point(0.2, 1000, 0.01)));
}

TEST(ParetoFrontierTest, ToleranceIgnoresDifferencesWithinTheModelError) {
    const Prediction cheap = point(0.10, 1000, 0.020);
    const Prediction pricey = point(0.12, 1004, 0.0199);  // +20 % energy for +0.4 % throughput
    EXPECT_FALSE(dominates(cheap, pricey));
    EXPECT_TRUE(dominates(cheap, pricey, {0.01, 0.01}));
    EXPECT_FALSE(dominates(pricey, cheap, {0.01, 0.01}));
}

TEST(ParetoFrontierTest, NearEqualLatencyDoesNotKeepAnExpensivePoint) {
    // The case of issue 15: a point 25 % cheaper with 1.2 % more ITL p90 and the same
    // throughput. Under one 1 % tolerance the pricier point stayed on the frontier.
    const Prediction cheap = point(0.075, 2650, 0.03276);
    const Prediction pricey = point(0.100, 2655, 0.03237);
    EXPECT_FALSE(dominates(cheap, pricey, {0.01, 0.01}));
    EXPECT_TRUE(dominates(cheap, pricey, kDefaultParetoTolerance));
    EXPECT_FALSE(dominates(pricey, cheap, kDefaultParetoTolerance));
    // A latency gain beyond the ITL tolerance is a real choice and keeps the point.
    const Prediction faster = point(0.100, 2655, 0.030);  // 9 % lower ITL p90
    EXPECT_FALSE(dominates(cheap, faster, kDefaultParetoTolerance));
    // Points equal within the tolerances on all three objectives: the cheaper stands for both.
    const Prediction twin = point(0.1015, 2652, 0.03240);
    EXPECT_TRUE(dominates(pricey, twin, kDefaultParetoTolerance));
    EXPECT_FALSE(dominates(twin, pricey, kDefaultParetoTolerance));
    const std::vector<Prediction> pts = {pricey, cheap, twin};
    EXPECT_EQ(pareto_front(pts, {0.01, 0.01}), (std::vector<std::size_t>{1, 0}));  // by tok/s
    EXPECT_EQ(pareto_front(pts, kDefaultParetoTolerance), (std::vector<std::size_t>{1}));
    const std::vector<Prediction> with_faster = {pricey, cheap, twin, faster};
    EXPECT_EQ(pareto_front(with_faster, kDefaultParetoTolerance), (std::vector<std::size_t>{1, 3}));
}

TEST(ParetoFrontierTest, DefaultToleranceMakesAGridFrontierReadable) {
    // A grid shaped like a memory-bound decode: per batch cap, caps above the knee buy a little
    // throughput and ITL for much more energy.
    std::vector<Prediction> pts;
    for (int batch : {16, 64, 256}) {
        for (double cap : {300.0, 400.0, 500.0, 600.0, 700.0}) {
            const double speed = 1.0 - 0.25 * std::exp(-(cap - 300.0) / 60.0);  // saturates
            const double tput = 40.0 * batch * speed / (1.0 + batch / 200.0);
            const double power = 0.6 * cap + 200.0;
            pts.push_back(
                point(power / tput, tput, 0.02 * (1.0 + batch / 200.0) / speed, cap, batch));
        }
    }
    // Strictly, every cap above the lowest trades energy for speed, however little: 12 of 15.
    EXPECT_EQ(pareto_front(pts).size(), 12u);
    const std::vector<std::size_t> readable = pareto_front(pts, kDefaultParetoTolerance);
    EXPECT_LE(readable.size(), 6u);
    EXPECT_GE(readable.size(), 3u);  // one point per batch cap at least: those are real choices
    for (std::size_t i : readable) {
        // 600 and 700 W buy under 1 % throughput and ITL for 10-20 % more energy.
        EXPECT_LE(pts[i].power_cap_w, 500.0) << pts[i].batch_cap;
    }
}

TEST(ParetoFrontierTest, DropsDominatedPoints) {
    const std::vector<Prediction> pts = {point(0.10, 1000, 0.02), point(0.20, 2000, 0.03),
                                         point(0.25, 1500, 0.04), point(0.05, 500, 0.01),
                                         point(0.10, 1000, 0.02), point(0.30, 2500, 0.02)};
    const std::vector<std::size_t> front = pareto_front(pts);
    // 2 is dominated by 1; 4 duplicates 0 (both kept); 5 dominates nothing it does not trade with.
    EXPECT_EQ(front, (std::vector<std::size_t>{3, 0, 4, 1, 5}));
    // Every point off the front is dominated by one on it; none on it is dominated.
    for (std::size_t i = 0; i < pts.size(); ++i) {
        const bool on = std::find(front.begin(), front.end(), i) != front.end();
        bool dominated = false;
        for (std::size_t j : front) {
            dominated = dominated || dominates(pts[j], pts[i]);
        }
        EXPECT_EQ(on, !dominated) << i;
    }
    EXPECT_TRUE(pareto_front(std::vector<Prediction>{}).empty());
}

TEST(ParetoFrontierTest, EnergyThroughputStaircase) {
    const std::vector<Prediction> pts = {point(0.10, 1000, 0.02), point(0.20, 2000, 0.03),
                                         point(0.25, 1500, 0.04), point(0.05, 500, 0.01),
                                         point(0.08, 900, 0.5)};
    EXPECT_EQ(energy_throughput_front(pts),
              (std::vector<std::size_t>{3, 4, 0, 1}));  // 2 costs more than 1
}

PowerModel sim_model() {
    auto fit = fit_profile(testing::small_sim_profile());
    EXPECT_TRUE(fit.is_ok()) << fit.status().message();
    return PowerModel::parse(model_json(fit.value()), "sim.json").value();
}

TEST(ParetoFrontierTest, FrontierOfAModelRespectsConstraints) {
    const PowerModel m = sim_model();
    FrontierConstraints c;
    c.max_itl_s = 0.03;
    c.max_power_w = 550.0;
    auto f = compute_frontier(m, "", c);
    ASSERT_OK(f);
    EXPECT_EQ(f->workload, "default");
    EXPECT_EQ(f->points.size(), m.caps_w().size() * m.batch_caps().size());
    ASSERT_FALSE(f->front.empty());
    std::size_t infeasible = 0;
    for (std::size_t i = 0; i < f->points.size(); ++i) {
        const Prediction& p = f->points[i];
        EXPECT_EQ(f->feasible[i], p.itl_p90_s <= 0.03 && p.power_w <= 550.0);
        infeasible += f->feasible[i] ? 0 : 1;
    }
    EXPECT_GT(infeasible, 0u);
    for (std::size_t i : f->front) {
        EXPECT_TRUE(f->feasible[i]);
        for (std::size_t j = 0; j < f->points.size(); ++j) {
            if (f->feasible[j]) {
                EXPECT_FALSE(dominates(f->points[j], f->points[i], c.tolerance))
                    << j << " dominates " << i;
            }
        }
    }
    for (std::size_t k = 1; k < f->front.size(); ++k) {
        EXPECT_LE(f->points[f->front[k - 1]].throughput_tok_s,
                  f->points[f->front[k]].throughput_tok_s);
    }
    // The most efficient feasible point is on the frontier and is what best_point finds on
    // the profiled caps.
    double best = 1e9;
    for (std::size_t i = 0; i < f->points.size(); ++i) {
        if (f->feasible[i]) {
            best = std::min(best, f->points[i].j_per_token);
        }
    }
    bool found = false;
    for (std::size_t i : f->front) {
        found = found || f->points[i].j_per_token == best;
    }
    EXPECT_TRUE(found);
    // A finer cap grid gives more candidates.
    auto fine = compute_frontier(m, "", c, 25.0);
    ASSERT_OK(fine);
    EXPECT_EQ(fine->points.size(), 21u * m.batch_caps().size());
    EXPECT_STATUS(compute_frontier(m, "nope", c), StatusCode::kNotFound, "nope");
    c.max_itl_s = -1.0;
    EXPECT_STATUS(compute_frontier(m, "", c), StatusCode::kInvalidArgument, ">= 0");
}

}  // namespace
}  // namespace pals::profile
