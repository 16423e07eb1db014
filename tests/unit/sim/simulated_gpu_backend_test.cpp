// sim::SimulatedGpuBackend: the simulator's GPUs behind GpuBackend.
#include "pals/sim/simulated_gpu_backend.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "pals/sim/gpu_physics.hpp"
#include "pals/sim/gpu_spec.hpp"
#include "unit/power/power_test_helpers.hpp"

namespace pals::power {
namespace {

sim::GpuSpec h100() {
    return sim::find_gpu_spec("H100-SXM").value();
}

/// A memory-bound decode step of a 70B model over 8 GPUs (under 700 W unconstrained on an H100).
sim::StepWork decode_step() {
    sim::StepWork w;
    w.add(2.0 * 8.75e9 * 64, 17.5e9 + 5.4e9);
    w.wait_s = 0.5e-3;
    w.host_s = 1.5e-3;
    return w;
}

TEST(SimulatedGpuBackendTest, DevicesComeFromTheSpec) {
    sim::SimulatedGpuBackend backend(h100(), 4);
    ASSERT_OK(backend.device_count());
    EXPECT_EQ(*backend.device_count(), 4);
    EXPECT_EQ(backend.backend_name(), "simulated");
    auto info = backend.device_info(2);
    ASSERT_OK(info);
    EXPECT_EQ(info->index, 2);
    EXPECT_EQ(info->name, "H100-SXM");
    EXPECT_NE(info->uuid, backend.device_info(1)->uuid);
    auto range = backend.power_limit_range(0);
    ASSERT_OK(range);
    EXPECT_DOUBLE_EQ(range->min_w, 200.0);
    EXPECT_DOUBLE_EQ(range->max_w, 700.0);
    EXPECT_DOUBLE_EQ(range->default_w, 700.0);
    EXPECT_DOUBLE_EQ(*backend.power_limit_w(3), 700.0);
}

TEST(SimulatedGpuBackendTest, StartsIdle) {
    sim::SimulatedGpuBackend backend(h100(), 1);
    auto s = backend.sample(0);
    ASSERT_OK(s);
    EXPECT_DOUBLE_EQ(s->power_w, 75.0);
    EXPECT_DOUBLE_EQ(s->energy_j, 0.0);
    EXPECT_EQ(s->throttle_reasons, to_mask(ThrottleReason::kGpuIdle));
}

TEST(SimulatedGpuBackendTest, SetLimitClampsAndReadsBack) {
    sim::SimulatedGpuBackend backend(h100(), 2);
    auto enforced = backend.set_power_limit(1, 350.0);
    ASSERT_OK(enforced);
    EXPECT_DOUBLE_EQ(*enforced, 350.0);
    EXPECT_DOUBLE_EQ(*backend.power_limit_w(1), 350.0);
    EXPECT_DOUBLE_EQ(*backend.power_limit_w(0), 700.0);
    EXPECT_DOUBLE_EQ(*backend.set_power_limit(1, 50.0), 200.0);
    EXPECT_DOUBLE_EQ(*backend.set_power_limit(1, 5000.0), 700.0);
    EXPECT_STATUS(backend.set_power_limit(1, NAN), StatusCode::kInvalidArgument, "finite");
}

TEST(SimulatedGpuBackendTest, OutOfBandLimitHoldsEnforcedLower) {
    sim::SimulatedGpuBackend backend(h100(), 1);
    backend.set_out_of_band_limit(500.0);
    EXPECT_DOUBLE_EQ(*backend.set_power_limit(0, 600.0), 500.0);
    EXPECT_DOUBLE_EQ(*backend.power_limit_w(0), 600.0);
    EXPECT_DOUBLE_EQ(*backend.enforced_power_limit_w(0), 500.0);
    backend.set_out_of_band_limit(std::nullopt);
    EXPECT_DOUBLE_EQ(*backend.enforced_power_limit_w(0), 600.0);
}

TEST(SimulatedGpuBackendTest, RecordIntervalAccumulatesEnergyAndTime) {
    sim::SimulatedGpuBackend backend(h100(), 2);
    ASSERT_OK(backend.record_interval(0, 400.0, 1980.0, 0.5));
    ASSERT_OK(backend.record_interval(0, 300.0, 1500.0, 1.0));
    auto s = backend.sample(0);
    ASSERT_OK(s);
    EXPECT_DOUBLE_EQ(s->energy_j, 400.0 * 0.5 + 300.0 * 1.0);
    EXPECT_DOUBLE_EQ(s->power_w, 300.0);
    EXPECT_DOUBLE_EQ(s->sm_clock_mhz, 1500.0);
    EXPECT_DOUBLE_EQ(s->time.count(), 1.5);
    auto all = backend.sample_all();
    ASSERT_OK(all);
    ASSERT_EQ(all->size(), 2U);
    EXPECT_DOUBLE_EQ((*all)[1].energy_j, 0.0);
}

TEST(SimulatedGpuBackendTest, RejectsBadIntervals) {
    sim::SimulatedGpuBackend backend(h100(), 1);
    EXPECT_STATUS(backend.record_interval(0, -1.0, 1000.0, 1.0), StatusCode::kInvalidArgument,
                  "finite");
    EXPECT_STATUS(backend.record_interval(0, 100.0, 1000.0, -1.0), StatusCode::kInvalidArgument,
                  "finite");
    EXPECT_STATUS(backend.record_interval(0, NAN, 1000.0, 1.0), StatusCode::kInvalidArgument,
                  "finite");
    EXPECT_STATUS(backend.record_interval(1, 100.0, 1000.0, 1.0), StatusCode::kNotFound, "GPU 1");
}

TEST(SimulatedGpuBackendTest, ThrottleFlagWhenTheCapBinds) {
    sim::SimulatedGpuBackend backend(h100(), 1);
    const sim::GpuPhysics physics(h100());
    const sim::StepWork work = decode_step();

    auto free_run = physics.run_step(work, *backend.power_limit_w(0));
    ASSERT_OK(
        backend.record_interval(0, free_run.power_w, free_run.sm_clock_mhz, free_run.duration_s));
    EXPECT_FALSE(backend.sample(0)->is_power_capped());
    EXPECT_EQ(backend.sample(0)->throttle_reasons, 0U);

    ASSERT_OK(backend.set_power_limit(0, 250.0));
    auto capped = physics.run_step(work, *backend.enforced_power_limit_w(0));
    ASSERT_LT(capped.sm_clock_mhz, 1980.0);
    ASSERT_OK(backend.record_interval(0, capped.power_w, capped.sm_clock_mhz, capped.duration_s));
    auto s = backend.sample(0);
    EXPECT_TRUE(s->is_power_capped());
    EXPECT_NE(s->throttle_reasons & to_mask(ThrottleReason::kSwPowerCap), 0U);
    EXPECT_LE(s->power_w, 250.0);
}

TEST(SimulatedGpuBackendTest, PowerAboveTheCapIsAHardwareSlowdown) {
    sim::SimulatedGpuBackend backend(h100(), 1);
    ASSERT_OK(backend.set_power_limit(0, 200.0));
    ASSERT_OK(backend.record_interval(0, 260.0, 345.0, 0.1));
    EXPECT_NE(backend.sample(0)->throttle_reasons & to_mask(ThrottleReason::kHwSlowdown), 0U);
}

TEST(SimulatedGpuBackendTest, ReasonsFromThePhysicsAreReportedAsNvmlWould) {
    EXPECT_EQ(sim::throttle_reasons_of(sim::kClockFree), 0U);
    EXPECT_EQ(sim::throttle_reasons_of(sim::kClockFree, false), to_mask(ThrottleReason::kGpuIdle));
    EXPECT_EQ(sim::throttle_reasons_of(sim::kClockLocked),
              to_mask(ThrottleReason::kApplicationsClocksSetting));
    EXPECT_EQ(sim::throttle_reasons_of(sim::kClockPowerCap), to_mask(ThrottleReason::kSwPowerCap));
    EXPECT_EQ(sim::throttle_reasons_of(sim::kClockPowerCap | sim::kClockCapAtFloor),
              to_mask(ThrottleReason::kSwPowerCap) | to_mask(ThrottleReason::kHwSlowdown));
    // A cap that holds the clock under a lock reports both.
    EXPECT_EQ(
        sim::throttle_reasons_of(sim::kClockLocked | sim::kClockPowerCap),
        to_mask(ThrottleReason::kApplicationsClocksSetting) | to_mask(ThrottleReason::kSwPowerCap));

    // The physics' reasons replace the derived ones.
    sim::SimulatedGpuBackend backend(h100(), 1);
    ASSERT_OK(backend.set_power_limit(0, 200.0));
    const sim::GpuPhysics physics(h100());
    sim::StepWork prefill;
    prefill.add(400e12, 20e9);
    const sim::StepOutcome o = physics.run_step(prefill, 200.0);
    ASSERT_NE(o.limits & sim::kClockPowerCap, 0U);
    ASSERT_OK(backend.record_interval(0, o.power_w, o.sm_clock_mhz, o.duration_s,
                                      sim::throttle_reasons_of(o.limits)));
    EXPECT_EQ(backend.sample(0)->throttle_reasons, to_mask(ThrottleReason::kSwPowerCap));
}

TEST(SimulatedGpuBackendTest, LockedClocksAreKeptAndReported) {
    sim::SimulatedGpuBackend backend(h100(), 1);
    EXPECT_FALSE(backend.locked_sm_clocks(0)->has_value());
    ASSERT_OK(backend.lock_sm_clocks(0, ClockRangeMhz{1000.0, 1400.0}));
    auto locked = backend.locked_sm_clocks(0);
    ASSERT_OK(locked);
    ASSERT_TRUE(locked->has_value());
    EXPECT_EQ(**locked, (ClockRangeMhz{1000.0, 1400.0}));
    // Running at the locked maximum: limited by the clock setting, not by power.
    ASSERT_OK(backend.record_interval(0, 300.0, 1400.0, 0.1));
    auto s = backend.sample(0);
    EXPECT_EQ(s->throttle_reasons, to_mask(ThrottleReason::kApplicationsClocksSetting));
    ASSERT_OK(backend.reset_sm_clocks(0));
    EXPECT_FALSE(backend.locked_sm_clocks(0)->has_value());
    EXPECT_STATUS(backend.lock_sm_clocks(0, ClockRangeMhz{1500.0, 1000.0}),
                  StatusCode::kInvalidArgument, "min <= max");
}

TEST(SimulatedGpuBackendTest, ReadOnlyBackendRefusesWrites) {
    sim::SimulatedGpuBackend backend(h100(), 1);
    backend.set_writable(false);
    EXPECT_STATUS(backend.set_power_limit(0, 300.0), StatusCode::kPermissionDenied,
                  "root or CAP_SYS_ADMIN");
    EXPECT_STATUS(backend.lock_sm_clocks(0, ClockRangeMhz{1000.0, 1200.0}),
                  StatusCode::kPermissionDenied, "CAP_SYS_ADMIN");
    EXPECT_STATUS(backend.reset_sm_clocks(0), StatusCode::kPermissionDenied, "CAP_SYS_ADMIN");
    EXPECT_DOUBLE_EQ(*backend.power_limit_w(0), 700.0);
    EXPECT_OK(backend.sample(0));
}

TEST(SimulatedGpuBackendTest, BadIndexIsNotFound) {
    sim::SimulatedGpuBackend backend(h100(), 2);
    EXPECT_STATUS(backend.sample(2), StatusCode::kNotFound, "GPU 2 does not exist");
    EXPECT_STATUS(backend.device_info(-1), StatusCode::kNotFound, "GPU -1");
    EXPECT_STATUS(backend.set_power_limit(5, 300.0), StatusCode::kNotFound, "GPU 5");
}

TEST(SimulatedGpuBackendTest, OtherGpuKinds) {
    sim::SimulatedGpuBackend backend(sim::find_gpu_spec("a100").value(), 8);
    EXPECT_DOUBLE_EQ(backend.power_limit_range(7)->max_w, 400.0);
    EXPECT_DOUBLE_EQ(*backend.set_power_limit(7, 50.0), 100.0);
}

}  // namespace
}  // namespace pals::power
