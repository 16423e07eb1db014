// pals: the command-line entry point. Thin by design: parse, dispatch, map errors to exit codes.
#include <cstdio>
#include <exception>
#include <iostream>
#include <new>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "pals/common/log.hpp"

namespace pals::cli {

/// "unknown command 'teleport' (known: ...)" when the first word that is not an option names
/// no subcommand (CLI11 only says "A subcommand is required"); "" otherwise.
std::string unknown_command(CLI::App& app, int argc, char** argv) {
    CLI::App* current = &app;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--") {
            break;
        }
        if (!arg.empty() && arg.front() == '-') {
            if (arg == "--log-level" && current == &app) {
                ++i;  // its value
            }
            continue;
        }
        const std::vector<CLI::App*> subs =
            current->get_subcommands([](const CLI::App*) { return true; });
        if (subs.empty()) {
            return "";
        }
        CLI::App* next = nullptr;
        std::string known;
        for (CLI::App* sub : subs) {
            known += (known.empty() ? "" : ", ") + sub->get_name();
            if (sub->get_name() == arg) {
                next = sub;
            }
        }
        if (next == nullptr) {
            const std::string where = current == &app ? "" : current->get_name() + " ";
            return "unknown command '" + where + arg + "' (known: " + known + ")";
        }
        current = next;
    }
    return "";
}

}  // namespace pals::cli

int main(int argc, char** argv) {
    using namespace pals::cli;
    CLI::App app{"pals: power-aware LLM serving (power cap x batch cap control)", "pals"};
    app.require_subcommand(1);
    app.set_version_flag("--version", std::string("pals ") + PALS_VERSION + " (git " +
                                          PALS_GIT_COMMIT + ", " + PALS_BUILD_TYPE + " build)");
    std::string log_level = "warn";
    app.add_option("--log-level", log_level,
                   "trace, debug, info, warn (warning), error (err), critical or off")
        ->envname("PALS_LOG_LEVEL")
        ->check(CLI::IsMember(
            {"trace", "debug", "info", "warn", "warning", "error", "err", "critical", "off"}));
    app.parse_complete_callback([&log_level] { pals::init_logging(log_level); });

    CommandContext ctx;
    add_simulate_command(app, ctx);
    add_demo_command(app, ctx);
    add_calibrate_command(app, ctx);
    add_gpus_command(app, ctx);
    add_power_command(app, ctx);
    add_profile_command(app, ctx);
    add_fit_command(app, ctx);
    add_frontier_command(app, ctx);
    add_evaluate_command(app, ctx);
    add_run_command(app, ctx);
    add_sim_serve_command(app, ctx);
    add_loadgen_command(app, ctx);
    add_models_command(app, ctx);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        if (const std::string unknown = unknown_command(app, argc, argv); !unknown.empty()) {
            std::fprintf(stderr, "pals: error: %s\n", unknown.c_str());
            return 2;
        }
        if (e.get_exit_code() == 0) {
            return app.exit(e);  // --help, --version
        }
        // Every flag error is bad input: exit code 2, in the same form as every other error.
        std::fprintf(stderr, "pals: error: %s (see --help)\n", e.what());
        return 2;
    } catch (const std::bad_alloc&) {
        // Bad input is refused (exit 2) before anything large is allocated; reaching this is a
        // true shortage of memory.
        std::fprintf(stderr, "pals: error: out of memory\n");
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "pals: internal error: %s\n", e.what());
        return 1;
    }
    return ctx.exit_code;
}
