#include "pals/profile/model_fit.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "pals/profile/power_model.hpp"
#include "profile_test_helpers.hpp"

namespace pals::profile {
namespace {

using testing::synthetic_profile;

const std::vector<double> kCaps = {200, 300, 400, 500, 600, 700};
const std::vector<int> kBatches = {1, 4, 16, 64};

TEST(IsotonicFitTest, PoolsAdjacentViolators) {
    EXPECT_EQ(isotonic_fit({1, 3, 2, 4}, true), (std::vector<double>{1, 2.5, 2.5, 4}));
    EXPECT_EQ(isotonic_fit({1, 2, 3}, true), (std::vector<double>{1, 2, 3}));
    EXPECT_EQ(isotonic_fit({3, 2, 1}, true), (std::vector<double>{2, 2, 2}));
    EXPECT_EQ(isotonic_fit({3, 4, 1}, false), (std::vector<double>{3.5, 3.5, 1}));
    EXPECT_TRUE(isotonic_fit({}, true).empty());
}

TEST(PchipTest, InterpolatesKnotsAndKeepsMonotonicity) {
    const std::vector<double> x = {0, 1, 2, 3, 10};
    const std::vector<double> y = {0, 0.1, 5, 5.2, 6};
    const Pchip p(x, y);
    for (std::size_t i = 0; i < x.size(); ++i) {
        EXPECT_DOUBLE_EQ(p(x[i]), y[i]);
    }
    double prev = p(0.0);
    for (double t = 0.0; t <= 10.0; t += 0.01) {
        const double v = p(t);
        EXPECT_GE(v, prev - 1e-12) << t;  // no wiggle between the steep and the flat parts
        EXPECT_LE(v, 6.0 + 1e-12);
        prev = v;
    }
    // Clamped outside; a single knot is a constant; two knots are a line.
    EXPECT_DOUBLE_EQ(p(-1.0), 0.0);
    EXPECT_DOUBLE_EQ(p(11.0), 6.0);
    EXPECT_DOUBLE_EQ(Pchip({1.0}, {3.0})(5.0), 3.0);
    EXPECT_DOUBLE_EQ(Pchip({0.0, 2.0}, {1.0, 3.0})(0.5), 1.5);
}

TEST(ModelFitTest, FitsEveryWorkloadAndQuantity) {
    auto fit = fit_profile(synthetic_profile(kCaps, kBatches, {"a", "b"}));
    ASSERT_OK(fit);
    ASSERT_EQ(fit->workloads.size(), 2u);
    EXPECT_EQ(fit->rows, kCaps.size() * kBatches.size() * 2);
    const WorkloadFit& w = fit->workloads[0];
    EXPECT_EQ(w.caps_w, kCaps);
    EXPECT_EQ(w.batch_caps, kBatches);
    for (Quantity q : kAllQuantities) {
        EXPECT_EQ(w.values[static_cast<std::size_t>(q)].size(), kCaps.size() * kBatches.size());
    }
    // The synthetic surface is smooth: cross-validated error is small.
    EXPECT_LT(w.cv[static_cast<std::size_t>(Quantity::kThroughput)].mape_pct, 1.0);
    EXPECT_LT(w.cv[static_cast<std::size_t>(Quantity::kPower)].mape_pct, 2.0);
    EXPECT_EQ(w.cv[0].points, static_cast<int>((kCaps.size() - 2) * kBatches.size()));
    EXPECT_EQ(w.cv[0].batch_points, static_cast<int>(kCaps.size() * (kBatches.size() - 2)));
    EXPECT_LT(w.cv_j_per_token.mape_pct, 2.0);

    // Only some workloads.
    FitOptions only_b;
    only_b.workloads = {"b"};
    auto b = fit_profile(synthetic_profile(kCaps, kBatches, {"a", "b"}), only_b);
    ASSERT_OK(b);
    ASSERT_EQ(b->workloads.size(), 1u);
    EXPECT_EQ(b->workloads[0].name, "b");
    only_b.workloads = {"zzz"};
    EXPECT_STATUS(fit_profile(synthetic_profile(kCaps, kBatches), only_b), StatusCode::kNotFound,
                  "no workload 'zzz'");
}

TEST(ModelFitTest, EnforcesMonotonicityInTheCapOnNoisyData) {
    ProfileTable t = synthetic_profile(kCaps, kBatches);
    std::mt19937_64 rng(3);
    std::normal_distribution<double> noise(0.0, 0.03);
    for (ProfileRow& r : t.rows) {
        r.throughput_tok_s *= 1.0 + noise(rng);
        r.power_w *= 1.0 + noise(rng);
        r.itl_p90_s *= 1.0 + noise(rng);
    }
    auto fit = fit_profile(t);
    ASSERT_OK(fit);
    auto model = PowerModel::parse(model_json(fit.value()), "noisy.json");
    ASSERT_OK(model);
    for (int batch : {1, 3, 4, 10, 16, 40, 64}) {
        Prediction prev = model->predict(200.0, batch).value();
        for (double cap = 201.0; cap <= 700.0; cap += 1.0) {
            const Prediction p = model->predict(cap, batch).value();
            EXPECT_GE(p.throughput_tok_s, prev.throughput_tok_s * (1 - 1e-12))
                << cap << " " << batch;
            EXPECT_GE(p.power_w, prev.power_w * (1 - 1e-12)) << cap << " " << batch;
            EXPECT_LE(p.itl_p90_s, prev.itl_p90_s * (1 + 1e-12)) << cap << " " << batch;
            prev = p;
        }
    }
    EXPECT_GT(
        fit->workloads[0].isotonic_max_adjust_pct[static_cast<std::size_t>(Quantity::kThroughput)],
        0.0);
}

TEST(ModelFitTest, InterpolatesBetweenGridPoints) {
    auto fit = fit_profile(synthetic_profile(kCaps, kBatches));
    ASSERT_OK(fit);
    auto model = PowerModel::parse(model_json(fit.value()), "m.json");
    ASSERT_OK(model);
    // At grid points: the measured values (no isotonic correction was needed).
    for (double cap : kCaps) {
        for (int batch : kBatches) {
            const ProfileRow truth = testing::synthetic_row("default", cap, batch);
            const Prediction p = model->predict(cap, batch).value();
            EXPECT_NEAR(p.throughput_tok_s, truth.throughput_tok_s, 1e-9 * truth.throughput_tok_s);
            EXPECT_NEAR(p.power_w, truth.power_w, 1e-9 * truth.power_w);
            EXPECT_NEAR(p.j_per_token, truth.j_per_token, 1e-9 * truth.j_per_token);
            EXPECT_EQ(p.batch_cap, batch);
            EXPECT_DOUBLE_EQ(p.power_cap_w, cap);
        }
    }
    // Between them: close to the underlying function, and between the neighbours.
    for (double cap : {250.0, 333.0, 555.0, 690.0}) {
        for (int batch : {2, 8, 16, 32}) {
            const ProfileRow truth = testing::synthetic_row("default", cap, batch);
            const Prediction p = model->predict(cap, batch).value();
            EXPECT_NEAR(p.throughput_tok_s / truth.throughput_tok_s, 1.0, 0.08)
                << cap << " " << batch;
            EXPECT_NEAR(p.power_w / truth.power_w, 1.0, 0.08) << cap << " " << batch;
        }
    }
}

TEST(ModelFitTest, CrossValidatedErrorOnASimulatedProfileIsUnderFivePercent) {
    auto fit = fit_profile(testing::small_sim_profile());
    ASSERT_OK(fit);
    const WorkloadFit& w = fit->workloads[0];
    EXPECT_FALSE(fit->shape.is_moe());
    EXPECT_LT(w.cv[static_cast<std::size_t>(Quantity::kThroughput)].mape_pct, 5.0);
    EXPECT_LT(w.cv[static_cast<std::size_t>(Quantity::kPower)].mape_pct, 5.0);
    EXPECT_LT(w.cv_j_per_token.mape_pct, 6.0);  // 5.4 % since the DVFS model (issue 11)
    EXPECT_LT(w.cv[static_cast<std::size_t>(Quantity::kItlP90)].mape_pct, 5.0);
    EXPECT_GT(w.cv[0].points, 0);
}

TEST(ModelFitTest, ModelJsonCarriesSchemaVersionShapeAndCv) {
    auto fit = fit_profile(synthetic_profile(kCaps, kBatches));
    ASSERT_OK(fit);
    const std::string json = model_json(fit.value());
    for (const char* key :
         {"\"schema_version\": 1", "\"model\"", "\"num_experts\"", "\"active_params_b\"", "\"cv\"",
          "\"mape_pct\"", "\"caps_w\"", "\"batch_caps\"", "\"throughput_tok_s\""}) {
        EXPECT_NE(json.find(key), std::string::npos) << key;
    }
}

// ---- bad input: clear errors naming file, line and column ---------------------------------

TEST(ModelFitBadInputTest, EmptyGrid) {
    ProfileTable t;
    t.source = "empty.csv";
    EXPECT_STATUS(fit_profile(t), StatusCode::kInvalidArgument,
                  "empty.csv: no data rows (an empty grid)");
}

TEST(ModelFitBadInputTest, SingleCap) {
    ProfileTable t = synthetic_profile({450}, kBatches);
    t.source = "one.csv";
    EXPECT_STATUS(fit_profile(t), StatusCode::kInvalidArgument,
                  "one.csv: workload 'default' has a single cap (450 W)");
}

TEST(ModelFitBadInputTest, NanInAFittedColumnNamesLineAndColumn) {
    const ProfileTable good = synthetic_profile(kCaps, kBatches);
    std::string csv = format_profile_csv(good);
    auto t = parse_profile_csv(csv, "nan.csv");
    ASSERT_OK(t);
    t->rows[4].itl_p90_s = std::nan("");
    EXPECT_STATUS(fit_profile(t.value()), StatusCode::kInvalidArgument,
                  "nan.csv:6: column 'itl_p90_s': nan");
    t->rows[4].itl_p90_s = 0.01;
    t->rows[7].power_w = -3.0;
    EXPECT_STATUS(fit_profile(t.value()), StatusCode::kInvalidArgument,
                  "nan.csv:9: column 'power_w': -3");
}

TEST(ModelFitBadInputTest, MissingGridPoint) {
    ProfileTable t = synthetic_profile(kCaps, kBatches);
    t.rows.erase(t.rows.begin() + 5);
    t.lines.erase(t.lines.begin() + 5);
    t.source = "holes.csv";
    EXPECT_STATUS(fit_profile(t), StatusCode::kInvalidArgument,
                  "holes.csv: workload 'default' lacks the point power_cap_w=700 batch_cap=1");
}

TEST(ModelFitBadInputTest, DifferentModelsOrGrids) {
    ProfileTable t = synthetic_profile(kCaps, kBatches);
    t.rows[3].shape.model = "other";
    EXPECT_STATUS(fit_profile(t), StatusCode::kInvalidArgument, "one model and layout per profile");
    ProfileTable a = synthetic_profile(kCaps, kBatches, {"a"});
    const ProfileTable b = synthetic_profile({200, 700}, kBatches, {"b"});
    for (const ProfileRow& r : b.rows) {
        a.append(r);
    }
    EXPECT_STATUS(fit_profile(a), StatusCode::kInvalidArgument, "fit them separately");
}

TEST(ModelFitBadInputTest, TooFewFolds) {
    FitOptions o;
    o.folds = 1;
    EXPECT_STATUS(fit_profile(synthetic_profile(kCaps, kBatches), o), StatusCode::kInvalidArgument,
                  "--folds");
}

}  // namespace
}  // namespace pals::profile
