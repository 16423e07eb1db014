#include "pals/sim/simulated_node.hpp"

#include <gtest/gtest.h>

#include "test_models.hpp"

namespace pals::sim {
namespace {

std::unique_ptr<SimulatedNode> make_node(int replicas) {
    NodeConfig node;
    node.model = testing::llama8b();
    node.gpu = testing::h100();
    node.replicas = replicas;
    node.engine.max_num_seqs = 64;
    auto created = SimulatedNode::create(node, testing::closed_loop(2000, 500, 400));
    EXPECT_TRUE(created.is_ok()) << created.status().message();
    return std::move(created).value();
}

TEST(SimulatedNodeTest, ClockSleepAdvancesTheSimulation) {
    auto node = make_node(1);
    EXPECT_DOUBLE_EQ(node->clock().now().count(), 0.0);
    node->clock().sleep_until(Seconds{2.0});
    EXPECT_DOUBLE_EQ(node->clock().now().count(), 2.0);
    auto snap = node->engine(0).snapshot();
    ASSERT_TRUE(snap.is_ok());
    EXPECT_GT(snap->generation_tokens, 0.0);
    EXPECT_EQ(snap->running, 64);
}

TEST(SimulatedNodeTest, GpuEnergyFollowsTheSimulation) {
    auto node = make_node(2);
    ASSERT_EQ(node->gpus().device_count().value(), 2);
    node->clock().sleep_until(Seconds{5.0});
    auto samples = node->gpus().sample_all();
    ASSERT_TRUE(samples.is_ok());
    double energy = 0.0;
    for (const auto& s : samples.value()) {
        EXPECT_GT(s.power_w, 300.0);
        energy += s.energy_j;
    }
    EXPECT_NEAR(energy, node->simulator().report().energy_j, 1e-6 * energy);
}

TEST(SimulatedNodeTest, BackendPowerLimitCapsTheSimulatedGpu) {
    auto node = make_node(1);
    node->clock().sleep_until(Seconds{3.0});
    ASSERT_TRUE(node->gpus().set_power_limit(0, 250.0).is_ok());
    node->clock().sleep_until(Seconds{4.0});  // the step in flight at 3 s ran under the old limit
    const double before = node->gpus().sample(0).value().energy_j;
    node->clock().sleep_until(Seconds{9.0});
    const auto after = node->gpus().sample(0).value();
    EXPECT_LE((after.energy_j - before) / 5.0, 250.0 + 1e-6);
    EXPECT_LT(after.sm_clock_mhz, 1980.0);
    EXPECT_TRUE(after.is_power_capped());
}

TEST(SimulatedNodeTest, EngineWindowGivesRatesAndQuantiles) {
    auto node = make_node(1);
    node->clock().sleep_until(Seconds{5.0});
    auto a = node->engine(0).snapshot().value();
    node->clock().sleep_until(Seconds{15.0});
    auto b = node->engine(0).snapshot().value();
    auto w = engine::window_between(a, b);
    ASSERT_TRUE(w.is_ok()) << w.status().message();
    EXPECT_NEAR(w->duration_s, 10.0, 1e-9);
    EXPECT_GT(w->generation_tok_s(), 1000.0);
    const double p50 = w->itl_s.quantile(0.5);
    EXPECT_GT(p50, 0.005);
    EXPECT_LT(p50, 0.05);
}

TEST(SimulatedNodeTest, BatchCapReachesTheEngine) {
    auto node = make_node(1);
    ASSERT_TRUE(node->engine(0).set_batch_cap(16).is_ok());
    node->clock().sleep_until(Seconds{60.0});
    EXPECT_LE(node->engine(0).snapshot().value().running, 16);
    EXPECT_EQ(node->engine(0).max_batch_cap(), 64);
}

}  // namespace
}  // namespace pals::sim
