#include "power/nvml/nvml_error.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>

namespace pals::power::nvml {

namespace {

struct CodeInfo {
    ReturnCode rc;
    std::string_view name;
    StatusCode status;
    std::string_view meaning;  ///< what it means for PALS and what to do
};

constexpr std::array<CodeInfo, 32> kCodes = {{
    {kSuccess, "SUCCESS", StatusCode::kOk, "success"},
    {kErrorUninitialized, "UNINITIALIZED", StatusCode::kInternal,
     "NVML was not initialized (nvmlInit must succeed first)"},
    {kErrorInvalidArgument, "INVALID_ARGUMENT", StatusCode::kInvalidArgument,
     "the driver rejected an argument"},
    {kErrorNotSupported, "NOT_SUPPORTED", StatusCode::kUnavailable,
     "this GPU or driver does not support the operation"},
    {kErrorNoPermission, "NO_PERMISSION", StatusCode::kPermissionDenied,
     "insufficient permissions: setting power limits needs root or CAP_SYS_ADMIN"},
    {kErrorAlreadyInitialized, "ALREADY_INITIALIZED", StatusCode::kInternal,
     "NVML was already initialized"},
    {kErrorNotFound, "NOT_FOUND", StatusCode::kNotFound, "no such GPU or object"},
    {kErrorInsufficientSize, "INSUFFICIENT_SIZE", StatusCode::kInternal,
     "a buffer passed to NVML was too small"},
    {kErrorInsufficientPower, "INSUFFICIENT_POWER", StatusCode::kUnavailable,
     "a GPU power cable is not connected properly"},
    {kErrorDriverNotLoaded, "DRIVER_NOT_LOADED", StatusCode::kUnavailable,
     "the NVIDIA kernel driver is not loaded (check nvidia-smi)"},
    {kErrorTimeout, "TIMEOUT", StatusCode::kUnavailable,
     "the driver timed out; the GPU may be busy or hung"},
    {kErrorIrqIssue, "IRQ_ISSUE", StatusCode::kUnavailable,
     "the kernel detected an interrupt problem with the GPU"},
    {kErrorLibraryNotFound, "LIBRARY_NOT_FOUND", StatusCode::kUnavailable,
     "NVML could not find a library it needs (broken driver install)"},
    {kErrorFunctionNotFound, "FUNCTION_NOT_FOUND", StatusCode::kUnavailable,
     "the installed driver lacks this function (driver too old)"},
    {kErrorCorruptedInforom, "CORRUPTED_INFOROM", StatusCode::kUnavailable,
     "the GPU's infoROM is corrupted"},
    {kErrorGpuIsLost, "GPU_IS_LOST", StatusCode::kUnavailable,
     "the GPU has fallen off the bus or is otherwise inaccessible; it needs a reset"},
    {kErrorResetRequired, "RESET_REQUIRED", StatusCode::kUnavailable,
     "the GPU needs a reset before it can be used again"},
    {kErrorOperatingSystem, "OPERATING_SYSTEM", StatusCode::kUnavailable,
     "the operating system blocked the call"},
    {kErrorLibRmVersionMismatch, "LIB_RM_VERSION_MISMATCH", StatusCode::kUnavailable,
     "the NVML library and the kernel driver versions differ (reload the driver or reboot)"},
    {kErrorInUse, "IN_USE", StatusCode::kUnavailable, "the GPU is in use by another operation"},
    {kErrorMemory, "MEMORY", StatusCode::kInternal, "NVML ran out of memory"},
    {kErrorNoData, "NO_DATA", StatusCode::kUnavailable, "no data is available yet"},
    {kErrorVgpuEccNotSupported, "VGPU_ECC_NOT_SUPPORTED", StatusCode::kUnavailable,
     "ECC is not supported on this vGPU"},
    {kErrorInsufficientResources, "INSUFFICIENT_RESOURCES", StatusCode::kUnavailable,
     "the GPU lacks the resources for this operation"},
    {kErrorFreqNotSupported, "FREQ_NOT_SUPPORTED", StatusCode::kInvalidArgument,
     "the requested clock frequency is not supported"},
    {kErrorArgumentVersionMismatch, "ARGUMENT_VERSION_MISMATCH", StatusCode::kInternal,
     "a struct version passed to NVML does not match the library"},
    {kErrorDeprecated, "DEPRECATED", StatusCode::kUnavailable,
     "the function is deprecated and no longer works"},
    {kErrorNotReady, "NOT_READY", StatusCode::kUnavailable,
     "the GPU is not ready for this operation"},
    {kErrorGpuNotFound, "GPU_NOT_FOUND", StatusCode::kNotFound, "no GPU was found"},
    {kErrorInvalidState, "INVALID_STATE", StatusCode::kUnavailable,
     "the GPU is in a state that does not allow this operation"},
    {kErrorResetTypeNotSupported, "RESET_TYPE_NOT_SUPPORTED", StatusCode::kUnavailable,
     "this reset type is not supported"},
    {kErrorUnknown, "UNKNOWN", StatusCode::kInternal, "an unknown NVML error occurred"},
}};

const CodeInfo* find_code(ReturnCode rc) {
    const auto* it =
        std::find_if(kCodes.begin(), kCodes.end(), [rc](const CodeInfo& c) { return c.rc == rc; });
    return it == kCodes.end() ? nullptr : it;
}

std::string upper(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    return out;
}

}  // namespace

std::string_view return_code_name(ReturnCode rc) {
    const CodeInfo* info = find_code(rc);
    return info == nullptr ? "UNKNOWN_CODE" : info->name;
}

bool parse_return_code(std::string_view text, ReturnCode& out) {
    if (text.empty()) {
        return false;
    }
    ReturnCode number = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
    if (ec == std::errc() && end == text.data() + text.size()) {
        out = number;
        return true;
    }
    std::string key = upper(text);
    for (std::string_view prefix : {"NVML_ERROR_", "NVML_"}) {
        if (key.rfind(prefix, 0) == 0) {
            key.erase(0, prefix.size());
            break;
        }
    }
    for (const CodeInfo& c : kCodes) {
        if (c.name == key) {
            out = c.rc;
            return true;
        }
    }
    return false;
}

Status status_from_nvml(ReturnCode rc, std::string_view context, const char* driver_text) {
    if (rc == kSuccess) {
        return Status::ok();
    }
    const CodeInfo* info = find_code(rc);
    const StatusCode code = info == nullptr ? StatusCode::kInternal : info->status;
    std::string message(context);
    message += ": ";
    if (info != nullptr) {
        message += info->meaning;
        message += " (NVML_ERROR_";
        message += info->name;
    } else {
        message += "NVML returned an undocumented error code (NVML error ";
        message += std::to_string(rc);
    }
    if (driver_text != nullptr && *driver_text != '\0') {
        message += ": ";
        message += driver_text;
    }
    message += ")";
    return {code, std::move(message)};
}

}  // namespace pals::power::nvml
