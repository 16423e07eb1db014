#include "pals/common/data_dir.hpp"

namespace pals {

namespace {

bool is_dir(const std::filesystem::path& p) {
    std::error_code ec;
    return std::filesystem::is_directory(p, ec);
}

/// `p` without "." and ".." where the folders exist (canonical), else lexically normal.
std::filesystem::path tidy(const std::filesystem::path& p) {
    std::error_code ec;
    std::filesystem::path canonical = std::filesystem::weakly_canonical(p, ec);
    return ec ? p.lexically_normal() : canonical;
}

}  // namespace

Result<DataDir> find_data_dir(const DataDirSources& sources) {
    if (!sources.env.empty()) {
        if (!is_dir(sources.env)) {
            return Status::not_found("PALS_SHARED_DIR (or --data-dir): '" + sources.env +
                                     "' is not a directory");
        }
        return DataDir{sources.env, "PALS_SHARED_DIR"};
    }
    std::vector<std::string> tried;
    if (!sources.executable.empty()) {
        const std::filesystem::path bin = sources.executable.parent_path();
        if (!sources.bin_to_data.empty()) {
            const std::filesystem::path installed = tidy(bin / sources.bin_to_data);
            if (is_dir(installed / "models")) {
                return DataDir{installed, "install"};
            }
            tried.push_back(installed.string());
        }
        std::filesystem::path above = bin;
        for (int level = 0; level < sources.build_tree_levels && above.has_parent_path() &&
                            above != above.root_path();
             ++level) {
            above = above.parent_path();
            const std::filesystem::path shared = above / "shared";
            if (is_dir(shared / "models")) {
                return DataDir{tidy(shared), "build tree"};
            }
            tried.push_back(shared.string());
        }
    }
    std::string list;
    for (const std::string& t : tried) {
        list += (list.empty() ? "" : ", ") + t;
    }
    return Status::not_found(
        "no data folder (models/, traces/, calibration/) found" +
        (list.empty() ? std::string() : " (tried " + list + ")") +
        ": pass --data-dir DIR or set PALS_SHARED_DIR, or install pals with its data "
        "(cmake --install puts it in PREFIX/share/pals)");
}

std::filesystem::path executable_path() {
    std::error_code ec;
    std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    return ec ? std::filesystem::path() : exe;
}

}  // namespace pals
