#include "pals/sim/gpu_physics.hpp"

#include <gtest/gtest.h>

#include "test_models.hpp"

namespace pals::sim {
namespace {

StepWork memory_bound_step() {
    StepWork w;
    w.add(1e12, 20e9);  // 20 GB streamed, little compute: decode-like
    w.host_s = 1e-3;
    return w;
}

StepWork compute_bound_step() {
    StepWork w;
    w.add(400e12, 20e9);  // a large prefill
    w.host_s = 1e-3;
    return w;
}

TEST(GpuPhysicsTest, DecodeRunsAtMaxClockUnderTheDefaultLimit) {
    GpuPhysics gpu(testing::h100());
    const StepOutcome o = gpu.run_step(memory_bound_step(), 700.0);
    EXPECT_DOUBLE_EQ(o.sm_clock_mhz, 1980.0);
    EXPECT_GT(o.power_w, gpu.idle_power_w());
}

TEST(GpuPhysicsTest, LargePrefillReachesTheDefaultLimit) {
    // As on real H100s, a saturated tensor-core workload is power-limited even at 700 W.
    GpuPhysics gpu(testing::h100());
    const StepOutcome o = gpu.run_step(compute_bound_step(), 700.0);
    EXPECT_LE(o.power_w, 700.0 + 1e-9);
    EXPECT_GT(o.power_w, 690.0);
    EXPECT_LT(o.sm_clock_mhz, 1980.0);
}

TEST(GpuPhysicsTest, CapLowersClockAndFitsPower) {
    GpuPhysics gpu(testing::h100());
    const StepOutcome full = gpu.run_step(compute_bound_step(), 700.0);
    const StepOutcome capped = gpu.run_step(compute_bound_step(), 300.0);
    EXPECT_LE(capped.power_w, 300.0 + 1e-9);
    EXPECT_LT(capped.sm_clock_mhz, full.sm_clock_mhz);
    EXPECT_GT(capped.duration_s, full.duration_s * 1.2);  // prefill slows under a low cap
}

TEST(GpuPhysicsTest, CapAboveDecodeDrawLeavesDecodeUnchanged) {
    GpuPhysics gpu(testing::h100());
    const StepOutcome uncapped = gpu.run_step(memory_bound_step(), 700.0);
    ASSERT_LT(uncapped.power_w, 600.0);
    const StepOutcome capped = gpu.run_step(memory_bound_step(), uncapped.power_w + 1.0);
    EXPECT_DOUBLE_EQ(capped.duration_s, uncapped.duration_s);
    EXPECT_DOUBLE_EQ(capped.sm_clock_mhz, 1980.0);
}

TEST(GpuPhysicsTest, MemoryBoundStepBarelySlowsUntilClockIsLow) {
    GpuPhysics gpu(testing::h100());
    const StepOutcome top = gpu.evaluate(memory_bound_step(), 1.0);
    const StepOutcome mid = gpu.evaluate(memory_bound_step(), 0.6);
    EXPECT_NEAR(mid.duration_s, top.duration_s, 0.01 * top.duration_s);
    EXPECT_LT(mid.power_w, top.power_w);
}

TEST(GpuPhysicsTest, PowerRisesWithClock) {
    GpuPhysics gpu(testing::h100());
    double previous = 0.0;
    for (double r = 0.2; r <= 1.0; r += 0.1) {
        const double p = gpu.evaluate(compute_bound_step(), r).power_w;
        EXPECT_GT(p, previous);
        previous = p;
    }
}

TEST(GpuPhysicsTest, LockedClockBoundsTheClock) {
    GpuPhysics gpu(testing::h100());
    const StepOutcome o = gpu.run_step(compute_bound_step(), 700.0, 990.0);
    EXPECT_NEAR(o.sm_clock_mhz, 990.0, 1e-6);
}

TEST(GpuPhysicsTest, CapIsClampedToTheRange) {
    GpuPhysics gpu(testing::h100());
    EXPECT_DOUBLE_EQ(gpu.clamp_cap(50.0), 200.0);
    EXPECT_DOUBLE_EQ(gpu.clamp_cap(900.0), 700.0);
}

TEST(GpuSpecTest, KnowsTheDocumentedGpus) {
    for (const char* name : {"H100-SXM", "h100", "H800", "H200", "A100-40GB", "A100-80GB", "a100", "B200"}) {
        EXPECT_TRUE(find_gpu_spec(name).is_ok()) << name;
    }
    auto bad = find_gpu_spec("V100");
    ASSERT_FALSE(bad.is_ok());
    EXPECT_NE(bad.status().message().find("known: H100-SXM"), std::string::npos);
}

}  // namespace
}  // namespace pals::sim
