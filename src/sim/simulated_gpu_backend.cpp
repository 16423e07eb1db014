#include "pals/sim/simulated_gpu_backend.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <utility>

#include "pals/sim/gpu_physics.hpp"

namespace pals::sim {

namespace {

/// A clock this far below its ceiling counts as held down (the physics bisects to < 1 MHz).
constexpr double kClockToleranceMhz = 1.0;
/// Power this far above the enforced limit counts as over the cap (rounding of averages).
constexpr double kPowerToleranceW = 0.5;

}  // namespace

SimulatedGpuBackend::SimulatedGpuBackend(GpuSpec spec, int count)
    : m_spec(std::move(spec)), m_devices(static_cast<std::size_t>(std::max(count, 0))) {
    for (Device& d : m_devices) {
        d.limit_w = m_spec.power_limit_default_w;
        d.power_w = m_spec.idle_power_w;
        d.sm_clock_mhz = m_spec.sm_clock_min_mhz;
        d.reasons = power::to_mask(power::ThrottleReason::kGpuIdle);
    }
}

Status SimulatedGpuBackend::check_index(int gpu) const {
    if (gpu < 0 || gpu >= static_cast<int>(m_devices.size())) {
        return Status::not_found("GPU " + std::to_string(gpu) + " does not exist (" +
                                 std::to_string(m_devices.size()) + " simulated GPUs)");
    }
    return Status::ok();
}

Status SimulatedGpuBackend::check_writable(const char* what) const {
    if (!m_writable) {
        return Status::permission_denied(std::string(what) +
                                         ": setting power limits needs root or CAP_SYS_ADMIN");
    }
    return Status::ok();
}

double SimulatedGpuBackend::enforced_locked(const Device& d) const {
    return m_out_of_band_limit_w ? std::min(d.limit_w, *m_out_of_band_limit_w) : d.limit_w;
}

power::ThrottleMask throttle_reasons_of(unsigned clock_limits, bool busy) {
    if (!busy) {
        return power::to_mask(power::ThrottleReason::kGpuIdle);
    }
    power::ThrottleMask mask = 0;
    if ((clock_limits & sim::kClockLocked) != 0U) {
        mask |= power::to_mask(power::ThrottleReason::kApplicationsClocksSetting);
    }
    if ((clock_limits & sim::kClockPowerCap) != 0U) {
        mask |= power::to_mask(power::ThrottleReason::kSwPowerCap);
    }
    if ((clock_limits & sim::kClockCapAtFloor) != 0U) {
        mask |= power::to_mask(power::ThrottleReason::kSwPowerCap) |
                power::to_mask(power::ThrottleReason::kHwSlowdown);
    }
    return mask;
}

Status SimulatedGpuBackend::record_interval(int gpu, double power_w, double sm_clock_mhz,
                                            double dt_s,
                                            std::optional<power::ThrottleMask> reasons) {
    std::lock_guard lock(m_mutex);
    PALS_RETURN_IF_ERROR(check_index(gpu));
    if (!std::isfinite(power_w) || !std::isfinite(sm_clock_mhz) || !std::isfinite(dt_s) ||
        power_w < 0.0 || sm_clock_mhz < 0.0 || dt_s < 0.0) {
        return Status::invalid_argument(
            "record_interval: power, clock and duration must be "
            "finite and >= 0");
    }
    Device& d = m_devices[static_cast<std::size_t>(gpu)];
    d.energy_j += power_w * dt_s;
    d.time_s += dt_s;
    d.power_w = power_w;
    d.sm_clock_mhz = sm_clock_mhz;
    if (reasons) {
        d.reasons = *reasons;
        return Status::ok();
    }
    const double spec_max = m_spec.sm_clock_max_mhz;
    const double locked_max = d.locked ? std::min(d.locked->max_mhz, spec_max) : spec_max;
    const double enforced = enforced_locked(d);
    power::ThrottleMask derived = 0;
    if (sm_clock_mhz < locked_max - kClockToleranceMhz) {
        derived |= power::to_mask(power::ThrottleReason::kSwPowerCap);
    } else if (d.locked && locked_max < spec_max - kClockToleranceMhz) {
        derived |= power::to_mask(power::ThrottleReason::kApplicationsClocksSetting);
    }
    if (power_w > enforced + kPowerToleranceW) {
        derived |= power::to_mask(power::ThrottleReason::kHwSlowdown);
    }
    d.reasons = derived;
    return Status::ok();
}

void SimulatedGpuBackend::set_writable(bool writable) {
    std::lock_guard lock(m_mutex);
    m_writable = writable;
}

void SimulatedGpuBackend::set_out_of_band_limit(std::optional<double> limit_w) {
    std::lock_guard lock(m_mutex);
    m_out_of_band_limit_w = limit_w;
}

Result<int> SimulatedGpuBackend::device_count() const {
    std::lock_guard lock(m_mutex);
    return static_cast<int>(m_devices.size());
}

Result<power::GpuInfo> SimulatedGpuBackend::device_info(int gpu) const {
    std::lock_guard lock(m_mutex);
    PALS_RETURN_IF_ERROR(check_index(gpu));
    std::array<char, 48> uuid{};
    std::snprintf(uuid.data(), uuid.size(), "SIM-GPU-%08d", gpu);
    return power::GpuInfo{gpu, m_spec.name, uuid.data()};
}

Result<power::PowerLimitRange> SimulatedGpuBackend::power_limit_range(int gpu) const {
    std::lock_guard lock(m_mutex);
    PALS_RETURN_IF_ERROR(check_index(gpu));
    return power::PowerLimitRange{m_spec.power_limit_min_w, m_spec.power_limit_max_w,
                                  m_spec.power_limit_default_w};
}

Result<double> SimulatedGpuBackend::power_limit_w(int gpu) const {
    std::lock_guard lock(m_mutex);
    PALS_RETURN_IF_ERROR(check_index(gpu));
    return m_devices[static_cast<std::size_t>(gpu)].limit_w;
}

Result<double> SimulatedGpuBackend::enforced_power_limit_w(int gpu) const {
    std::lock_guard lock(m_mutex);
    PALS_RETURN_IF_ERROR(check_index(gpu));
    return enforced_locked(m_devices[static_cast<std::size_t>(gpu)]);
}

power::GpuSample SimulatedGpuBackend::sample_locked(int gpu) const {
    const Device& d = m_devices[static_cast<std::size_t>(gpu)];
    power::GpuSample s;
    s.index = gpu;
    s.time = Seconds{d.time_s};
    s.power_w = d.power_w;
    s.energy_j = d.energy_j;
    s.sm_clock_mhz = d.sm_clock_mhz;
    s.power_limit_w = d.limit_w;
    s.enforced_power_limit_w = enforced_locked(d);
    s.throttle_reasons = d.reasons;
    return s;
}

Result<power::GpuSample> SimulatedGpuBackend::sample(int gpu) {
    std::lock_guard lock(m_mutex);
    PALS_RETURN_IF_ERROR(check_index(gpu));
    return sample_locked(gpu);
}

Result<std::vector<power::GpuSample>> SimulatedGpuBackend::sample_all() {
    std::lock_guard lock(m_mutex);
    std::vector<power::GpuSample> out;
    out.reserve(m_devices.size());
    for (int i = 0; i < static_cast<int>(m_devices.size()); ++i) {
        out.push_back(sample_locked(i));
    }
    return out;
}

Result<double> SimulatedGpuBackend::set_power_limit(int gpu, double limit_w) {
    std::lock_guard lock(m_mutex);
    PALS_RETURN_IF_ERROR(check_index(gpu));
    if (!std::isfinite(limit_w)) {
        return Status::invalid_argument("power limit must be a finite number of watts");
    }
    PALS_RETURN_IF_ERROR(check_writable("set power limit"));
    Device& d = m_devices[static_cast<std::size_t>(gpu)];
    d.limit_w = std::clamp(limit_w, m_spec.power_limit_min_w, m_spec.power_limit_max_w);
    return enforced_locked(d);
}

Result<std::optional<power::ClockRangeMhz>> SimulatedGpuBackend::locked_sm_clocks(int gpu) const {
    std::lock_guard lock(m_mutex);
    PALS_RETURN_IF_ERROR(check_index(gpu));
    return m_devices[static_cast<std::size_t>(gpu)].locked;
}

Status SimulatedGpuBackend::lock_sm_clocks(int gpu, power::ClockRangeMhz range) {
    std::lock_guard lock(m_mutex);
    PALS_RETURN_IF_ERROR(check_index(gpu));
    if (!(range.min_mhz > 0.0) || !(range.max_mhz >= range.min_mhz) ||
        !std::isfinite(range.max_mhz)) {
        return Status::invalid_argument("locked SM clocks need 0 < min <= max MHz");
    }
    PALS_RETURN_IF_ERROR(check_writable("lock SM clocks"));
    range.min_mhz = std::clamp(range.min_mhz, m_spec.sm_clock_min_mhz, m_spec.sm_clock_max_mhz);
    range.max_mhz = std::clamp(range.max_mhz, range.min_mhz, m_spec.sm_clock_max_mhz);
    m_devices[static_cast<std::size_t>(gpu)].locked = range;
    return Status::ok();
}

Status SimulatedGpuBackend::reset_sm_clocks(int gpu) {
    std::lock_guard lock(m_mutex);
    PALS_RETURN_IF_ERROR(check_index(gpu));
    PALS_RETURN_IF_ERROR(check_writable("reset SM clocks"));
    m_devices[static_cast<std::size_t>(gpu)].locked.reset();
    return Status::ok();
}

}  // namespace pals::sim
