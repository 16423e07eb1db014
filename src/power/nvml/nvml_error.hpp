#pragma once
/// @file nvml_error.hpp
/// @brief nvmlReturn_t -> Status: the one place NVML's codes become PALS errors (GEOPM's
/// check_nvml_result idea). Thread-safety: pure functions.

#include <string>
#include <string_view>

#include "pals/common/status.hpp"
#include "power/nvml/nvml_types.hpp"

namespace pals::power::nvml {

/// The NVML enumerator name without its prefix ("NO_PERMISSION", "GPU_IS_LOST", "SUCCESS"), or
/// "UNKNOWN_CODE" for a value NVML 13 does not define.
[[nodiscard]] std::string_view return_code_name(ReturnCode rc);

/// Parses an enumerator name ("NO_PERMISSION", "NVML_ERROR_NO_PERMISSION", "no_permission",
/// "SUCCESS") or a decimal number. Returns false when `text` names no code.
[[nodiscard]] bool parse_return_code(std::string_view text, ReturnCode& out);

/// Maps `rc` to a Status: ok for SUCCESS; otherwise a code (kPermissionDenied for NO_PERMISSION,
/// kUnavailable for a missing driver, library, capability or GPU, kInvalidArgument for
/// INVALID_ARGUMENT, kNotFound for NOT_FOUND/GPU_NOT_FOUND, kInternal for the rest) and a message
/// "<context>: <what it means and what to do> (NVML_ERROR_<NAME>: <driver text>)".
/// @param context what was being done, e.g. "GPU 1: nvmlDeviceGetPowerUsage".
/// @param driver_text nvmlErrorString(rc) when the library has it, else nullptr.
[[nodiscard]] Status status_from_nvml(ReturnCode rc, std::string_view context,
                                      const char* driver_text = nullptr);

}  // namespace pals::power::nvml
