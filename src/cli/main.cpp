// pals: the command-line entry point. Thin by design: parse, dispatch, map errors to exit codes.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <new>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/flag_checks.hpp"
#include "cli/parse_errors.hpp"
#include "pals/common/log.hpp"

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
        ->check(one_of(
            {"trace", "debug", "info", "warn", "warning", "error", "err", "critical", "off"}));
    std::string data_dir_flag;
    app.add_option("--data-dir", data_dir_flag,
                   "the data folder (models/, traces/, calibration/); default: $PALS_SHARED_DIR, "
                   "else PREFIX/share/pals beside the installed binary, else a build tree's "
                   "../shared")
        ->check(existing_dir());
    app.parse_complete_callback([&log_level, &data_dir_flag] {
        pals::init_logging(log_level);
        if (!data_dir_flag.empty()) {
            // flag > environment: the one variable every reader (and child process) consults
            ::setenv("PALS_SHARED_DIR", data_dir_flag.c_str(), 1);
        }
    });

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
        if (e.get_exit_code() == 0) {
            return app.exit(e);  // --help, --version
        }
        // Every flag error is bad input: exit code 2, in the same form as every other error.
        print_cli_error(describe_parse_error(app, e, argc, argv));
        return kExitBadInput;
    } catch (const std::bad_alloc&) {
        // Bad input is refused (exit 2) before anything large is allocated; reaching this is a
        // true shortage of memory.
        print_cli_error({"out of memory",
                         "bad input is refused before anything large is "
                         "allocated: free memory or run a smaller job"});
        return 1;
    } catch (const std::exception& e) {
        print_cli_error({std::string("internal error: ") + e.what(), failure_hint(1, "pals")});
        return 1;
    }
    if (ctx.exit_code != 0) {
        const std::string hint = failure_hint(ctx.exit_code, command_path(app));
        if (!hint.empty()) {
            std::fprintf(stderr, "pals: hint: %s\n", hint.c_str());
        }
    }
    return ctx.exit_code;
}
