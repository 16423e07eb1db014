#include "pals/sim/cost_model.hpp"

#include <gtest/gtest.h>

#include "test_models.hpp"

namespace pals::sim {
namespace {

StepShape decode(int batch, double ctx) {
    StepShape s;
    s.decode_seqs = batch;
    s.logits = batch;
    s.decode_ctx_full = batch * ctx;
    return s;
}

double weight_bytes(const StepWork& w) {
    double b = 0.0;
    for (int i = 0; i < w.num_kernels - 1; ++i) {  // the last kernel is attention
        b += w.kernels[static_cast<std::size_t>(i)].bytes;
    }
    return b;
}

TEST(StepCostModelTest, DistinctExpertsFollowTheClosedForm) {
    auto cost = StepCostModel::create(testing::mixtral(), testing::h100(), {2, 1, 0.0});
    ASSERT_TRUE(cost.is_ok()) << cost.status().message();
    // E (1 - (1 - k/E)^B) with E = 8, k = 2.
    EXPECT_NEAR(cost->distinct_experts(1), 2.0, 1e-9);
    EXPECT_NEAR(cost->distinct_experts(4), 8.0 * (1.0 - std::pow(0.75, 4)), 1e-9);
    EXPECT_NEAR(cost->distinct_experts(64), 8.0, 1e-6);
}

TEST(StepCostModelTest, SkewTouchesFewerExperts) {
    auto uniform = StepCostModel::create(testing::qwen3_moe(), testing::h100(), {1, 1, 0.0});
    auto skewed = StepCostModel::create(testing::qwen3_moe(), testing::h100(), {1, 1, 1.0});
    ASSERT_TRUE(uniform.is_ok() && skewed.is_ok());
    EXPECT_NEAR(uniform->distinct_experts(8), 51.6, 0.2);  // research notes table 4.1
    EXPECT_LT(skewed->distinct_experts(8), uniform->distinct_experts(8) - 5.0);
}

TEST(StepCostModelTest, MoeWeightBytesGrowWithBatchDenseStayFlat) {
    auto moe = StepCostModel::create(testing::mixtral(), testing::h100(), {2, 1, 0.0});
    auto dense = StepCostModel::create(testing::llama8b(), testing::h100(), {1, 1, 0.0});
    ASSERT_TRUE(moe.is_ok() && dense.is_ok());
    const double moe_growth = weight_bytes(moe->step_work(decode(16, 500))) /
                              weight_bytes(moe->step_work(decode(1, 500)));
    const double dense_growth = weight_bytes(dense->step_work(decode(16, 500))) /
                                weight_bytes(dense->step_work(decode(1, 500)));
    EXPECT_GT(moe_growth, 2.5);  // 2 -> ~8 experts of the 8
    EXPECT_DOUBLE_EQ(dense_growth, 1.0);
}

TEST(StepCostModelTest, TensorParallelSplitsWeights) {
    auto tp1 = StepCostModel::create(testing::qwen3_dense(), testing::h100(), {1, 1, 0.0});
    auto tp2 = StepCostModel::create(testing::qwen3_dense(), testing::h100(), {2, 1, 0.0});
    ASSERT_TRUE(tp1.is_ok() && tp2.is_ok());
    EXPECT_NEAR(tp2->weight_bytes_per_gpu(), tp1->weight_bytes_per_gpu() / 2.0, 1e6);
    EXPECT_NEAR(tp2->kv_bytes_per_token_per_gpu(), tp1->kv_bytes_per_token_per_gpu() / 2.0, 1e-6);
    EXPECT_GT(tp2->step_work(decode(8, 500)).wait_s,
              tp1->step_work(decode(8, 500)).wait_s);  // all-reduce
}

TEST(StepCostModelTest, ExpertParallelBusiestRankExceedsTheMean) {
    auto ep = StepCostModel::create(testing::qwen3_moe(), testing::h100(), {2, 2, 0.0});
    auto tp = StepCostModel::create(testing::qwen3_moe(), testing::h100(), {2, 1, 0.0});
    ASSERT_TRUE(ep.is_ok() && tp.is_ok());
    // With EP each GPU streams whole experts; the busiest GPU holds more than half the bytes.
    const double ep_expert_bytes = ep->step_work(decode(8, 500)).kernels[1].bytes;
    const double tp_expert_bytes = tp->step_work(decode(8, 500)).kernels[1].bytes;
    EXPECT_GT(ep_expert_bytes, tp_expert_bytes);
}

TEST(StepCostModelTest, ExpertParallelMeanRankIsLessBusyThanTheBusiest) {
    auto tp = StepCostModel::create(testing::qwen3_moe(), testing::h100(), {2, 1, 0.0});
    auto ep = StepCostModel::create(testing::qwen3_moe(), testing::h100(), {2, 2, 0.0});
    ASSERT_TRUE(tp.is_ok() && ep.is_ok());
    EXPECT_DOUBLE_EQ(tp->step_work(decode(8, 512)).mean_rank_busy_scale, 1.0);
    const double scale = ep->step_work(decode(8, 512)).mean_rank_busy_scale;
    EXPECT_LT(scale, 1.0);
    EXPECT_GT(scale, 0.5);
}

// All-reduce latency grows with the ranks (base + 2 (n - 1) hops): about 8.5 / 12 / 20 us at
// 2 / 4 / 8 H100s, the lower envelope of measured DGX all-reduces (docs/gpus.md).
TEST(StepCostModelTest, AllReduceLatencyGrowsWithRanks) {
    const GpuSpec h100 = testing::h100();
    EXPECT_EQ(allreduce_latency_s(h100, 1), 0.0);
    EXPECT_NEAR(allreduce_latency_s(h100, 2), 8.5e-6, 0.5e-6);
    EXPECT_NEAR(allreduce_latency_s(h100, 4), 12.2e-6, 0.5e-6);
    EXPECT_NEAR(allreduce_latency_s(h100, 8), 19.8e-6, 0.5e-6);
    // A dense decode step at TP8 waits two all-reduces per layer more than at TP2.
    const model::ModelSpec dense = testing::llama8b();
    auto tp2 = StepCostModel::create(dense, h100, {2, 1, 0.0});
    auto tp8 = StepCostModel::create(dense, h100, {8, 1, 0.0});
    ASSERT_TRUE(tp2.is_ok() && tp8.is_ok());
    const double extra =
        tp8->step_work(decode(1, 128)).wait_s - tp2->step_work(decode(1, 128)).wait_s;
    const double per_layer = 2.0 * (allreduce_latency_s(h100, 8) - allreduce_latency_s(h100, 2));
    EXPECT_GT(extra, 0.9 * dense.num_layers * per_layer);
}

TEST(StepCostModelTest, RejectsBadLayouts) {
    EXPECT_FALSE(StepCostModel::create(testing::mixtral(), testing::h100(), {0, 1, 0.0}).is_ok());
    EXPECT_FALSE(StepCostModel::create(testing::mixtral(), testing::h100(), {4, 2, 0.0}).is_ok());
    EXPECT_FALSE(StepCostModel::create(testing::llama8b(), testing::h100(), {2, 2, 0.0}).is_ok());
    EXPECT_FALSE(
        StepCostModel::create(testing::mixtral(), testing::h100(), {3, 3, 0.0}).is_ok());  // 8 % 3
    EXPECT_FALSE(StepCostModel::create(testing::mixtral(), testing::h100(), {2, 1, -1.0}).is_ok());
}

}  // namespace
}  // namespace pals::sim
