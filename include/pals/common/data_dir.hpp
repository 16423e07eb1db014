#pragma once
/// @file data_dir.hpp
/// @brief Where the project's read-only data (models/, traces/, calibration/) is found, with no
/// path of the build machine baked into the binary: `--data-dir` (the CLI sets PALS_SHARED_DIR
/// from it), then PALS_SHARED_DIR, then the install's data folder next to the executable
/// (PREFIX/bin/pals -> PREFIX/share/pals), then, for a binary run from a build tree, a `shared/`
/// folder beside the checkout (repo/build/release/pals -> repo/../shared).
///
/// Thread-safety: free functions; find_data_dir() reads only its arguments and the filesystem.

#include <filesystem>
#include <string>
#include <vector>

#include "pals/common/status.hpp"

namespace pals {

/// What find_data_dir() looks at.
struct DataDirSources {
    std::string env;                    ///< $PALS_SHARED_DIR ("" when unset or empty)
    std::filesystem::path executable;   ///< the running binary ("" when unknown)
    std::filesystem::path bin_to_data;  ///< install layout: executable's folder -> data folder
    int build_tree_levels = 3;          ///< how many folders above the executable to try
};

/// The data folder and how it was found.
struct DataDir {
    std::filesystem::path path;
    std::string origin;  ///< "PALS_SHARED_DIR", "install", "build tree"
};

/// The data folder of `sources`, in the order of the file comment. A PALS_SHARED_DIR that is
/// not a directory is kNotFound naming it (it is never silently skipped); no folder found at
/// all is kNotFound listing what was tried and how to point pals at the data.
[[nodiscard]] Result<DataDir> find_data_dir(const DataDirSources& sources);

/// The running executable (/proc/self/exe), "" when it cannot be read.
[[nodiscard]] std::filesystem::path executable_path();

}  // namespace pals
