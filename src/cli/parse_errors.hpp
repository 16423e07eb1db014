#pragma once
/// @file parse_errors.hpp
/// @brief CLI11's parse errors in the project's one error style (docs/cli.md): a message that
/// names the command and the flag, a "did you mean" for a misspelt flag or command, and a hint
/// line, printed as `pals: error: ...` / `pals: hint: ...` with exit code 2.

#include <CLI/CLI.hpp>
#include <string>

namespace pals::cli {

/// Exit code of bad input: flags, files, fields (docs/cli.md).
inline constexpr int kExitBadInput = 2;

/// What `pals` prints for a failure: the message and the hint (either may be "").
struct CliError {
    std::string message;
    std::string hint;
};

/// `pals power set`: the command line of the deepest subcommand the parse reached ("pals" when
/// none was).
[[nodiscard]] std::string command_path(const CLI::App& root);

/// "unknown command 'power frobnicate' (did you mean 'restore'?) (known: ...)" when a word that
/// is not an option names no subcommand where one is expected; empty message otherwise.
[[nodiscard]] CliError unknown_command(const CLI::App& root, int argc, const char* const* argv);

/// The message and hint of a CLI11 parse error (not --help / --version) raised while parsing
/// `argv` with `root`: unknown flags with the closest known flag, missing values and required
/// flags and subcommands, values CLI11 could not convert, and the checks of flag_checks.hpp.
[[nodiscard]] CliError describe_parse_error(const CLI::App& root, const CLI::ParseError& error,
                                            int argc, const char* const* argv);

/// The hint printed after a command failed with `exit_code` (docs/cli.md's codes), naming
/// `path` ("pals simulate") where its --help helps; "" for 0.
[[nodiscard]] std::string failure_hint(int exit_code, const std::string& path);

/// Prints `pals: error: MESSAGE` and, when there is one, `pals: hint: HINT` to stderr.
void print_cli_error(const CliError& error);

}  // namespace pals::cli
