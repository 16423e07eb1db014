#pragma once
/// @file gpu_set.hpp
/// @brief The one syntax for a set of GPU indices, shared by every command and the run config.
///
/// Items separated by ',' or '+', each an index ("2") or an inclusive range ("0-3"), so "0,1",
/// "0+1", "0-3" and "0-1+4" all parse; "all" names every GPU of a machine whose count is known.
/// '+' exists because a `--group url=...,gpus=0+1` spec already uses ',' between its keys.

#include <string_view>
#include <vector>

#include "pals/common/status.hpp"

namespace pals {

/// The largest GPU index any set may name (NVML numbers the GPUs of one machine from 0).
inline constexpr int kMaxGpuIndex = 1023;

/// Parses a GPU set. `gpu_count` > 0 is the number of GPUs of the machine: every index must be
/// below it, and "all" expands to 0..gpu_count-1; -1 when unknown ("all" is then an error).
/// Order and repeats are kept as written (callers that must refuse repeats can tell).
/// Errors (kInvalidArgument, kOutOfRange) name the item and carry no field prefix.
[[nodiscard]] Result<std::vector<int>> parse_gpu_set(std::string_view text, int gpu_count = -1);

}  // namespace pals
