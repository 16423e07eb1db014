#include "pals/control/daemon.hpp"

#include <gtest/gtest.h>

#include "pals/control/policies.hpp"
#include "pals/sim/simulated_node.hpp"

namespace pals::control {
namespace {

std::unique_ptr<sim::SimulatedNode> make_node() {
    sim::NodeConfig node;
    node.model = model::load_model_spec(std::string(PALS_SHARED_DIR) + "/models/meta-llama__Llama-3.1-8B-Instruct.json").value();
    node.gpu = sim::find_gpu_spec("H100-SXM").value();
    node.replicas = 2;
    node.engine.max_num_seqs = 256;
    workload::WorkloadSpec w;
    w.kind = workload::WorkloadKind::kSynthetic;
    w.rate_rps = 20.0;
    w.duration_s = 120.0;
    w.input = workload::LengthDistribution::fixed(500);
    w.output = workload::LengthDistribution::fixed(200);
    return sim::SimulatedNode::create(node, workload::build_workload(w).value()).value();
}

TEST(DaemonTest, AppliesAnApiBudgetWithinTwoPeriodsAndRestoresOnExit) {
    auto node = make_node();
    api::StateStore store;
    power::SavedControls saved(::testing::TempDir() + "/daemon_saved.json");
    ASSERT_TRUE(node->gpus().set_power_limit(1, 650.0).is_ok());  // an operator's setting to restore
    std::vector<engine::ServingEngine*> engines = {&node->engine(0), &node->engine(1)};
    ControllerConfig config;
    config.budget = BudgetSchedule(1400.0);
    Daemon daemon(node->clock(), node->gpus(), engines, make_cap_only_policy(), config, store, saved);
    std::atomic<bool> stop{false};
    ASSERT_TRUE(daemon.run(stop, Seconds{20.0}).is_ok());
    store.request_budget({{{0.0, 600.0}}});
    ASSERT_TRUE(daemon.run(stop, Seconds{40.0}).is_ok());
    auto state = store.latest();
    ASSERT_TRUE(state);
    EXPECT_DOUBLE_EQ(state->budget_w, 600.0);
    EXPECT_LE(state->power_w, 600.0 + 1e-6);
    EXPECT_DOUBLE_EQ(state->groups.at(0).cap_w, 300.0);
    EXPECT_EQ(state->budget_updates_total, 1U);
    EXPECT_GT(state->generation_tokens, 0.0);
    // Saved limits are back after run() returns.
    EXPECT_DOUBLE_EQ(node->gpus().power_limit_w(1).value(), 650.0);
    EXPECT_DOUBLE_EQ(node->gpus().power_limit_w(0).value(), 700.0);
}

TEST(DaemonTest, BackendFailureDegradesAndRestores) {
    auto node = make_node();
    api::StateStore store;
    power::SavedControls saved(::testing::TempDir() + "/daemon_saved2.json");
    std::vector<engine::ServingEngine*> engines = {&node->engine(0), &node->engine(1)};
    ControllerConfig config;
    config.budget = BudgetSchedule(1000.0);
    Daemon daemon(node->clock(), node->gpus(), engines, make_cap_only_policy(), config, store, saved);
    std::atomic<bool> stop{false};
    ASSERT_TRUE(daemon.run(stop, Seconds{5.0}).is_ok());
    node->gpus().set_writable(false);  // writes now fail as without root
    store.request_budget({{{0.0, 600.0}}});
    const Status s = daemon.run(stop, Seconds{10.0});
    EXPECT_EQ(s.code(), StatusCode::kPermissionDenied) << s.message();
    auto state = store.latest();
    ASSERT_TRUE(state);
    EXPECT_TRUE(state->degraded);
    EXPECT_GE(state->errors_total, 1U);
}

}  // namespace
}  // namespace pals::control
