#include "pals/power/gpu_backend.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <utility>

namespace pals::power {

namespace {

constexpr std::array<std::pair<ThrottleReason, const char*>, 9> kReasonNames = {{
    {ThrottleReason::kGpuIdle, "gpu_idle"},
    {ThrottleReason::kApplicationsClocksSetting, "applications_clocks_setting"},
    {ThrottleReason::kSwPowerCap, "sw_power_cap"},
    {ThrottleReason::kHwSlowdown, "hw_slowdown"},
    {ThrottleReason::kSyncBoost, "sync_boost"},
    {ThrottleReason::kSwThermalSlowdown, "sw_thermal_slowdown"},
    {ThrottleReason::kHwThermalSlowdown, "hw_thermal_slowdown"},
    {ThrottleReason::kHwPowerBrakeSlowdown, "hw_power_brake_slowdown"},
    {ThrottleReason::kDisplayClockSetting, "display_clock_setting"},
}};

constexpr int kMaskBits = 64;

}  // namespace

std::vector<std::string> throttle_reason_names(ThrottleMask mask) {
    std::vector<std::string> names;
    for (int bit = 0; bit < kMaskBits; ++bit) {
        const ThrottleMask value = ThrottleMask{1} << bit;
        if ((mask & value) == 0) {
            continue;
        }
        const auto* known =
            std::find_if(kReasonNames.begin(), kReasonNames.end(),
                         [value](const auto& p) { return to_mask(p.first) == value; });
        if (known != kReasonNames.end()) {
            names.emplace_back(known->second);
        } else {
            std::array<char, 24> hex{};
            std::snprintf(hex.data(), hex.size(), "0x%llx", static_cast<unsigned long long>(value));
            names.emplace_back(hex.data());
        }
    }
    return names;
}

std::string throttle_reasons_to_string(ThrottleMask mask) {
    if (mask == 0) {
        return "none";
    }
    std::string out;
    for (const std::string& name : throttle_reason_names(mask)) {
        out += (out.empty() ? "" : ",") + name;
    }
    return out;
}

double PowerLimitRange::clamp(double limit_w) const {
    return std::clamp(limit_w, min_w, max_w);
}

bool PowerLimitRange::contains(double limit_w) const {
    return limit_w >= min_w && limit_w <= max_w;
}

}  // namespace pals::power
