// The helpers every subcommand shares (commands.hpp).
#include "cli/commands.hpp"

#include <cstdio>
#include <cstdlib>

namespace pals::cli {

int report_error(const Status& status) {
    std::fprintf(stderr, "pals: error: %s\n", status.message().c_str());
    return exit_code_for(status);
}

std::string default_shared_dir() {
    if (const char* env = std::getenv("PALS_SHARED_DIR"); env != nullptr && *env != '\0') {
        return env;
    }
    return PALS_DEFAULT_SHARED_DIR;
}

}  // namespace pals::cli
