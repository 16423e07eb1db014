#include "pals/sim/gpu_physics.hpp"

#include <gtest/gtest.h>

#include <cmath>

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
    EXPECT_GT(o.power_w, 680.0);  // within one 15-MHz clock step of the limit
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
    ASSERT_LT(uncapped.power_w, 690.0);
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

TEST(GpuPhysicsTest, VoltageFallsWithTheClockDownToTheFloorOnly) {
    GpuPhysics gpu(testing::h100());
    const GpuCalibration& cal = gpu.spec().calibration;
    EXPECT_DOUBLE_EQ(gpu.voltage_ratio(1.0), 1.0);
    EXPECT_DOUBLE_EQ(gpu.voltage_ratio(cal.voltage_floor_clock), cal.voltage_floor);
    EXPECT_DOUBLE_EQ(gpu.voltage_ratio(cal.voltage_floor_clock * 0.5), cal.voltage_floor);
    EXPECT_LT(gpu.voltage_ratio(0.5 * (1.0 + cal.voltage_floor_clock)), 1.0);
    EXPECT_GT(gpu.voltage_ratio(0.5 * (1.0 + cal.voltage_floor_clock)), cal.voltage_floor);
}

TEST(GpuPhysicsTest, BelowTheVoltageFloorPowerFallsOnlyLinearly) {
    // Same relative clock step above and below the floor: dynamic power ~ f V^2 falls by the
    // clock ratio cubed above the floor, by the ratio alone below it.
    GpuPhysics gpu(testing::h100());
    const double floor = gpu.spec().calibration.voltage_floor_clock;
    const StepWork w = compute_bound_step();
    auto drop = [&](double hi) {
        const double lo = hi * 0.9;
        return gpu.evaluate(w, hi).power_w * gpu.evaluate(w, hi).duration_s -
               gpu.evaluate(w, lo).power_w * gpu.evaluate(w, lo).duration_s;
    };
    const double above = drop(1.0);
    const double below = drop(floor * 0.9);
    EXPECT_GT(above, 0.0);
    // Energy per step: above the floor a lower clock saves energy; below it the longer step
    // costs more static energy than the clock saves (the energy minimum sits near the floor).
    EXPECT_LT(below, above);
}

TEST(GpuPhysicsTest, ClocksAreTheSupportedSteps) {
    GpuPhysics gpu(testing::h100());
    EXPECT_DOUBLE_EQ(gpu.supported_clock_mhz(1000.0), 990.0);  // 1980 - 66 x 15
    EXPECT_DOUBLE_EQ(gpu.supported_clock_mhz(5000.0), 1980.0);
    EXPECT_DOUBLE_EQ(gpu.supported_clock_mhz(100.0), 345.0);
    const StepOutcome locked = gpu.run_step(memory_bound_step(), 700.0, 1000.0);
    EXPECT_DOUBLE_EQ(locked.sm_clock_mhz, 990.0);
    EXPECT_EQ(locked.limits, kClockLocked);
    const StepOutcome capped = gpu.run_step(compute_bound_step(), 300.0);
    EXPECT_EQ(capped.limits, kClockPowerCap);
    const double steps = (1980.0 - capped.sm_clock_mhz) / 15.0;
    EXPECT_NEAR(steps, std::round(steps), 1e-9) << capped.sm_clock_mhz;
    // One supported step higher would not fit the cap.
    EXPECT_GT(gpu.evaluate(compute_bound_step(), (capped.sm_clock_mhz + 15.0) / 1980.0).power_w,
              300.0);
}

TEST(GpuPhysicsTest, LimitsSayWhatHeldTheClock) {
    GpuPhysics gpu(testing::h100());
    EXPECT_EQ(gpu.run_step(memory_bound_step(), 700.0).limits, kClockFree);
    EXPECT_EQ(gpu.run_step(compute_bound_step(), 700.0, 990.0).limits & kClockLocked, kClockLocked);
    // A cap the lowest clock cannot meet: the GPU runs at its lowest clock, over the cap.
    GpuSpec hot = testing::h100();
    hot.calibration.active_power_w = 300.0;
    GpuPhysics hot_gpu(hot);
    const StepOutcome o = hot_gpu.run_step(compute_bound_step(), 200.0);
    EXPECT_DOUBLE_EQ(o.sm_clock_mhz, 345.0);
    EXPECT_GT(o.power_w, 200.0);
    EXPECT_EQ(o.limits, kClockPowerCap | kClockCapAtFloor);
}

TEST(GpuPhysicsTest, CapIsClampedToTheRange) {
    GpuPhysics gpu(testing::h100());
    EXPECT_DOUBLE_EQ(gpu.clamp_cap(50.0), 200.0);
    EXPECT_DOUBLE_EQ(gpu.clamp_cap(900.0), 700.0);
}

TEST(GpuSpecTest, KnowsTheDocumentedGpus) {
    for (const char* name :
         {"H100-SXM", "h100", "H800", "H200", "A100-40GB", "A100-80GB", "a100", "B200"}) {
        EXPECT_TRUE(find_gpu_spec(name).is_ok()) << name;
    }
    auto bad = find_gpu_spec("V100");
    ASSERT_FALSE(bad.is_ok());
    EXPECT_NE(bad.status().message().find("known: H100-SXM"), std::string::npos);
}

TEST(GpuSpecTest, MatmulPrecisionPicksTheTensorPeak) {
    const GpuSpec a100 = *find_gpu_spec("A100-80GB");
    EXPECT_DOUBLE_EQ(matmul_peak_flops(a100, model::WeightDtype::kBf16), 312e12);
    EXPECT_DOUBLE_EQ(matmul_peak_flops(a100, model::WeightDtype::kFp8), 312e12);  // no FP8 cores
    EXPECT_DOUBLE_EQ(matmul_peak_flops(a100, model::WeightDtype::kInt8), 624e12);
    const GpuSpec h100 = *find_gpu_spec("H100-SXM");
    EXPECT_DOUBLE_EQ(matmul_peak_flops(h100, model::WeightDtype::kFp8), 1978.9e12);
    // A compute-bound step runs twice as fast with INT8 matmuls on an A100 (at the same clock).
    const GpuPhysics bf16(a100, model::WeightDtype::kBf16);
    const GpuPhysics int8(a100, model::WeightDtype::kInt8);
    StepWork w;
    w.add(300e12, 1e9);
    EXPECT_NEAR(bf16.evaluate(w, 1.0).duration_s / int8.evaluate(w, 1.0).duration_s, 2.0, 1e-9);
}

}  // namespace
}  // namespace pals::sim
