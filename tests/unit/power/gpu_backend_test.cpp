// The interface's value types: throttle-reason names and limit ranges.
#include "pals/power/gpu_backend.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pals::power {
namespace {

TEST(ThrottleReasonTest, NamesBitsInOrder) {
    const ThrottleMask mask =
        to_mask(ThrottleReason::kSwPowerCap) | to_mask(ThrottleReason::kGpuIdle);
    EXPECT_EQ(throttle_reason_names(mask), (std::vector<std::string>{"gpu_idle", "sw_power_cap"}));
    EXPECT_EQ(throttle_reasons_to_string(mask), "gpu_idle,sw_power_cap");
}

TEST(ThrottleReasonTest, EmptyMaskIsNone) {
    EXPECT_TRUE(throttle_reason_names(0).empty());
    EXPECT_EQ(throttle_reasons_to_string(0), "none");
}

TEST(ThrottleReasonTest, ValuesAreNvmlBits) {
    EXPECT_EQ(to_mask(ThrottleReason::kSwPowerCap), 0x4U);
    EXPECT_EQ(to_mask(ThrottleReason::kHwSlowdown), 0x8U);
    EXPECT_EQ(to_mask(ThrottleReason::kHwPowerBrakeSlowdown), 0x80U);
    EXPECT_EQ(to_mask(ThrottleReason::kDisplayClockSetting), 0x100U);
}

TEST(ThrottleReasonTest, UnknownBitsAreHex) {
    EXPECT_EQ(throttle_reasons_to_string(0x200 | 0x4), "sw_power_cap,0x200");
}

TEST(GpuSampleTest, PowerCappedFromReasons) {
    GpuSample s;
    EXPECT_FALSE(s.is_power_capped());
    s.throttle_reasons = to_mask(ThrottleReason::kSwPowerCap);
    EXPECT_TRUE(s.is_power_capped());
    s.throttle_reasons = to_mask(ThrottleReason::kHwPowerBrakeSlowdown);
    EXPECT_TRUE(s.is_power_capped());
    s.throttle_reasons = to_mask(ThrottleReason::kApplicationsClocksSetting);
    EXPECT_FALSE(s.is_power_capped());
}

TEST(PowerLimitRangeTest, ClampsAndContains) {
    const PowerLimitRange r{200.0, 700.0, 700.0};
    EXPECT_DOUBLE_EQ(r.clamp(100.0), 200.0);
    EXPECT_DOUBLE_EQ(r.clamp(900.0), 700.0);
    EXPECT_DOUBLE_EQ(r.clamp(350.0), 350.0);
    EXPECT_TRUE(r.contains(200.0));
    EXPECT_TRUE(r.contains(700.0));
    EXPECT_FALSE(r.contains(199.9));
    EXPECT_FALSE(r.contains(700.1));
}

}  // namespace
}  // namespace pals::power
