#pragma once
/// @file file_util.hpp
/// @brief Reading whole input files (regular files only, bounded size) and writing output files
/// atomically (no half-written output on failure, never over something that is not a file).
///
/// Thread-safety: free functions, no shared state.

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

#include "pals/common/status.hpp"

namespace pals {

/// Largest input file read_file() accepts by default: 1 GiB. The biggest input PALS reads, a
/// public Azure trace, is ~1 GB; anything larger is a mistake (or /dev/zero behind a link).
inline constexpr std::size_t kDefaultMaxFileBytes = std::size_t{1} << 30;

/// Reads a whole input file. Every reader of an input file (traces, histograms, model configs,
/// profiles, configs) goes through this, so all of them refuse the same things:
/// - a missing path: kNotFound;
/// - a path that is not a regular file after following symbolic links (a directory, a FIFO, a
///   character or block device such as /dev/zero, a socket): kInvalidArgument, without opening
///   it, so a FIFO cannot block and a device cannot be read forever;
/// - a file larger than `max_bytes` (checked before reading and while reading, in case the file
///   grows): kInvalidArgument naming the size and the limit;
/// - no permission: kPermissionDenied; any other failure: kInvalidArgument with the errno text.
/// Every message starts with the path.
[[nodiscard]] Result<std::string> read_file(const std::filesystem::path& path,
                                            std::size_t max_bytes = kDefaultMaxFileBytes);

/// Writes `content` to a new temporary file next to `path` (created exclusively, never through a
/// link), then renames it over `path`, so readers never see a partial file and a failure leaves
/// no file behind.
///
/// `path` must be absent or a regular file. Anything else is refused (kInvalidArgument, exit 2
/// at the CLI) and left untouched: a directory, a FIFO, a device node (`--out /dev/null` as root
/// would otherwise replace the system's /dev/null with a regular file) and a symbolic link, even
/// one to a regular file: replacing the link would surprise whoever made it and writing through
/// it would write wherever it points, so the safe choice is to refuse and let the user name the
/// real file. Errors carry the errno text (kPermissionDenied for EACCES/EPERM).
[[nodiscard]] Status write_file_atomic(const std::filesystem::path& path, std::string_view content);

}  // namespace pals
