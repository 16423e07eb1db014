// The helpers every subcommand shares (commands.hpp).
#include "cli/commands.hpp"

#include <cstdio>
#include <cstdlib>

#include "pals/common/data_dir.hpp"

namespace pals::cli {

int report_error(const Status& status) {
    std::fprintf(stderr, "pals: error: %s\n", status.message().c_str());
    return exit_code_for(status);
}

Result<std::string> data_dir() {
    DataDirSources sources;
    if (const char* env = std::getenv("PALS_SHARED_DIR"); env != nullptr) {
        sources.env = env;
    }
    sources.executable = executable_path();
    sources.bin_to_data = PALS_BIN_TO_DATA;  // relative: "../share/pals" for the usual layout
    PALS_ASSIGN_OR_RETURN(const DataDir dir, find_data_dir(sources));
    return dir.path.string();
}

}  // namespace pals::cli
