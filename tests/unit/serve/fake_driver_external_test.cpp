// The fake NVML driver's "external" load (what `pals sim-serve` reports): readings, energy
// integration over wall time, staleness, limits read back, and GPU ranges for --gpu-offset.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "fake_nvml/fake_driver.hpp"
#include "pals/power/gpu_backend.hpp"
#include "serve_test_helpers.hpp"

namespace pals::power::fake_nvml {
namespace {

using serve::testing::TempDir;

class FakeDriverExternalTest : public ::testing::Test {
protected:
    /// A driver of `count` H100s with the external load on this test's state file.
    FakeDriver open_driver(int count) {
        std::string error;
        auto config = parse_config(serve::testing::external_config(count), error);
        EXPECT_TRUE(config.has_value()) << error;
        FakeDriver driver;
        EXPECT_EQ(driver.init(*config, m_dir.file("state.json")), nvml::kSuccess)
            << driver.last_error();
        return driver;
    }

    TempDir m_dir;
};

TEST_F(FakeDriverExternalTest, IdleUntilTheFirstReport) {
    FakeDriver driver = open_driver(2);
    auto state = driver.read_state();
    ASSERT_TRUE(state.has_value());
    const Operating op = driver.operating((*state)[0]);
    EXPECT_DOUBLE_EQ(op.power_w, driver.config().spec.idle_power_w);
    EXPECT_TRUE(op.reasons & to_mask(ThrottleReason::kGpuIdle));
}

TEST_F(FakeDriverExternalTest, ReportedPowerAndClockAreReadByAnotherDriver) {
    FakeDriver writer = open_driver(2);
    ASSERT_EQ(writer.report(0, {{450.0, 1700.0}, {320.0, 1500.0}}), nvml::kSuccess);
    FakeDriver reader = open_driver(2);  // another "process" on the same state file
    auto state = reader.read_state();
    ASSERT_TRUE(state.has_value());
    const Operating op0 = reader.operating((*state)[0]);
    const Operating op1 = reader.operating((*state)[1]);
    EXPECT_DOUBLE_EQ(op0.power_w, 450.0);
    EXPECT_DOUBLE_EQ(op0.sm_clock_mhz, 1700.0);
    EXPECT_DOUBLE_EQ(op1.power_w, 320.0);
    EXPECT_FALSE(op0.reasons & to_mask(ThrottleReason::kGpuIdle));
}

TEST_F(FakeDriverExternalTest, EnergyIntegratesTheReportedPowerOverWallTime) {
    FakeDriver driver = open_driver(1);
    ASSERT_EQ(driver.report(0, {{400.0, 1800.0}}), nvml::kSuccess);
    auto before = driver.read_state();
    ASSERT_TRUE(before.has_value());
    const double t0 = FakeDriver::now_s();
    const double e0 = driver.energy_now((*before)[0], t0);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    // A new report folds the energy at the previous reading (400 W) up to now.
    ASSERT_EQ(driver.report(0, {{100.0, 900.0}}), nvml::kSuccess);
    const double t1 = FakeDriver::now_s();
    auto after = driver.read_state();
    ASSERT_TRUE(after.has_value());
    const double e1 = (*after)[0].energy_j;
    EXPECT_NEAR(e1 - e0, 400.0 * (t1 - t0), 400.0 * 0.02);
    // From then on at the new power.
    EXPECT_NEAR(driver.energy_now((*after)[0], t1 + 1.0) - e1,
                100.0 * (1.0 + t1 - (*after)[0].updated_s), 1.0);
}

TEST_F(FakeDriverExternalTest, AStaleReportCountsAsIdle) {
    FakeDriver driver = open_driver(1);
    ASSERT_EQ(driver.report(0, {{600.0, 1900.0}}), nvml::kSuccess);
    // The reporting process went away kExternalStaleS ago (age the report instead of waiting).
    ASSERT_EQ(driver.modify(0,
                            [](DeviceState& d) {
                                d.reported_s -= kExternalStaleS + 1.0;
                                return nvml::kSuccess;
                            }),
              nvml::kSuccess);
    auto state = driver.read_state();
    ASSERT_TRUE(state.has_value());
    const Operating op = driver.operating((*state)[0]);
    EXPECT_DOUBLE_EQ(op.power_w, driver.config().spec.idle_power_w);
    EXPECT_TRUE(op.reasons & to_mask(ThrottleReason::kGpuIdle));
}

TEST_F(FakeDriverExternalTest, LimitsSetByOneProcessAreReadBackWithTheReports) {
    FakeDriver controller = open_driver(2);
    ASSERT_EQ(controller.modify(1,
                                [](DeviceState& d) {
                                    d.limit_w = 350.0;
                                    d.locked_max_mhz = 1200.0;
                                    return nvml::kSuccess;
                                }),
              nvml::kSuccess);
    FakeDriver server = open_driver(2);
    ASSERT_EQ(server.report(0, {{349.8, 1200.0}, {349.9, 1200.0}}), nvml::kSuccess);
    auto state = server.read_state();
    ASSERT_TRUE(state.has_value());
    EXPECT_DOUBLE_EQ(server.enforced_limit_w((*state)[0]), 700.0);
    EXPECT_DOUBLE_EQ(server.enforced_limit_w((*state)[1]), 350.0);
    EXPECT_DOUBLE_EQ((*state)[1].locked_max_mhz, 1200.0);
    // At the limit: the power cap holds the clock; the locked clock shows too.
    const Operating op = server.operating((*state)[1]);
    EXPECT_TRUE(op.reasons & to_mask(ThrottleReason::kSwPowerCap));
    EXPECT_TRUE(op.reasons & to_mask(ThrottleReason::kApplicationsClocksSetting));
}

TEST_F(FakeDriverExternalTest, ReportsOnlyTheGivenRangeOfGpus) {
    FakeDriver first = open_driver(4);
    FakeDriver second = open_driver(4);
    ASSERT_EQ(first.report(0, {{300.0, 1500.0}, {310.0, 1500.0}}), nvml::kSuccess);
    ASSERT_EQ(second.report(2, {{500.0, 1800.0}}), nvml::kSuccess);
    auto state = first.read_state();
    ASSERT_TRUE(state.has_value());
    EXPECT_DOUBLE_EQ((*state)[0].reported_power_w, 300.0);
    EXPECT_DOUBLE_EQ((*state)[1].reported_power_w, 310.0);
    EXPECT_DOUBLE_EQ((*state)[2].reported_power_w, 500.0);
    EXPECT_LT((*state)[3].reported_s, 0.0);  // never reported
    EXPECT_DOUBLE_EQ(first.operating((*state)[3]).power_w, first.config().spec.idle_power_w);
}

TEST_F(FakeDriverExternalTest, RejectsRangesOutsideTheNode) {
    FakeDriver driver = open_driver(2);
    EXPECT_EQ(driver.report(0, {}), nvml::kErrorInvalidArgument);
    EXPECT_EQ(driver.report(-1, {{100.0, 1000.0}}), nvml::kErrorInvalidArgument);
    EXPECT_EQ(driver.report(1, {{100.0, 1000.0}, {100.0, 1000.0}}), nvml::kErrorInvalidArgument);
    EXPECT_EQ(driver.report(2, {{100.0, 1000.0}}), nvml::kErrorInvalidArgument);
    EXPECT_EQ(driver.report(1, {{100.0, 1000.0}}), nvml::kSuccess);
}

}  // namespace
}  // namespace pals::power::fake_nvml
