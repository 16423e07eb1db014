#pragma once
/// @file fake_driver.hpp
/// @brief The state machine behind the fake libnvidia-ml.so.1 (docs/backends.md): simulated GPUs
/// (GpuPhysics under the current limit and a configured steady load), device state shared by
/// processes through a flock-protected JSON state file, and injected faults.
///
/// Configuration: the JSON file named by $PALS_FAKE_NVML_CONFIG, read by the first nvmlInit of
/// a process (again after the last nvmlShutdown). State: $PALS_FAKE_NVML_STATE, default
/// /tmp/pals-fake-nvml-<uid>.json (+ ".lock" for flock).
///
/// Thread-safety: not thread-safe; the exported C functions serialise calls with one mutex.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "pals/sim/gpu_physics.hpp"
#include "power/nvml/nvml_types.hpp"

namespace pals::power::fake_nvml {

/// The most GPUs a configuration may declare.
inline constexpr int kMaxDevices = 64;
/// An external report older than this no longer counts (the reporting process is gone), s.
inline constexpr double kExternalStaleS = 5.0;

/// One injected fault. A call "matches" when its function (compared without a _v2/_v3 suffix)
/// and GPU fit the filters; the fault fires on matches after the first `after_calls`, at most
/// `times` times (negative: always).
struct Fault {
    enum class Kind { kError, kLost, kDelay };
    Kind kind = Kind::kError;
    std::string function;  ///< empty: every function
    int gpu = -1;          ///< -1: every GPU (and calls without a GPU)
    long after_calls = 0;
    long times = -1;
    nvml::ReturnCode error = nvml::kErrorUnknown;  ///< kError
    double delay_s = 0.0;                          ///< kDelay
    long matched = 0;
    long fired = 0;
};

/// The steady work each GPU runs, as one repeated engine step; or "external": power and clock
/// are what another process reports through FakeDriver::report() (`pals sim-serve`), idle when
/// its last report is older than kExternalStaleS.
struct LoadConfig {
    std::string kind = "idle";  ///< idle, decode, prefill, custom or external
    sim::StepWork work;         ///< empty for idle
};

/// The parsed configuration.
struct FakeConfig {
    int count = 8;
    sim::GpuSpec spec;
    bool root = true;
    LoadConfig load;
    std::optional<double> out_of_band_limit_w;
    std::string driver_version = "550.54.15";
    std::vector<Fault> faults;
};

/// Parses the configuration JSON text (an empty text is the default configuration).
/// On error returns nullopt and sets `error`.
[[nodiscard]] std::optional<FakeConfig> parse_config(const std::string& text, std::string& error);

/// The persistent state of one GPU.
struct DeviceState {
    double limit_w = 0.0;
    double locked_min_mhz = 0.0;  ///< 0: not locked
    double locked_max_mhz = 0.0;
    double energy_j = 0.0;   ///< at updated_s
    double updated_s = 0.0;  ///< CLOCK_MONOTONIC seconds (shared by all processes of a boot)
    // External load only: the last report.
    double reported_power_w = 0.0;
    double reported_clock_mhz = 0.0;
    double reported_s = -1.0;  ///< CLOCK_MONOTONIC seconds; < 0: never
};

/// What an external load reports for one GPU.
struct ExternalReading {
    double power_w = 0.0;
    double sm_clock_mhz = 0.0;
};

/// What a GPU does right now under its state and the load.
struct Operating {
    double power_w = 0.0;
    double sm_clock_mhz = 0.0;
    std::uint64_t reasons = 0;
};

/// The fake driver of one process.
class FakeDriver {
public:
    /// nvmlInit: reads the configuration (first init only) and prepares the state file.
    nvml::ReturnCode init();
    /// In-process use (`pals sim-serve`): this configuration and state file instead of the
    /// environment's. The configuration file other processes read must describe the same GPUs.
    nvml::ReturnCode init(FakeConfig config, std::string state_path);
    /// nvmlShutdown.
    nvml::ReturnCode shutdown();
    [[nodiscard]] bool initialized() const { return m_init_count > 0; }
    [[nodiscard]] const FakeConfig& config() const { return m_config; }
    /// The message for NVML_ERROR_UNKNOWN when init failed on the configuration or state file.
    [[nodiscard]] const std::string& last_error() const { return m_last_error; }

    /// Applies the faults to a call of `function` on `gpu` (-1: no GPU). Sleeps for delay faults.
    [[nodiscard]] nvml::ReturnCode check_faults(const char* function, int gpu);

    /// Reads every device's state (shared lock). nullopt on I/O failure (m_last_error says why).
    [[nodiscard]] std::optional<std::vector<DeviceState>> read_state();
    /// Changes GPU `gpu`'s state under an exclusive lock: folds the energy up to now, then calls
    /// `change` (which may return an NVML error to abort without writing).
    [[nodiscard]] nvml::ReturnCode modify(
        int gpu, const std::function<nvml::ReturnCode(DeviceState&)>& change);

    /// External load: records one reading per GPU for GPUs [first_gpu, first_gpu + n) (under
    /// one exclusive lock), folding each of those energy counters up to now at its previous
    /// reading first; the other GPUs are left alone, so several processes (`pals sim-serve
    /// --gpu-offset`) can share one node. kErrorInvalidArgument if `readings` is empty or the
    /// range is not inside the configured GPUs.
    [[nodiscard]] nvml::ReturnCode report(int first_gpu,
                                          const std::vector<ExternalReading>& readings);

    /// The operating point of a device in `state`.
    [[nodiscard]] Operating operating(const DeviceState& state) const;
    /// The counter value now, J.
    [[nodiscard]] double energy_now(const DeviceState& state, double now_s) const;
    /// The enforced limit of a device in `state`, W.
    [[nodiscard]] double enforced_limit_w(const DeviceState& state) const;

    [[nodiscard]] std::string device_name() const;
    [[nodiscard]] std::string device_uuid(int gpu) const;

    /// CLOCK_MONOTONIC now, s.
    [[nodiscard]] static double now_s();

private:
    [[nodiscard]] nvml::ReturnCode open_state();
    [[nodiscard]] nvml::ReturnCode modify_all(
        const std::function<nvml::ReturnCode(std::vector<DeviceState>&, double now)>& change);
    [[nodiscard]] DeviceState fresh_device(double now) const;
    [[nodiscard]] std::optional<std::vector<DeviceState>> load_locked(bool& valid);
    [[nodiscard]] bool store_locked(const std::vector<DeviceState>& devices);
    [[nodiscard]] int lock_file(int operation);

    int m_init_count = 0;
    FakeConfig m_config;
    std::optional<sim::GpuPhysics> m_physics;
    std::string m_state_path;
    std::string m_last_error;
    std::vector<bool> m_lost;
};

}  // namespace pals::power::fake_nvml
