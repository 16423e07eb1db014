// Placeholder: replaced by the real command.
#include "cli/commands.hpp"

namespace pals::cli {

void add_run_command(CLI::App& /*app*/, CommandContext& /*ctx*/) {}

}  // namespace pals::cli
