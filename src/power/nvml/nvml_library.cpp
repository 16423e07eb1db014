#include "power/nvml/nvml_library.hpp"

#include <dlfcn.h>

#include <initializer_list>
#include <utility>

#include "power/nvml/nvml_error.hpp"

namespace pals::power::nvml {

namespace {

/// Looks up the first of `names` that the library exports.
template <class Fn>
bool resolve(void* handle, std::initializer_list<const char*> names, Fn& out, std::string& used) {
    for (const char* name : names) {
        void* sym = ::dlsym(handle, name);
        if (sym != nullptr) {
            // POSIX guarantees that a data pointer from dlsym converts to a function pointer.
            out = reinterpret_cast<Fn>(sym);  // NOLINT(cppcoreguidelines-pro-type-reinterpret-cast)
            used = name;
            return true;
        }
    }
    return false;
}

std::string join(std::initializer_list<const char*> names) {
    std::string out;
    for (const char* name : names) {
        out += (out.empty() ? "" : " or ") + std::string(name);
    }
    return out;
}

}  // namespace

Result<std::unique_ptr<NvmlLibrary>> NvmlLibrary::load(const std::string& path) {
    ::dlerror();
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
        const char* why = ::dlerror();
        return Status::unavailable("cannot load NVML from '" + path + "' (" +
                                   (why != nullptr ? why : "unknown dlopen error") +
                                   "): is the NVIDIA driver installed? Point --nvml-lib or "
                                   "PALS_NVML_LIB at libnvidia-ml.so.1");
    }
    std::unique_ptr<NvmlLibrary> lib(new NvmlLibrary(handle, path));
    NvmlFunctions& f = lib->m_fn;
    std::string missing;

    auto need = [&](const char* field, std::initializer_list<const char*> names, auto& out) {
        std::string used;
        if (resolve(handle, names, out, used)) {
            lib->m_symbols.emplace_back(field, used);
        } else {
            missing += (missing.empty() ? "" : ", ") + join(names);
        }
    };
    auto want = [&](const char* field, std::initializer_list<const char*> names, auto& out) {
        std::string used;
        if (resolve(handle, names, out, used)) {
            lib->m_symbols.emplace_back(field, used);
        }
    };

    need("init", {"nvmlInit_v2", "nvmlInit"}, f.init);
    need("shutdown", {"nvmlShutdown"}, f.shutdown);
    need("device_get_count", {"nvmlDeviceGetCount_v2", "nvmlDeviceGetCount"}, f.device_get_count);
    need("device_get_handle_by_index",
         {"nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex"},
         f.device_get_handle_by_index);
    need("device_get_name", {"nvmlDeviceGetName"}, f.device_get_name);
    need("device_get_uuid", {"nvmlDeviceGetUUID"}, f.device_get_uuid);
    need("device_get_power_usage", {"nvmlDeviceGetPowerUsage"}, f.device_get_power_usage);
    need("device_get_power_management_limit", {"nvmlDeviceGetPowerManagementLimit"},
         f.device_get_power_management_limit);
    need("device_get_power_management_limit_constraints",
         {"nvmlDeviceGetPowerManagementLimitConstraints"},
         f.device_get_power_management_limit_constraints);
    need("device_get_power_management_default_limit", {"nvmlDeviceGetPowerManagementDefaultLimit"},
         f.device_get_power_management_default_limit);
    need("device_get_enforced_power_limit", {"nvmlDeviceGetEnforcedPowerLimit"},
         f.device_get_enforced_power_limit);
    need("device_set_power_management_limit", {"nvmlDeviceSetPowerManagementLimit"},
         f.device_set_power_management_limit);
    need("device_get_clock_info", {"nvmlDeviceGetClockInfo"}, f.device_get_clock_info);

    want("error_string", {"nvmlErrorString"}, f.error_string);
    want("system_get_driver_version", {"nvmlSystemGetDriverVersion"}, f.system_get_driver_version);
    want("device_get_total_energy_consumption", {"nvmlDeviceGetTotalEnergyConsumption"},
         f.device_get_total_energy_consumption);
    want("device_get_max_clock_info", {"nvmlDeviceGetMaxClockInfo"}, f.device_get_max_clock_info);
    want("device_get_current_clocks_event_reasons",
         {"nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons"},
         f.device_get_current_clocks_event_reasons);
    want("device_set_gpu_locked_clocks", {"nvmlDeviceSetGpuLockedClocks"},
         f.device_set_gpu_locked_clocks);
    want("device_reset_gpu_locked_clocks", {"nvmlDeviceResetGpuLockedClocks"},
         f.device_reset_gpu_locked_clocks);

    if (!missing.empty()) {
        return Status::unavailable("'" + path + "' is not a usable NVML library: it lacks " +
                                   missing + " (driver too old, or not libnvidia-ml)");
    }
    return lib;
}

NvmlLibrary::~NvmlLibrary() {
    if (m_handle != nullptr) {
        ::dlclose(m_handle);
    }
}

std::string NvmlLibrary::symbol_for(std::string_view function) const {
    for (const auto& [field, symbol] : m_symbols) {
        if (field == function) {
            return symbol;
        }
    }
    return {};
}

Status NvmlLibrary::check(ReturnCode rc, std::string_view context) const {
    if (rc == kSuccess) {
        return Status::ok();
    }
    const char* text = m_fn.error_string != nullptr ? m_fn.error_string(rc) : nullptr;
    return status_from_nvml(rc, context, text);
}

}  // namespace pals::power::nvml
