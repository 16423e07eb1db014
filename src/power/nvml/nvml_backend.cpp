#include "pals/power/nvml_backend.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <utility>

#include "pals/common/log.hpp"
#include "power/nvml/nvml_error.hpp"
#include "power/nvml/nvml_library.hpp"

namespace pals::power {

namespace {

constexpr double kMilli = 1e-3;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
/// The largest power limit NVML can take, in mW (unsigned int).
constexpr double kMaxLimitMw = static_cast<double>(std::numeric_limits<unsigned int>::max());
/// An enforced limit this far below the requested one is reported (rounding aside), W.
constexpr double kEnforcedGapReportW = 0.5;

std::string context(int gpu, std::string_view what) {
    return gpu >= 0 ? fmt::format("GPU {}: {}", gpu, what) : std::string(what);
}

}  // namespace

struct NvmlBackend::Device {
    nvml::Device handle = nullptr;
    Status handle_status;  ///< ok, or why there is no handle (e.g. GPU lost)
    std::optional<ClockRangeMhz> locked;
};

std::string NvmlBackend::resolve_library_path(const std::string& library_path) {
    if (!library_path.empty()) {
        return library_path;
    }
    if (const char* env = std::getenv(kLibraryEnvVar); env != nullptr && *env != '\0') {
        return env;
    }
    return std::string(nvml::NvmlLibrary::kDefaultName);
}

NvmlBackend::NvmlBackend(std::unique_ptr<nvml::NvmlLibrary> library, const Clock* clock)
    : m_library(std::move(library)) {
    if (clock == nullptr) {
        m_own_clock = std::make_unique<SystemClock>();
        clock = m_own_clock.get();
    }
    m_clock = clock;
}

NvmlBackend::~NvmlBackend() {
    if (m_library) {
        const nvml::ReturnCode rc = m_library->fn().shutdown();
        if (rc != nvml::kSuccess) {
            PALS_LOG_DEBUG("nvmlShutdown failed: {}",
                           m_library->check(rc, "nvmlShutdown").message());
        }
    }
}

Result<std::unique_ptr<NvmlBackend>> NvmlBackend::open(const Options& options) {
    const std::string path = resolve_library_path(options.library_path);
    auto loaded = nvml::NvmlLibrary::load(path);
    if (!loaded.is_ok() && path == nvml::NvmlLibrary::kDefaultName) {
        // Some installs ship only the unversioned development name.
        auto fallback = nvml::NvmlLibrary::load(std::string(nvml::NvmlLibrary::kFallbackName));
        if (fallback.is_ok()) {
            loaded = std::move(fallback);
        }
    }
    if (!loaded.is_ok()) {
        return loaded.status();
    }
    std::unique_ptr<nvml::NvmlLibrary> library = std::move(loaded).value();
    const nvml::NvmlFunctions& f = library->fn();

    if (const nvml::ReturnCode rc = f.init(); rc != nvml::kSuccess) {
        return library->check(rc, library->symbol_for("init"));
    }
    // From here the destructor calls nvmlShutdown.
    std::unique_ptr<NvmlBackend> backend(new NvmlBackend(std::move(library), options.clock));
    const nvml::NvmlLibrary& lib = *backend->m_library;

    unsigned int count = 0;
    PALS_RETURN_IF_ERROR(lib.check(f.device_get_count(&count), lib.symbol_for("device_get_count")));
    backend->m_devices.resize(count);
    for (unsigned int i = 0; i < count; ++i) {
        Device& d = backend->m_devices[i];
        const int gpu = static_cast<int>(i);
        const nvml::ReturnCode rc = f.device_get_handle_by_index(i, &d.handle);
        d.handle_status = lib.check(rc, context(gpu, lib.symbol_for("device_get_handle_by_index")));
        if (!d.handle_status.is_ok()) {
            PALS_LOG_WARN("{}", d.handle_status.message());
        }
    }
    if (f.system_get_driver_version != nullptr) {
        std::array<char, nvml::kDriverVersionBufferSize> version{};
        if (f.system_get_driver_version(version.data(), nvml::kDriverVersionBufferSize) ==
            nvml::kSuccess) {
            backend->m_driver_version = version.data();
        }
    }
    PALS_LOG_DEBUG("NVML loaded from {}: {} GPUs, driver {}", lib.path(), count,
                   backend->m_driver_version);
    return backend;
}

const std::string& NvmlBackend::library_path() const {
    return m_library->path();
}

std::string NvmlBackend::symbol_for(std::string_view function) const {
    return m_library->symbol_for(function);
}

void NvmlBackend::warn_once(const std::string& key, const std::string& message) const {
    if (std::find(m_warned.begin(), m_warned.end(), key) != m_warned.end()) {
        return;
    }
    m_warned.push_back(key);
    PALS_LOG_WARN("{}", message);
}

Result<const NvmlBackend::Device*> NvmlBackend::device(int gpu) const {
    if (gpu < 0 || gpu >= static_cast<int>(m_devices.size())) {
        return Status::not_found(
            fmt::format("GPU {} does not exist (NVML reports {} GPUs)", gpu, m_devices.size()));
    }
    const Device& d = m_devices[static_cast<std::size_t>(gpu)];
    if (!d.handle_status.is_ok()) {
        return d.handle_status;
    }
    return &d;
}

template <class Call>
Status NvmlBackend::call(int gpu, const char* what, Call&& fn) const {
    const auto start = std::chrono::steady_clock::now();
    const nvml::ReturnCode rc = std::forward<Call>(fn)();
    const double elapsed_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (elapsed_s > kSlowCallWarnS) {
        warn_once(std::string("slow:") + what,
                  fmt::format("{} took {:.3f} s (NVML calls normally take under a millisecond; "
                              "the driver or GPU may be overloaded)",
                              context(gpu, what), elapsed_s));
    }
    return m_library->check(rc, context(gpu, what));
}

template <class Fn>
Result<double> NvmlBackend::read_mw(int gpu, const char* what, Fn fn, bool optional) const {
    PALS_ASSIGN_OR_RETURN(auto dev, device(gpu));
    unsigned int mw = 0;
    nvml::ReturnCode raw = nvml::kSuccess;
    Status st = call(gpu, what, [&] {
        raw = fn(dev->handle, &mw);
        return raw;
    });
    if (raw == nvml::kErrorNotSupported && optional) {
        warn_once(std::string("unsupported:") + what,
                  fmt::format("{}; reported as n/a", st.message()));
        return kNaN;
    }
    if (!st.is_ok()) {
        return st;
    }
    return mw * kMilli;
}

Result<int> NvmlBackend::device_count() const {
    return static_cast<int>(m_devices.size());
}

Result<GpuInfo> NvmlBackend::device_info(int gpu) const {
    PALS_ASSIGN_OR_RETURN(auto dev, device(gpu));
    const nvml::NvmlFunctions& f = m_library->fn();
    std::array<char, nvml::kDeviceNameBufferSize> name{};
    std::array<char, nvml::kDeviceUuidBufferSize> uuid{};
    PALS_RETURN_IF_ERROR(call(gpu, "nvmlDeviceGetName", [&] {
        return f.device_get_name(dev->handle, name.data(), nvml::kDeviceNameBufferSize);
    }));
    PALS_RETURN_IF_ERROR(call(gpu, "nvmlDeviceGetUUID", [&] {
        return f.device_get_uuid(dev->handle, uuid.data(), nvml::kDeviceUuidBufferSize);
    }));
    name.back() = '\0';
    uuid.back() = '\0';
    return GpuInfo{gpu, name.data(), uuid.data()};
}

Result<PowerLimitRange> NvmlBackend::power_limit_range(int gpu) const {
    PALS_ASSIGN_OR_RETURN(auto dev, device(gpu));
    const nvml::NvmlFunctions& f = m_library->fn();
    unsigned int min_mw = 0;
    unsigned int max_mw = 0;
    unsigned int default_mw = 0;
    PALS_RETURN_IF_ERROR(call(gpu, "nvmlDeviceGetPowerManagementLimitConstraints", [&] {
        return f.device_get_power_management_limit_constraints(dev->handle, &min_mw, &max_mw);
    }));
    PALS_RETURN_IF_ERROR(call(gpu, "nvmlDeviceGetPowerManagementDefaultLimit", [&] {
        return f.device_get_power_management_default_limit(dev->handle, &default_mw);
    }));
    return PowerLimitRange{min_mw * kMilli, max_mw * kMilli, default_mw * kMilli};
}

Result<double> NvmlBackend::power_limit_w(int gpu) const {
    return read_mw(gpu, "nvmlDeviceGetPowerManagementLimit",
                   m_library->fn().device_get_power_management_limit, false);
}

Result<double> NvmlBackend::enforced_power_limit_w(int gpu) const {
    return read_mw(gpu, "nvmlDeviceGetEnforcedPowerLimit",
                   m_library->fn().device_get_enforced_power_limit, false);
}

Result<GpuSample> NvmlBackend::sample(int gpu) {
    PALS_ASSIGN_OR_RETURN(auto dev, device(gpu));
    const nvml::Device handle = dev->handle;
    const nvml::NvmlFunctions& f = m_library->fn();
    GpuSample s;
    s.index = gpu;
    s.time = m_clock->now();

    PALS_ASSIGN_OR_RETURN(auto power,
                          read_mw(gpu, "nvmlDeviceGetPowerUsage", f.device_get_power_usage, true));
    s.power_w = power;

    s.energy_j = kNaN;
    if (f.device_get_total_energy_consumption == nullptr) {
        warn_once("missing:energy",
                  "this NVML lacks nvmlDeviceGetTotalEnergyConsumption: energy reported as n/a");
    } else {
        unsigned long long mj = 0;
        nvml::ReturnCode raw = nvml::kSuccess;
        Status st = call(gpu, "nvmlDeviceGetTotalEnergyConsumption", [&] {
            raw = f.device_get_total_energy_consumption(handle, &mj);
            return raw;
        });
        if (raw == nvml::kErrorNotSupported) {
            warn_once("unsupported:energy", st.message() + "; energy reported as n/a");
        } else if (!st.is_ok()) {
            return st;
        } else {
            s.energy_j = static_cast<double>(mj) * kMilli;
        }
    }

    unsigned int mhz = 0;
    nvml::ReturnCode clock_rc = nvml::kSuccess;
    Status clock_st = call(gpu, "nvmlDeviceGetClockInfo(SM)", [&] {
        clock_rc = f.device_get_clock_info(handle, nvml::kClockSm, &mhz);
        return clock_rc;
    });
    if (clock_rc == nvml::kErrorNotSupported) {
        warn_once("unsupported:clock", clock_st.message() + "; SM clock reported as n/a");
        s.sm_clock_mhz = kNaN;
    } else if (!clock_st.is_ok()) {
        return clock_st;
    } else {
        s.sm_clock_mhz = mhz;
    }

    PALS_ASSIGN_OR_RETURN(auto limit, read_mw(gpu, "nvmlDeviceGetPowerManagementLimit",
                                              f.device_get_power_management_limit, true));
    s.power_limit_w = limit;
    PALS_ASSIGN_OR_RETURN(auto enforced, read_mw(gpu, "nvmlDeviceGetEnforcedPowerLimit",
                                                 f.device_get_enforced_power_limit, true));
    s.enforced_power_limit_w = enforced;

    if (f.device_get_current_clocks_event_reasons != nullptr) {
        unsigned long long reasons = 0;
        nvml::ReturnCode raw = nvml::kSuccess;
        Status st = call(gpu, symbol_for("device_get_current_clocks_event_reasons").c_str(), [&] {
            raw = f.device_get_current_clocks_event_reasons(handle, &reasons);
            return raw;
        });
        if (raw == nvml::kErrorNotSupported) {
            warn_once("unsupported:reasons", st.message() + "; throttle reasons reported as none");
        } else if (!st.is_ok()) {
            return st;
        } else {
            s.throttle_reasons = reasons;
        }
    }
    return s;
}

Result<std::vector<GpuSample>> NvmlBackend::sample_all() {
    std::vector<GpuSample> out;
    out.reserve(m_devices.size());
    for (int i = 0; i < static_cast<int>(m_devices.size()); ++i) {
        PALS_ASSIGN_OR_RETURN(auto s, sample(i));
        out.push_back(s);
    }
    return out;
}

Status NvmlBackend::on_write_error(Status status) const {
    if (status.code() == StatusCode::kPermissionDenied) {
        warn_once("no_permission",
                  "no permission to change GPU settings (setting power limits needs root or "
                  "CAP_SYS_ADMIN): monitoring only");
    }
    return status;
}

Result<double> NvmlBackend::set_power_limit(int gpu, double limit_w) {
    PALS_ASSIGN_OR_RETURN(auto dev, device(gpu));
    if (!std::isfinite(limit_w)) {
        return Status::invalid_argument(context(gpu, "power limit must be a finite number of W"));
    }
    PALS_ASSIGN_OR_RETURN(auto range, power_limit_range(gpu));
    const double target_w = range.clamp(limit_w);
    if (target_w != limit_w) {
        PALS_LOG_INFO("GPU {}: power limit {:.1f} W clamped to {:.1f} W (allowed {:.0f}-{:.0f} W)",
                      gpu, limit_w, target_w, range.min_w, range.max_w);
    }
    // Whole mW rounded down (a hair of float error aside): a limit never above what was asked,
    // so caps that sum to a budget still do after NVML's rounding.
    constexpr double kFloatSlackMw = 1e-6;
    const auto target_mw = static_cast<unsigned int>(
        std::clamp(std::floor(target_w / kMilli + kFloatSlackMw), 0.0, kMaxLimitMw));
    const nvml::NvmlFunctions& f = m_library->fn();
    Status st = call(gpu, "nvmlDeviceSetPowerManagementLimit",
                     [&] { return f.device_set_power_management_limit(dev->handle, target_mw); });
    if (st.code() == StatusCode::kInvalidArgument) {
        st = Status::invalid_argument(
            fmt::format("{}; allowed range {:.0f}-{:.0f} W, requested {:.1f} W", st.message(),
                        range.min_w, range.max_w, target_w));
    }
    if (!st.is_ok()) {
        return on_write_error(std::move(st));
    }
    PALS_ASSIGN_OR_RETURN(auto requested, power_limit_w(gpu));
    PALS_ASSIGN_OR_RETURN(auto enforced, enforced_power_limit_w(gpu));
    PALS_LOG_INFO("set power limit gpu={} w={:.1f} enforced_w={:.1f}", gpu, requested, enforced);
    if (enforced < requested - kEnforcedGapReportW) {
        PALS_LOG_INFO(
            "GPU {}: enforced limit {:.1f} W is below the requested {:.1f} W (another "
            "limiter, e.g. out-of-band, holds it lower)",
            gpu, enforced, requested);
    }
    return enforced;
}

Result<std::optional<ClockRangeMhz>> NvmlBackend::locked_sm_clocks(int gpu) const {
    PALS_ASSIGN_OR_RETURN(auto dev, device(gpu));
    return dev->locked;
}

Status NvmlBackend::lock_sm_clocks(int gpu, ClockRangeMhz range) {
    PALS_ASSIGN_OR_RETURN(auto dev, device(gpu));
    if (!(range.min_mhz > 0.0) || !(range.max_mhz >= range.min_mhz) ||
        !std::isfinite(range.max_mhz)) {
        return Status::invalid_argument(context(gpu, "locked SM clocks need 0 < min <= max MHz"));
    }
    const nvml::NvmlFunctions& f = m_library->fn();
    if (f.device_set_gpu_locked_clocks == nullptr) {
        return Status::unavailable(
            "this NVML lacks nvmlDeviceSetGpuLockedClocks (driver too old to lock clocks)");
    }
    const auto min_mhz = static_cast<unsigned int>(std::lround(range.min_mhz));
    const auto max_mhz = static_cast<unsigned int>(std::lround(range.max_mhz));
    Status st = call(gpu, "nvmlDeviceSetGpuLockedClocks",
                     [&] { return f.device_set_gpu_locked_clocks(dev->handle, min_mhz, max_mhz); });
    if (!st.is_ok()) {
        return on_write_error(std::move(st));
    }
    m_devices[static_cast<std::size_t>(gpu)].locked =
        ClockRangeMhz{static_cast<double>(min_mhz), static_cast<double>(max_mhz)};
    PALS_LOG_DEBUG("locked SM clocks gpu={} min_mhz={} max_mhz={}", gpu, min_mhz, max_mhz);
    return Status::ok();
}

Status NvmlBackend::reset_sm_clocks(int gpu) {
    PALS_ASSIGN_OR_RETURN(auto dev, device(gpu));
    const nvml::NvmlFunctions& f = m_library->fn();
    if (f.device_reset_gpu_locked_clocks == nullptr) {
        return Status::unavailable(
            "this NVML lacks nvmlDeviceResetGpuLockedClocks (driver too old to reset clocks)");
    }
    Status st = call(gpu, "nvmlDeviceResetGpuLockedClocks",
                     [&] { return f.device_reset_gpu_locked_clocks(dev->handle); });
    if (!st.is_ok()) {
        return on_write_error(std::move(st));
    }
    m_devices[static_cast<std::size_t>(gpu)].locked.reset();
    PALS_LOG_DEBUG("reset SM clocks gpu={}", gpu);
    return Status::ok();
}

}  // namespace pals::power
