#pragma once
/// @file nvml_backend.hpp
/// @brief GpuBackend on real NVIDIA GPUs through NVML, loaded at run time with dlopen (no CUDA
/// at build time). NVML's mW/mJ become W/J here and nowhere else.
///
/// Which library: NvmlBackend::Options::library_path, else the PALS_NVML_LIB environment
/// variable, else the system's libnvidia-ml.so.1 (then libnvidia-ml.so). Without a usable library
/// or driver open() returns kUnavailable (the CLI's exit code 3).
///
/// Writes: set_power_limit() clamps the request to the GPU's constraints and reads the enforced
/// limit back. Without write permission (no root / CAP_SYS_ADMIN) reads keep working; the first
/// refused write logs one warning and every refused write returns kPermissionDenied.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pals/common/clock.hpp"
#include "pals/power/gpu_backend.hpp"

namespace pals::power {

namespace nvml {
class NvmlLibrary;
}

/// Thread-safety: not thread-safe (one owner); NVML itself is.
class NvmlBackend final : public GpuBackend {
public:
    /// The environment variable naming the library when Options::library_path is empty.
    static constexpr const char* kLibraryEnvVar = "PALS_NVML_LIB";
    /// A call that takes longer than this logs one warning per NVML function, s.
    static constexpr double kSlowCallWarnS = 0.1;

    struct Options {
        std::string library_path;      ///< empty: $PALS_NVML_LIB, else libnvidia-ml.so.1
        const Clock* clock = nullptr;  ///< sample timestamps; nullptr: an own SystemClock.
                                       ///< Not owned; must outlive the backend.
    };

    /// Loads the library, calls nvmlInit and enumerates the GPUs. A GPU whose handle cannot be
    /// obtained (e.g. lost) does not fail open(): calls on it return that error.
    [[nodiscard]] static Result<std::unique_ptr<NvmlBackend>> open(const Options& options);

    /// The library path open() would use for `library_path` (flag, then env, then default).
    [[nodiscard]] static std::string resolve_library_path(const std::string& library_path);

    /// Calls nvmlShutdown and unloads the library.
    ~NvmlBackend() override;
    NvmlBackend(const NvmlBackend&) = delete;
    NvmlBackend& operator=(const NvmlBackend&) = delete;

    /// The path the library was loaded from.
    [[nodiscard]] const std::string& library_path() const;
    /// The driver version string ("550.54.15"), or empty when NVML cannot say.
    [[nodiscard]] const std::string& driver_version() const { return m_driver_version; }
    /// The symbol a function resolved to, e.g. symbol_for("init") == "nvmlInit_v2" (diagnostics).
    [[nodiscard]] std::string symbol_for(std::string_view function) const;

    [[nodiscard]] std::string_view backend_name() const override { return "nvml"; }
    [[nodiscard]] Result<int> device_count() const override;
    [[nodiscard]] Result<GpuInfo> device_info(int gpu) const override;
    [[nodiscard]] Result<PowerLimitRange> power_limit_range(int gpu) const override;
    [[nodiscard]] Result<double> power_limit_w(int gpu) const override;
    [[nodiscard]] Result<double> enforced_power_limit_w(int gpu) const override;
    [[nodiscard]] Result<GpuSample> sample(int gpu) override;
    [[nodiscard]] Result<std::vector<GpuSample>> sample_all() override;
    [[nodiscard]] Result<double> set_power_limit(int gpu, double limit_w) override;
    [[nodiscard]] Result<std::optional<ClockRangeMhz>> locked_sm_clocks(int gpu) const override;
    [[nodiscard]] Status lock_sm_clocks(int gpu, ClockRangeMhz range) override;
    [[nodiscard]] Status reset_sm_clocks(int gpu) override;

private:
    struct Device;

    explicit NvmlBackend(std::unique_ptr<nvml::NvmlLibrary> library, const Clock* clock);

    [[nodiscard]] Result<const Device*> device(int gpu) const;
    /// Times one NVML call and turns its code into a Status with `what` and the GPU as context.
    template <class Call>
    [[nodiscard]] Status call(int gpu, const char* what, Call&& fn) const;
    /// Reads a mW quantity as W; NOT_SUPPORTED gives NaN (and one warning) when `optional`.
    template <class Fn>
    [[nodiscard]] Result<double> read_mw(int gpu, const char* what, Fn fn, bool optional) const;
    [[nodiscard]] Status on_write_error(Status status) const;
    void warn_once(const std::string& key, const std::string& message) const;

    std::unique_ptr<nvml::NvmlLibrary> m_library;
    std::unique_ptr<Clock> m_own_clock;
    const Clock* m_clock;
    std::vector<Device> m_devices;
    std::string m_driver_version;
    mutable std::vector<std::string> m_warned;  ///< keys of warnings already logged
};

}  // namespace pals::power
