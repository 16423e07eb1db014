#include "pals/control/scenario_power_model.hpp"

#include <gtest/gtest.h>

#include "status_assertions.hpp"

namespace pals::control {
namespace {

Scenario synthetic_scenario() {
    Scenario sc;
    sc.seed = 7;
    sc.workload.kind = workload::WorkloadKind::kSynthetic;
    sc.workload.input = workload::LengthDistribution::fixed(512);
    sc.workload.output = workload::LengthDistribution::fixed(64);
    return sc;
}

TEST(ScenarioPowerModelTest, SyntheticWorkloadBecomesAMixWithTheScenarioSeed) {
    Result<profile::WorkloadMix> mix = scenario_workload_mix(synthetic_scenario());
    ASSERT_OK(mix);
    EXPECT_EQ(mix->name, "scenario");
    EXPECT_EQ(mix->seed, 7u);
    EXPECT_DOUBLE_EQ(mix->mean_input_tokens(), 512.0);
    EXPECT_DOUBLE_EQ(mix->mean_output_tokens(), 64.0);
    EXPECT_NE(mix->spec.find("in="), std::string::npos);
}

TEST(ScenarioPowerModelTest, ANamedModelFileIsLoadedNotProfiled) {
    Scenario sc = synthetic_scenario();
    sc.power_model = "/nonexistent/pals/model.json";
    profile::ModelCacheOptions cache;
    bool profiled = false;
    cache.on_profile = [&profiled](const sim::NodeConfig&, const std::filesystem::path&) {
        profiled = true;
    };
    Result<std::shared_ptr<const profile::PowerModel>> model = scenario_power_model(sc, cache);
    EXPECT_FALSE(model.is_ok());
    EXPECT_NE(model.status().message().find("/nonexistent/pals/model.json"), std::string::npos)
        << model.status().message();
    EXPECT_FALSE(profiled);
}

}  // namespace
}  // namespace pals::control
