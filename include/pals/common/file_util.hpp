#pragma once
/// @file file_util.hpp
/// @brief Reading whole files and writing files atomically (no half-written output on failure).

#include <filesystem>
#include <string>
#include <string_view>

#include "pals/common/status.hpp"

namespace pals {

/// Reads a whole file. Errors name the path (kNotFound if it does not exist).
[[nodiscard]] Result<std::string> read_file(const std::filesystem::path& path);

/// Writes `content` to a temporary file next to `path`, then renames it over `path`, so readers
/// never see a partial file and a failure leaves no file behind.
[[nodiscard]] Status write_file_atomic(const std::filesystem::path& path, std::string_view content);

}  // namespace pals
