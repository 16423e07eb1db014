#pragma once
/// @file commands.hpp
/// @brief The `pals` subcommands. Each lives in its own cmd_*.cpp and registers itself on the
/// root CLI11 app; its callback stores the process exit code in the context.

#include <CLI/CLI.hpp>
#include <string>

#include "pals/common/status.hpp"

namespace pals::cli {

/// State shared by all subcommands of one invocation.
struct CommandContext {
    int exit_code = 0;
};

/// Prints "pals: error: <message>" to standard error and returns the Status's exit code.
int report_error(const Status& status);

/// The folder of the project's read-only data (models, traces, calibration): --data-dir (which
/// sets PALS_SHARED_DIR), PALS_SHARED_DIR, the install's share/pals beside the executable, or a
/// build tree's ../shared (common/data_dir.hpp). kNotFound, with what to do, when none is.
[[nodiscard]] Result<std::string> data_dir();

void add_simulate_command(CLI::App& app, CommandContext& ctx);
void add_demo_command(CLI::App& app, CommandContext& ctx);
void add_calibrate_command(CLI::App& app, CommandContext& ctx);
void add_gpus_command(CLI::App& app, CommandContext& ctx);
void add_power_command(CLI::App& app, CommandContext& ctx);
void add_profile_command(CLI::App& app, CommandContext& ctx);
void add_fit_command(CLI::App& app, CommandContext& ctx);
void add_frontier_command(CLI::App& app, CommandContext& ctx);
void add_evaluate_command(CLI::App& app, CommandContext& ctx);
void add_run_command(CLI::App& app, CommandContext& ctx);
void add_sim_serve_command(CLI::App& app, CommandContext& ctx);
void add_loadgen_command(CLI::App& app, CommandContext& ctx);
void add_models_command(CLI::App& app, CommandContext& ctx);

}  // namespace pals::cli
