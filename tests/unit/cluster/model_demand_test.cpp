// A demand curve from a fitted model (docs/cluster.md): what each node budget serves within the
// ITL bound, up to the demand.
#include <gtest/gtest.h>

#include <fstream>

#include "pals/cluster/daemon_port.hpp"
#include "pals/profile/model_fit.hpp"
#include "unit/profile/profile_test_helpers.hpp"

namespace pals::cluster {
namespace {

std::shared_ptr<const profile::PowerModel> synthetic_model() {
    const profile::ProfileTable table =
        profile::testing::synthetic_profile({200, 300, 400, 500, 600, 700}, {8, 32, 128, 256});
    auto fit = profile::fit_profile(table);
    EXPECT_TRUE(fit.is_ok()) << fit.status().message();
    auto model = profile::PowerModel::parse(profile::model_json(fit.value()), "synthetic");
    EXPECT_TRUE(model.is_ok()) << model.status().message();
    return std::make_shared<const profile::PowerModel>(std::move(model).value());
}

TEST(ModelDemandCurveTest, MoreWattsServeMoreUntilTheDemand) {
    DemandModel m{synthetic_model(), "", 0.2};
    // Two one-GPU groups: a busy one and a light one.
    const std::vector<GroupDemand> groups = {{1, 3500.0}, {1, 300.0}};
    const std::vector<DemandPoint> c = model_demand_curve(m, groups, 400.0, 1400.0);
    ASSERT_EQ(c.size(), 8U);
    EXPECT_EQ(c.front().power_w, 400.0);
    EXPECT_EQ(c.back().power_w, 1400.0);
    for (std::size_t i = 1; i < c.size(); ++i) {
        EXPECT_GE(c[i].tok_s, c[i - 1].tok_s - 1e-6) << i;
        EXPECT_LE(c[i].tok_s, 3800.0 + 1e-6);
    }
    EXPECT_GT(c.back().tok_s, c.front().tok_s);
    EXPECT_LT(c.back().qos_violation_rate, c.front().qos_violation_rate);
}

TEST(ModelDemandCurveTest, NoDemandIsFlatZero) {
    DemandModel m{synthetic_model(), "", 0.2};
    for (const DemandPoint& p : model_demand_curve(m, {{1, 0.0}}, 200.0, 700.0)) {
        EXPECT_EQ(p.tok_s, 0.0);
        EXPECT_EQ(p.qos_violation_rate, 0.0);
    }
}

}  // namespace
}  // namespace pals::cluster
