#pragma once
/// @file nvml_library.hpp
/// @brief dlopen of libnvidia-ml.so.1 and dlsym of the functions PALS uses, newest symbol version
/// first (DCGM's nvml_loader idea). No NVIDIA header or library is needed at build time.
///
/// Thread-safety: immutable after load(); the function pointers may be called from any thread
/// (NVML itself is thread-safe).

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "pals/common/status.hpp"
#include "power/nvml/nvml_types.hpp"

namespace pals::power::nvml {

/// The resolved NVML functions. Required ones are never null after NvmlLibrary::load();
/// optional ones are null when the library lacks every symbol name tried.
struct NvmlFunctions {
    // required
    InitFn init = nullptr;
    ShutdownFn shutdown = nullptr;
    DeviceGetCountFn device_get_count = nullptr;
    DeviceGetHandleByIndexFn device_get_handle_by_index = nullptr;
    DeviceGetNameFn device_get_name = nullptr;
    DeviceGetUuidFn device_get_uuid = nullptr;
    DeviceGetUintFn device_get_power_usage = nullptr;
    DeviceGetUintFn device_get_power_management_limit = nullptr;
    DeviceGetLimitConstraintsFn device_get_power_management_limit_constraints = nullptr;
    DeviceGetUintFn device_get_power_management_default_limit = nullptr;
    DeviceGetUintFn device_get_enforced_power_limit = nullptr;
    DeviceSetPowerLimitFn device_set_power_management_limit = nullptr;
    DeviceGetClockInfoFn device_get_clock_info = nullptr;
    // optional
    ErrorStringFn error_string = nullptr;
    SystemGetDriverVersionFn system_get_driver_version = nullptr;
    DeviceGetTotalEnergyFn device_get_total_energy_consumption = nullptr;
    DeviceGetClockInfoFn device_get_max_clock_info = nullptr;
    DeviceGetClocksEventReasonsFn device_get_current_clocks_event_reasons = nullptr;
    DeviceSetGpuLockedClocksFn device_set_gpu_locked_clocks = nullptr;
    DeviceResetGpuLockedClocksFn device_reset_gpu_locked_clocks = nullptr;
};

/// One loaded NVML library. Unloads it (dlclose) on destruction; does not call nvmlInit or
/// nvmlShutdown (NvmlBackend does).
class NvmlLibrary {
public:
    /// The library names tried when no path is given, in order.
    static constexpr std::string_view kDefaultName = "libnvidia-ml.so.1";
    static constexpr std::string_view kFallbackName = "libnvidia-ml.so";

    /// dlopens `path` (a file path or a soname searched on the loader path) and resolves the
    /// functions. kUnavailable when the library cannot be loaded or lacks a required function;
    /// the message names the path, dlerror() and what to do.
    [[nodiscard]] static Result<std::unique_ptr<NvmlLibrary>> load(const std::string& path);

    ~NvmlLibrary();
    NvmlLibrary(const NvmlLibrary&) = delete;
    NvmlLibrary& operator=(const NvmlLibrary&) = delete;

    [[nodiscard]] const NvmlFunctions& fn() const { return m_fn; }
    [[nodiscard]] const std::string& path() const { return m_path; }

    /// The symbol that `function` (a field name of NvmlFunctions, e.g. "init") resolved to, e.g.
    /// "nvmlInit_v2"; empty when unresolved or unknown.
    [[nodiscard]] std::string symbol_for(std::string_view function) const;

    /// status_from_nvml() with the library's own nvmlErrorString text.
    [[nodiscard]] Status check(ReturnCode rc, std::string_view context) const;

private:
    NvmlLibrary(void* handle, std::string path) : m_handle(handle), m_path(std::move(path)) {}

    void* m_handle;
    std::string m_path;
    NvmlFunctions m_fn;
    std::vector<std::pair<std::string, std::string>> m_symbols;  ///< function -> symbol used
};

}  // namespace pals::power::nvml
