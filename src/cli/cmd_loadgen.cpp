// Placeholder: replaced by the real command.
#include "cli/commands.hpp"

namespace pals::cli {

void add_loadgen_command(CLI::App& /*app*/, CommandContext& /*ctx*/) {}

}  // namespace pals::cli
