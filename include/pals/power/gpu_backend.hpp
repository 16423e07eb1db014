#pragma once
/// @file gpu_backend.hpp
/// @brief The GPU power interface (DESIGN.md 1.1): what the controller, the profiler and the CLI
/// read from and write to a GPU, in SI units (W, J, MHz, s), whatever sits behind it (NVML, the
/// simulator, a mock).
///
/// Implementations: NvmlBackend (nvml_backend.hpp, real GPUs through a run-time loaded
/// libnvidia-ml.so.1), SimulatedGpuBackend (simulated_gpu_backend.hpp, the simulator's GPUs) and
/// MockGpuBackend (tests/mocks/mock_gpu_backend.hpp).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pals/common/clock.hpp"
#include "pals/common/status.hpp"

namespace pals::power {

/// Why the SM clock is below its maximum. The values are NVML's clocks-event-reason bits
/// (`nvmlClocksEventReason*`), so an NVML mask converts without translation.
enum class ThrottleReason : std::uint64_t {
    kGpuIdle = 0x1,                    ///< nothing runs on the GPU
    kApplicationsClocksSetting = 0x2,  ///< application or locked clocks bound the clock
    kSwPowerCap = 0x4,                 ///< the power limit binds (the firmware lowers the clock)
    kHwSlowdown = 0x8,                 ///< hardware slowdown (thermal or power brake signal)
    kSyncBoost = 0x10,                 ///< clock synchronised with other GPUs of a sync-boost group
    kSwThermalSlowdown = 0x20,         ///< software thermal slowdown
    kHwThermalSlowdown = 0x40,         ///< hardware thermal slowdown
    kHwPowerBrakeSlowdown = 0x80,      ///< external power brake assertion (system power supply)
    kDisplayClockSetting = 0x100,      ///< display clock setting
};

/// A set of ThrottleReason bits, as NVML reports it.
using ThrottleMask = std::uint64_t;

/// The bit of one reason.
[[nodiscard]] constexpr ThrottleMask to_mask(ThrottleReason reason) {
    return static_cast<ThrottleMask>(reason);
}

/// Names of the set bits, lower-case with underscores ("sw_power_cap", "gpu_idle", ...), in bit
/// order; bits PALS does not know appear as hexadecimal ("0x200").
[[nodiscard]] std::vector<std::string> throttle_reason_names(ThrottleMask mask);

/// The names joined with ",", or "none" for an empty mask.
[[nodiscard]] std::string throttle_reasons_to_string(ThrottleMask mask);

/// What a power limit may be set to on one GPU, in watts.
struct PowerLimitRange {
    double min_w = 0.0;
    double max_w = 0.0;
    double default_w = 0.0;  ///< the limit the GPU boots with

    /// `limit_w` clamped to [min_w, max_w].
    [[nodiscard]] double clamp(double limit_w) const;
    /// True when min_w <= limit_w <= max_w.
    [[nodiscard]] bool contains(double limit_w) const;
};

/// A locked SM clock range, in MHz (`nvidia-smi -lgc MIN,MAX`).
struct ClockRangeMhz {
    double min_mhz = 0.0;
    double max_mhz = 0.0;
    friend bool operator==(const ClockRangeMhz&, const ClockRangeMhz&) = default;
};

/// The identity of one GPU.
struct GpuInfo {
    int index = 0;
    std::string name;  ///< marketing name, e.g. "NVIDIA H100 80GB HBM3"
    std::string uuid;  ///< stable across reboots and index changes, e.g. "GPU-8f6c..."
};

/// One reading of one GPU. A quantity the GPU cannot report (NOT_SUPPORTED) is NaN.
struct GpuSample {
    int index = 0;
    Seconds time{0.0};                    ///< when it was read, on the backend's clock
    double power_w = 0.0;                 ///< board power (NVML: a 1-s average on Ampere+)
    double energy_j = 0.0;                ///< cumulative since the driver loaded (monotone)
    double sm_clock_mhz = 0.0;            ///< current SM clock
    double power_limit_w = 0.0;           ///< requested limit (what was set)
    double enforced_power_limit_w = 0.0;  ///< limit in force after every limiter (<= requested)
    ThrottleMask throttle_reasons = 0;    ///< why the clock is below its maximum

    /// True when the power limit holds the clock down (SW power cap or power brake).
    [[nodiscard]] bool is_power_capped() const {
        return (throttle_reasons & (to_mask(ThrottleReason::kSwPowerCap) |
                                    to_mask(ThrottleReason::kHwPowerBrakeSlowdown))) != 0;
    }
};

/// Reads and controls the GPUs of one node. GPUs are numbered 0..device_count()-1.
///
/// Errors: an index out of range is kNotFound; a missing capability kUnavailable; a write
/// without root/CAP_SYS_ADMIN kPermissionDenied; a lost GPU kUnavailable.
/// Thread-safety: not thread-safe unless an implementation says otherwise; one owner (the
/// controller thread or a CLI command) calls it.
class GpuBackend {
public:
    virtual ~GpuBackend() = default;

    /// A short name of the implementation ("nvml", "simulated", "mock").
    [[nodiscard]] virtual std::string_view backend_name() const = 0;

    /// Number of GPUs.
    [[nodiscard]] virtual Result<int> device_count() const = 0;

    /// Name and UUID of GPU `gpu`.
    [[nodiscard]] virtual Result<GpuInfo> device_info(int gpu) const = 0;

    /// Allowed power limits of GPU `gpu`, W.
    [[nodiscard]] virtual Result<PowerLimitRange> power_limit_range(int gpu) const = 0;

    /// The requested (set) power limit of GPU `gpu`, W.
    [[nodiscard]] virtual Result<double> power_limit_w(int gpu) const = 0;

    /// The limit in force after every limiter (host, out-of-band, VBIOS), W; at most the
    /// requested limit.
    [[nodiscard]] virtual Result<double> enforced_power_limit_w(int gpu) const = 0;

    /// Reads one GPU.
    [[nodiscard]] virtual Result<GpuSample> sample(int gpu) = 0;

    /// Reads every GPU once (one call per control tick, GEOPM's read_batch). Fails if any GPU
    /// fails; the Status names it.
    [[nodiscard]] virtual Result<std::vector<GpuSample>> sample_all() = 0;

    /// Sets the power limit of GPU `gpu` to `limit_w` clamped to power_limit_range(), then reads
    /// the limit back.
    /// @return the enforced limit after the write, W (it may be below the request when an
    ///         out-of-band limiter holds it lower).
    [[nodiscard]] virtual Result<double> set_power_limit(int gpu, double limit_w) = 0;

    /// The SM clock range locked on GPU `gpu`, or nullopt when the clocks are not locked.
    /// NvmlBackend: NVML cannot read locked clocks back, so this is what this object locked
    /// (nullopt if it locked nothing).
    [[nodiscard]] virtual Result<std::optional<ClockRangeMhz>> locked_sm_clocks(int gpu) const = 0;

    /// Locks the SM clock of GPU `gpu` into `range` (MHz).
    [[nodiscard]] virtual Status lock_sm_clocks(int gpu, ClockRangeMhz range) = 0;

    /// Undoes lock_sm_clocks(): the firmware picks clocks freely again.
    [[nodiscard]] virtual Status reset_sm_clocks(int gpu) = 0;
};

}  // namespace pals::power
