#pragma once
/// @file simulated_gpu_backend.hpp
/// @brief The simulator's GPUs behind the power::GpuBackend interface.
///
/// The backend only keeps state: limits, locked clocks, an energy counter and the last reading.
/// The simulator computes what each GPU drew (GpuPhysics::run_step under power_limit_w() and
/// locked_sm_clocks()) and reports it with record_interval(); time is the sum of the reported
/// intervals, so it follows the simulator's clock, not the wall clock.

#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "pals/power/gpu_backend.hpp"
#include "pals/sim/gpu_spec.hpp"

namespace pals::sim {

/// `count` identical simulated GPUs of type `spec`.
/// Thread-safety: thread-safe (one internal mutex), so a metrics reader may sample while the
/// simulator records.
/// The NVML clocks-event reasons of what held a simulated GPU's clock (sim::ClockLimit bits):
/// a locked clock is kApplicationsClocksSetting, a binding cap kSwPowerCap, a cap not met even at
/// the lowest clock kSwPowerCap | kHwSlowdown (the firmware's last resort), an idle GPU kGpuIdle.
[[nodiscard]] power::ThrottleMask throttle_reasons_of(unsigned clock_limits, bool busy = true);

class SimulatedGpuBackend final : public power::GpuBackend {
public:
    /// @param count number of GPUs (a count below 1 gives a backend with no GPU).
    SimulatedGpuBackend(GpuSpec spec, int count);

    /// Records that GPU `gpu` drew `power_w` on average at SM clock `sm_clock_mhz` for `dt_s`
    /// seconds: energy grows by power_w * dt_s, and the reading (power, clock, throttle reasons)
    /// becomes this interval's. `reasons` are the physics' own (throttle_reasons_of()); without
    /// them they are derived: kSwPowerCap when the clock is below its ceiling (spec maximum, or
    /// the locked maximum) because the cap binds, kHwSlowdown when the power still exceeds the
    /// enforced limit, and kApplicationsClocksSetting when a locked clock is the ceiling.
    /// @return kNotFound for a bad index, kInvalidArgument for negative or non-finite values.
    [[nodiscard]] Status record_interval(int gpu, double power_w, double sm_clock_mhz, double dt_s,
                                         std::optional<power::ThrottleMask> reasons = std::nullopt);

    /// false makes every write return kPermissionDenied, as NVML does without root.
    void set_writable(bool writable);

    /// Sets the limit an out-of-band limiter enforces on every GPU (W); the enforced limit is
    /// min(requested, this). nullopt removes it.
    void set_out_of_band_limit(std::optional<double> limit_w);

    [[nodiscard]] const GpuSpec& spec() const { return m_spec; }

    [[nodiscard]] std::string_view backend_name() const override { return "simulated"; }
    [[nodiscard]] Result<int> device_count() const override;
    [[nodiscard]] Result<power::GpuInfo> device_info(int gpu) const override;
    [[nodiscard]] Result<power::PowerLimitRange> power_limit_range(int gpu) const override;
    [[nodiscard]] Result<double> power_limit_w(int gpu) const override;
    [[nodiscard]] Result<double> enforced_power_limit_w(int gpu) const override;
    [[nodiscard]] Result<power::GpuSample> sample(int gpu) override;
    [[nodiscard]] Result<std::vector<power::GpuSample>> sample_all() override;
    [[nodiscard]] Result<double> set_power_limit(int gpu, double limit_w) override;
    [[nodiscard]] Result<std::optional<power::ClockRangeMhz>> locked_sm_clocks(
        int gpu) const override;
    [[nodiscard]] Status lock_sm_clocks(int gpu, power::ClockRangeMhz range) override;
    [[nodiscard]] Status reset_sm_clocks(int gpu) override;

private:
    struct Device {
        double limit_w = 0.0;
        std::optional<power::ClockRangeMhz> locked;
        double energy_j = 0.0;
        double time_s = 0.0;
        double power_w = 0.0;
        double sm_clock_mhz = 0.0;
        power::ThrottleMask reasons = 0;
    };

    [[nodiscard]] Status check_index(int gpu) const;
    [[nodiscard]] Status check_writable(const char* what) const;
    [[nodiscard]] double enforced_locked(const Device& d) const;
    [[nodiscard]] power::GpuSample sample_locked(int gpu) const;

    GpuSpec m_spec;
    mutable std::mutex m_mutex;
    std::vector<Device> m_devices;
    bool m_writable = true;
    std::optional<double> m_out_of_band_limit_w;
};

}  // namespace pals::sim
