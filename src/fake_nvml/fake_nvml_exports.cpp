// The C ABI of the fake libnvidia-ml.so.1: every NVML function NvmlBackend resolves, with the
// signatures of src/power/nvml/nvml_types.hpp (checked below with static_assert). Each call
// takes one process-wide mutex, applies injected faults, then reads or changes FakeDriver state.
//
// Built twice (src/fake_nvml/CMakeLists.txt): the full library, and with
// PALS_FAKE_NVML_LEGACY an old-driver variant exporting only unversioned names
// (nvmlInit, nvmlDeviceGetCount, nvmlDeviceGetHandleByIndex,
// nvmlDeviceGetCurrentClocksThrottleReasons) and no locked-clock functions, so the backend's
// symbol fallbacks are exercised for real.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <type_traits>

#include "fake_nvml/fake_driver.hpp"
#include "power/nvml/nvml_types.hpp"

namespace nvml = pals::power::nvml;
using nvml::ReturnCode;
using pals::power::fake_nvml::DeviceState;
using pals::power::fake_nvml::FakeDriver;
using pals::power::fake_nvml::kMaxDevices;

/// What an nvmlDevice_t points to in this library.
struct pals::power::nvml::DeviceOpaque {
    int index = 0;
};

namespace {

constexpr double kMilliPerUnit = 1e3;
constexpr unsigned int kMemClockMhz = 2619;
constexpr unsigned int kVideoClockMhz = 1755;
constexpr unsigned int kVideoClockMaxMhz = 1980;

std::mutex g_mutex;
FakeDriver g_driver;

std::array<nvml::DeviceOpaque, kMaxDevices> make_handles() {
    std::array<nvml::DeviceOpaque, kMaxDevices> handles{};
    for (int i = 0; i < kMaxDevices; ++i) {
        handles[static_cast<std::size_t>(i)].index = i;
    }
    return handles;
}
std::array<nvml::DeviceOpaque, kMaxDevices> g_handles = make_handles();

/// Checks init and the handle; returns the GPU index in `gpu`.
ReturnCode enter(nvml::Device device, const char* function, int& gpu) {
    if (!g_driver.initialized()) {
        return nvml::kErrorUninitialized;
    }
    const std::less<const nvml::DeviceOpaque*> before;
    if (device == nullptr || before(device, g_handles.data()) ||
        !before(device, g_handles.data() + g_driver.config().count)) {
        return nvml::kErrorInvalidArgument;
    }
    gpu = device->index;
    return g_driver.check_faults(function, gpu);
}

/// Runs `read` on the current state of device `gpu`.
template <class Read>
ReturnCode with_state(int gpu, Read&& read) {
    auto devices = g_driver.read_state();
    if (!devices) {
        return nvml::kErrorUnknown;
    }
    return read((*devices)[static_cast<std::size_t>(gpu)]);
}

/// The shape of every per-device export: the library lock, then enter() (initialised, a valid
/// handle, injected faults), then `body(gpu)`.
template <class Body>
ReturnCode on_device(nvml::Device device, const char* function, Body&& body) {
    std::lock_guard lock(g_mutex);
    int gpu = 0;
    if (const ReturnCode rc = enter(device, function, gpu); rc != nvml::kSuccess) {
        return rc;
    }
    return body(gpu);
}

/// A getter of the device's current state: on_device(), a null check of `out`, then
/// `*out = read(state)`.
template <class Out, class Read>
ReturnCode read_device(nvml::Device device, const char* function, Out* out, Read&& read) {
    return on_device(device, function, [&](int gpu) {
        if (out == nullptr) {
            return nvml::kErrorInvalidArgument;
        }
        return with_state(gpu, [&](const DeviceState& state) {
            *out = read(state);
            return nvml::kSuccess;
        });
    });
}

unsigned int to_mw(double w) {
    return static_cast<unsigned int>(std::lround(w * kMilliPerUnit));
}

ReturnCode copy_string(const std::string& value, char* out, unsigned int length) {
    if (out == nullptr) {
        return nvml::kErrorInvalidArgument;
    }
    if (value.size() + 1 > length) {
        return nvml::kErrorInsufficientSize;
    }
    std::memcpy(out, value.c_str(), value.size() + 1);
    return nvml::kSuccess;
}

ReturnCode do_init() {
    std::lock_guard lock(g_mutex);
    return g_driver.init();
}

ReturnCode do_get_count(unsigned int* count, const char* function) {
    std::lock_guard lock(g_mutex);
    if (!g_driver.initialized()) {
        return nvml::kErrorUninitialized;
    }
    if (count == nullptr) {
        return nvml::kErrorInvalidArgument;
    }
    if (const ReturnCode rc = g_driver.check_faults(function, -1); rc != nvml::kSuccess) {
        return rc;
    }
    *count = static_cast<unsigned int>(g_driver.config().count);
    return nvml::kSuccess;
}

ReturnCode do_get_handle(unsigned int index, nvml::Device* device, const char* function) {
    std::lock_guard lock(g_mutex);
    if (!g_driver.initialized()) {
        return nvml::kErrorUninitialized;
    }
    if (device == nullptr || index >= static_cast<unsigned int>(g_driver.config().count)) {
        return nvml::kErrorInvalidArgument;
    }
    if (const ReturnCode rc = g_driver.check_faults(function, static_cast<int>(index));
        rc != nvml::kSuccess) {
        return rc;
    }
    *device = &g_handles[index];
    return nvml::kSuccess;
}

ReturnCode do_get_clocks_event_reasons(nvml::Device device, unsigned long long* reasons,
                                       const char* function) {
    return read_device(device, function, reasons,
                       [](const DeviceState& s) { return g_driver.operating(s).reasons; });
}

const char* error_text(ReturnCode rc) {
    switch (rc) {
        case nvml::kSuccess:
            return "Success";
        case nvml::kErrorUninitialized:
            return "Uninitialized";
        case nvml::kErrorInvalidArgument:
            return "Invalid Argument";
        case nvml::kErrorNotSupported:
            return "Not Supported";
        case nvml::kErrorNoPermission:
            return "Insufficient Permissions";
        case nvml::kErrorAlreadyInitialized:
            return "Already Initialized";
        case nvml::kErrorNotFound:
            return "Not Found";
        case nvml::kErrorInsufficientSize:
            return "Insufficient Size";
        case nvml::kErrorInsufficientPower:
            return "Insufficient External Power";
        case nvml::kErrorDriverNotLoaded:
            return "Driver Not Loaded";
        case nvml::kErrorTimeout:
            return "Timeout";
        case nvml::kErrorIrqIssue:
            return "Interrupt request issue";
        case nvml::kErrorLibraryNotFound:
            return "NVML Shared Library Not Found";
        case nvml::kErrorFunctionNotFound:
            return "Function Not Found";
        case nvml::kErrorCorruptedInforom:
            return "Corrupted infoROM";
        case nvml::kErrorGpuIsLost:
            return "GPU is lost";
        case nvml::kErrorResetRequired:
            return "GPU requires restart";
        case nvml::kErrorOperatingSystem:
            return "The operating system has blocked the request";
        case nvml::kErrorLibRmVersionMismatch:
            return "RM has detected an NVML/RM version mismatch";
        case nvml::kErrorInUse:
            return "In use by another client";
        case nvml::kErrorMemory:
            return "Insufficient Memory";
        case nvml::kErrorNoData:
            return "No data";
        default:
            return "Unknown Error";
    }
}

}  // namespace

#define PALS_NVML_EXPORT extern "C" __attribute__((visibility("default")))

// ---- initialisation -----------------------------------------------------------------------------

#ifndef PALS_FAKE_NVML_LEGACY
PALS_NVML_EXPORT ReturnCode nvmlInit_v2() {
    return do_init();
}
static_assert(std::is_same_v<decltype(&nvmlInit_v2), nvml::InitFn>);
#endif

PALS_NVML_EXPORT ReturnCode nvmlInit() {
    return do_init();
}
static_assert(std::is_same_v<decltype(&nvmlInit), nvml::InitFn>);

PALS_NVML_EXPORT ReturnCode nvmlInitWithFlags(unsigned int /*flags*/) {
    return do_init();
}

PALS_NVML_EXPORT ReturnCode nvmlShutdown() {
    std::lock_guard lock(g_mutex);
    return g_driver.shutdown();
}
static_assert(std::is_same_v<decltype(&nvmlShutdown), nvml::ShutdownFn>);

PALS_NVML_EXPORT const char* nvmlErrorString(ReturnCode rc) {
    std::lock_guard lock(g_mutex);
    if (rc == nvml::kErrorUnknown && !g_driver.last_error().empty()) {
        // A configuration or state-file problem of the fake itself: say what it was.
        static std::string message;
        message = g_driver.last_error();
        return message.c_str();
    }
    return error_text(rc);
}
static_assert(std::is_same_v<decltype(&nvmlErrorString), nvml::ErrorStringFn>);

PALS_NVML_EXPORT ReturnCode nvmlSystemGetDriverVersion(char* version, unsigned int length) {
    std::lock_guard lock(g_mutex);
    if (!g_driver.initialized()) {
        return nvml::kErrorUninitialized;
    }
    if (const ReturnCode rc = g_driver.check_faults("nvmlSystemGetDriverVersion", -1);
        rc != nvml::kSuccess) {
        return rc;
    }
    return copy_string(g_driver.config().driver_version, version, length);
}
static_assert(
    std::is_same_v<decltype(&nvmlSystemGetDriverVersion), nvml::SystemGetDriverVersionFn>);

// ---- enumeration --------------------------------------------------------------------------------

#ifndef PALS_FAKE_NVML_LEGACY
PALS_NVML_EXPORT ReturnCode nvmlDeviceGetCount_v2(unsigned int* count) {
    return do_get_count(count, "nvmlDeviceGetCount_v2");
}
static_assert(std::is_same_v<decltype(&nvmlDeviceGetCount_v2), nvml::DeviceGetCountFn>);

PALS_NVML_EXPORT ReturnCode nvmlDeviceGetHandleByIndex_v2(unsigned int index,
                                                          nvml::Device* device) {
    return do_get_handle(index, device, "nvmlDeviceGetHandleByIndex_v2");
}
static_assert(
    std::is_same_v<decltype(&nvmlDeviceGetHandleByIndex_v2), nvml::DeviceGetHandleByIndexFn>);
#endif

PALS_NVML_EXPORT ReturnCode nvmlDeviceGetCount(unsigned int* count) {
    return do_get_count(count, "nvmlDeviceGetCount");
}
static_assert(std::is_same_v<decltype(&nvmlDeviceGetCount), nvml::DeviceGetCountFn>);

PALS_NVML_EXPORT ReturnCode nvmlDeviceGetHandleByIndex(unsigned int index, nvml::Device* device) {
    return do_get_handle(index, device, "nvmlDeviceGetHandleByIndex");
}
static_assert(
    std::is_same_v<decltype(&nvmlDeviceGetHandleByIndex), nvml::DeviceGetHandleByIndexFn>);

PALS_NVML_EXPORT ReturnCode nvmlDeviceGetName(nvml::Device device, char* name,
                                              unsigned int length) {
    return on_device(device, "nvmlDeviceGetName", [&](int /*gpu*/) -> ReturnCode {
        return copy_string(g_driver.device_name(), name, length);
    });
}
static_assert(std::is_same_v<decltype(&nvmlDeviceGetName), nvml::DeviceGetNameFn>);

PALS_NVML_EXPORT ReturnCode nvmlDeviceGetUUID(nvml::Device device, char* uuid,
                                              unsigned int length) {
    return on_device(device, "nvmlDeviceGetUUID", [&](int gpu) -> ReturnCode {
        return copy_string(g_driver.device_uuid(gpu), uuid, length);
    });
}
static_assert(std::is_same_v<decltype(&nvmlDeviceGetUUID), nvml::DeviceGetUuidFn>);

// ---- power and energy ---------------------------------------------------------------------------

PALS_NVML_EXPORT ReturnCode nvmlDeviceGetPowerUsage(nvml::Device device, unsigned int* power_mw) {
    return read_device(device, "nvmlDeviceGetPowerUsage", power_mw,
                       [](const DeviceState& s) { return to_mw(g_driver.operating(s).power_w); });
}
static_assert(std::is_same_v<decltype(&nvmlDeviceGetPowerUsage), nvml::DeviceGetUintFn>);

PALS_NVML_EXPORT ReturnCode nvmlDeviceGetTotalEnergyConsumption(nvml::Device device,
                                                                unsigned long long* energy_mj) {
    return read_device(
        device, "nvmlDeviceGetTotalEnergyConsumption", energy_mj, [](const DeviceState& s) {
            return static_cast<unsigned long long>(
                std::llround(g_driver.energy_now(s, FakeDriver::now_s()) * kMilliPerUnit));
        });
}
static_assert(
    std::is_same_v<decltype(&nvmlDeviceGetTotalEnergyConsumption), nvml::DeviceGetTotalEnergyFn>);

PALS_NVML_EXPORT ReturnCode nvmlDeviceGetPowerManagementLimit(nvml::Device device,
                                                              unsigned int* limit_mw) {
    return read_device(device, "nvmlDeviceGetPowerManagementLimit", limit_mw,
                       [](const DeviceState& s) { return to_mw(s.limit_w); });
}
static_assert(std::is_same_v<decltype(&nvmlDeviceGetPowerManagementLimit), nvml::DeviceGetUintFn>);

PALS_NVML_EXPORT ReturnCode nvmlDeviceGetEnforcedPowerLimit(nvml::Device device,
                                                            unsigned int* limit_mw) {
    return read_device(device, "nvmlDeviceGetEnforcedPowerLimit", limit_mw,
                       [](const DeviceState& s) { return to_mw(g_driver.enforced_limit_w(s)); });
}
static_assert(std::is_same_v<decltype(&nvmlDeviceGetEnforcedPowerLimit), nvml::DeviceGetUintFn>);

PALS_NVML_EXPORT ReturnCode nvmlDeviceGetPowerManagementLimitConstraints(nvml::Device device,
                                                                         unsigned int* min_mw,
                                                                         unsigned int* max_mw) {
    return on_device(device, "nvmlDeviceGetPowerManagementLimitConstraints",
                     [&](int /*gpu*/) -> ReturnCode {
                         if (min_mw == nullptr || max_mw == nullptr) {
                             return nvml::kErrorInvalidArgument;
                         }
                         *min_mw = to_mw(g_driver.config().spec.power_limit_min_w);
                         *max_mw = to_mw(g_driver.config().spec.power_limit_max_w);
                         return nvml::kSuccess;
                     });
}
static_assert(std::is_same_v<decltype(&nvmlDeviceGetPowerManagementLimitConstraints),
                             nvml::DeviceGetLimitConstraintsFn>);

PALS_NVML_EXPORT ReturnCode nvmlDeviceGetPowerManagementDefaultLimit(nvml::Device device,
                                                                     unsigned int* limit_mw) {
    return on_device(device, "nvmlDeviceGetPowerManagementDefaultLimit",
                     [&](int /*gpu*/) -> ReturnCode {
                         if (limit_mw == nullptr) {
                             return nvml::kErrorInvalidArgument;
                         }
                         *limit_mw = to_mw(g_driver.config().spec.power_limit_default_w);
                         return nvml::kSuccess;
                     });
}
static_assert(
    std::is_same_v<decltype(&nvmlDeviceGetPowerManagementDefaultLimit), nvml::DeviceGetUintFn>);

PALS_NVML_EXPORT ReturnCode nvmlDeviceSetPowerManagementLimit(nvml::Device device,
                                                              unsigned int limit_mw) {
    return on_device(device, "nvmlDeviceSetPowerManagementLimit", [&](int gpu) -> ReturnCode {
        if (!g_driver.config().root) {
            return nvml::kErrorNoPermission;
        }
        const auto& spec = g_driver.config().spec;
        if (limit_mw < to_mw(spec.power_limit_min_w) || limit_mw > to_mw(spec.power_limit_max_w)) {
            return nvml::kErrorInvalidArgument;
        }
        return g_driver.modify(gpu, [limit_mw](DeviceState& s) {
            s.limit_w = limit_mw / kMilliPerUnit;
            return nvml::kSuccess;
        });
    });
}
static_assert(
    std::is_same_v<decltype(&nvmlDeviceSetPowerManagementLimit), nvml::DeviceSetPowerLimitFn>);

// ---- clocks -------------------------------------------------------------------------------------

PALS_NVML_EXPORT ReturnCode nvmlDeviceGetClockInfo(nvml::Device device, nvml::ClockType type,
                                                   unsigned int* mhz) {
    return on_device(device, "nvmlDeviceGetClockInfo", [&](int gpu) -> ReturnCode {
        if (mhz == nullptr) {
            return nvml::kErrorInvalidArgument;
        }
        switch (type) {
            case nvml::kClockGraphics:
            case nvml::kClockSm:
                return with_state(gpu, [&](const DeviceState& s) {
                    *mhz =
                        static_cast<unsigned int>(std::lround(g_driver.operating(s).sm_clock_mhz));
                    return nvml::kSuccess;
                });
            case nvml::kClockMem:
                *mhz = kMemClockMhz;
                return nvml::kSuccess;
            case nvml::kClockVideo:
                *mhz = kVideoClockMhz;
                return nvml::kSuccess;
            default:
                return nvml::kErrorInvalidArgument;
        }
    });
}
static_assert(std::is_same_v<decltype(&nvmlDeviceGetClockInfo), nvml::DeviceGetClockInfoFn>);

PALS_NVML_EXPORT ReturnCode nvmlDeviceGetMaxClockInfo(nvml::Device device, nvml::ClockType type,
                                                      unsigned int* mhz) {
    return on_device(device, "nvmlDeviceGetMaxClockInfo", [&](int /*gpu*/) -> ReturnCode {
        if (mhz == nullptr) {
            return nvml::kErrorInvalidArgument;
        }
        switch (type) {
            case nvml::kClockGraphics:
            case nvml::kClockSm:
                *mhz =
                    static_cast<unsigned int>(std::lround(g_driver.config().spec.sm_clock_max_mhz));
                return nvml::kSuccess;
            case nvml::kClockMem:
                *mhz = kMemClockMhz;
                return nvml::kSuccess;
            case nvml::kClockVideo:
                *mhz = kVideoClockMaxMhz;
                return nvml::kSuccess;
            default:
                return nvml::kErrorInvalidArgument;
        }
    });
}
static_assert(std::is_same_v<decltype(&nvmlDeviceGetMaxClockInfo), nvml::DeviceGetClockInfoFn>);

#ifndef PALS_FAKE_NVML_LEGACY
PALS_NVML_EXPORT ReturnCode nvmlDeviceGetCurrentClocksEventReasons(nvml::Device device,
                                                                   unsigned long long* reasons) {
    return do_get_clocks_event_reasons(device, reasons, "nvmlDeviceGetCurrentClocksEventReasons");
}
static_assert(std::is_same_v<decltype(&nvmlDeviceGetCurrentClocksEventReasons),
                             nvml::DeviceGetClocksEventReasonsFn>);
#endif

PALS_NVML_EXPORT ReturnCode nvmlDeviceGetCurrentClocksThrottleReasons(nvml::Device device,
                                                                      unsigned long long* reasons) {
    return do_get_clocks_event_reasons(device, reasons,
                                       "nvmlDeviceGetCurrentClocksThrottleReasons");
}
static_assert(std::is_same_v<decltype(&nvmlDeviceGetCurrentClocksThrottleReasons),
                             nvml::DeviceGetClocksEventReasonsFn>);

#ifndef PALS_FAKE_NVML_LEGACY
PALS_NVML_EXPORT ReturnCode nvmlDeviceSetGpuLockedClocks(nvml::Device device, unsigned int min_mhz,
                                                         unsigned int max_mhz) {
    return on_device(device, "nvmlDeviceSetGpuLockedClocks", [&](int gpu) -> ReturnCode {
        if (!g_driver.config().root) {
            return nvml::kErrorNoPermission;
        }
        if (min_mhz == 0 || min_mhz > max_mhz) {
            return nvml::kErrorInvalidArgument;
        }
        const auto& spec = g_driver.config().spec;
        const double lo =
            std::clamp(static_cast<double>(min_mhz), spec.sm_clock_min_mhz, spec.sm_clock_max_mhz);
        const double hi = std::clamp(static_cast<double>(max_mhz), lo, spec.sm_clock_max_mhz);
        return g_driver.modify(gpu, [lo, hi](DeviceState& s) {
            s.locked_min_mhz = lo;
            s.locked_max_mhz = hi;
            return nvml::kSuccess;
        });
    });
}
static_assert(
    std::is_same_v<decltype(&nvmlDeviceSetGpuLockedClocks), nvml::DeviceSetGpuLockedClocksFn>);

PALS_NVML_EXPORT ReturnCode nvmlDeviceResetGpuLockedClocks(nvml::Device device) {
    return on_device(device, "nvmlDeviceResetGpuLockedClocks", [&](int gpu) -> ReturnCode {
        if (!g_driver.config().root) {
            return nvml::kErrorNoPermission;
        }
        return g_driver.modify(gpu, [](DeviceState& s) {
            s.locked_min_mhz = 0.0;
            s.locked_max_mhz = 0.0;
            return nvml::kSuccess;
        });
    });
}
static_assert(
    std::is_same_v<decltype(&nvmlDeviceResetGpuLockedClocks), nvml::DeviceResetGpuLockedClocksFn>);
#endif
