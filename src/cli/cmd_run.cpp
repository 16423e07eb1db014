// `pals run`: the live control daemon (docs/deploy.md). Thin: it loads the configuration
// (run::RunConfig: TOML file < PALS_* environment < flags), builds NVML, one VllmEngine per
// group, the policy, the Daemon and the HTTP API, and runs until SIGINT/SIGTERM.
//
// Signals: the handler only stores to a lock-free atomic flag (async-signal-safe) and is reset
// after the first signal (a second Ctrl-C kills at once). The Daemon polls the flag at least
// every 0.1 s and restores the saved GPU limits in normal code before the process exits 0.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/stop_signals.hpp"
#include "pals/api/http_server.hpp"
#include "pals/common/clock.hpp"
#include "pals/common/file_util.hpp"
#include "pals/common/log.hpp"
#include "pals/control/daemon.hpp"
#include "pals/control/policy_registry.hpp"
#include "pals/engine/vllm/vllm_engine.hpp"
#include "pals/power/nvml_backend.hpp"
#include "pals/power/saved_controls.hpp"
#include "pals/run/run_config.hpp"
#include "pals/run/run_setup.hpp"

namespace pals::cli {

namespace {

// ---- options ------------------------------------------------------------------------------------

struct RunOptions {
    std::string config;
    bool check = false;
    bool json = false;
    std::vector<std::string> groups;
    /// One value per key of run::run_config_keys(), in that order; set when the flag is given.
    std::vector<std::string> values;
    std::vector<CLI::Option*> flags;
    CLI::Option* global_log_level = nullptr;  ///< `pals --log-level` (before the subcommand)
};

void print_line(const std::string& line) {
    std::fputs((line + "\n").c_str(), stdout);
    std::fflush(stdout);
}

std::optional<std::string> lookup_env(const std::string& name) {
    const char* v = std::getenv(name.c_str());
    return v == nullptr ? std::nullopt : std::optional<std::string>(v);
}

run::RunConfigSources sources_of(const RunOptions& opt) {
    run::RunConfigSources src;
    src.file = opt.config;
    src.env = lookup_env;
    // `pals --log-level X run` counts as a flag, below `pals run --log-level`. CLI11 also fills
    // it from PALS_LOG_LEVEL; that case is the environment layer, already read.
    if (opt.global_log_level != nullptr && opt.global_log_level->count() > 0) {
        const std::string value = opt.global_log_level->as<std::string>();
        if (lookup_env("PALS_LOG_LEVEL").value_or("") != value) {
            src.flags.emplace_back("log_level", value);
        }
    }
    const auto& keys = run::run_config_keys();
    for (std::size_t i = 0; i < keys.size(); ++i) {
        if (opt.flags[i]->count() > 0) {
            src.flags.emplace_back(std::string(keys[i].key), opt.values[i]);
        }
    }
    src.group_flags = opt.groups;
    return src;
}

/// The bearer token: the first line of token_file, trimmed. Empty (writes refused, one warning)
/// when no file is configured or it cannot be read.
std::string read_token(const run::RunConfig& config) {
    if (config.token_file.empty()) {
        PALS_LOG_WARN("no token_file configured: PUT /v1/budget is refused (403)");
        return {};
    }
    Result<std::string> text = read_file(config.token_file);
    if (!text.is_ok()) {
        PALS_LOG_WARN("token_file {}: {}: PUT /v1/budget is refused (403)", config.token_file,
                      text.status().message());
        return {};
    }
    std::string token = text.value().substr(0, text.value().find('\n'));
    while (!token.empty() &&
           (token.back() == '\r' || token.back() == ' ' || token.back() == '\t')) {
        token.pop_back();
    }
    if (token.empty()) {
        PALS_LOG_WARN("token_file {} is empty: PUT /v1/budget is refused (403)", config.token_file);
    }
    return token;
}

std::string url_host(const std::string& host) {
    return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

/// `--check`: print the effective configuration; the files it names are checked if they exist.
Status run_check(const run::RunConfig& config, bool json) {
    std::error_code ec;
    if (const control::PolicyInfo* policy = control::find_policy(config.policy);
        policy != nullptr && policy->needs_model) {
        if (std::filesystem::exists(config.power_model, ec)) {
            PALS_RETURN_IF_ERROR(run::make_run_policy(config).status());
        } else {
            std::fprintf(stderr,
                         "pals: note: power_model %s does not exist yet (needed to start)\n",
                         config.power_model.c_str());
        }
    }
    if (!config.token_file.empty() && !std::filesystem::exists(config.token_file, ec)) {
        std::fprintf(stderr,
                     "pals: note: token_file %s does not exist: PUT /v1/budget would be refused\n",
                     config.token_file.c_str());
    }
    std::fputs((json ? run::run_config_to_json(config) : run::run_config_to_toml(config)).c_str(),
               stdout);
    std::fflush(stdout);
    return Status::ok();
}

/// What the run did, printed when it stops.
std::string run_summary(const control::StateSnapshot& s) {
    return fmt::format(
        "pals run: {:.0f} s, {:.1f} kJ, {:.0f} output tokens, {} tokens/J, {:.0f} s over budget, "
        "{} cap changes, {} batch-cap changes, {} budget updates, {} errors",
        s.time_s, s.energy_j / 1e3, s.generation_tokens,
        s.energy_j > 0.0 ? fmt::format("{:.3f}", s.generation_tokens / s.energy_j)
                         : std::string("n/a"),
        s.time_over_budget_s, s.cap_changes_total, s.batch_changes_total, s.budget_updates_total,
        s.errors_total);
}

Status run_daemon(const RunOptions& opt) {
    PALS_ASSIGN_OR_RETURN(run::RunConfig loaded, run::load_run_config(sources_of(opt)));
    const run::RunConfig& config = loaded;
    spdlog::set_level(spdlog::level::from_str(config.log_level));
    if (opt.check) {
        return run_check(config, opt.json);
    }

    PALS_ASSIGN_OR_RETURN(std::unique_ptr<control::Policy> policy, run::make_run_policy(config));
    SystemClock clock;
    PALS_ASSIGN_OR_RETURN(auto backend, power::NvmlBackend::open({config.nvml_lib, &clock}));
    power::NvmlBackend& gpus = *backend;
    PALS_ASSIGN_OR_RETURN(int count, gpus.device_count());
    PALS_RETURN_IF_ERROR(run::check_gpu_count(config, count));
    std::vector<int> group_gpus;
    for (const run::RunGroupConfig& g : config.groups) {
        group_gpus.insert(group_gpus.end(), g.gpus.begin(), g.gpus.end());
    }
    PALS_ASSIGN_OR_RETURN(double budget_min_w,
                          control::min_budget_w(gpus, group_gpus)
                              .with_prefix("reading the GPUs' power-limit ranges"));
    PALS_RETURN_IF_ERROR(run::check_budget_feasible(config, budget_min_w));
    PALS_ASSIGN_OR_RETURN(power::SavedControls saved,
                          power::SavedControls::load(config.saved_controls));
    if (!saved.empty()) {
        PALS_LOG_WARN(
            "{} holds controls saved by an earlier run (a crash?): they are kept and restored on "
            "exit",
            config.saved_controls);
    }

    std::vector<std::unique_ptr<engine::vllm::VllmEngine>> engines;
    std::vector<engine::ServingEngine*> engine_ptrs;
    std::vector<std::filesystem::path> cap_files;
    for (engine::vllm::VllmEngineConfig& e : run::engine_configs(config)) {
        cap_files.push_back(e.batch_cap_path);
        engines.push_back(std::make_unique<engine::vllm::VllmEngine>(std::move(e), clock));
        engine_ptrs.push_back(engines.back().get());
    }
    saved.note_cap_files(cap_files);  // `pals power restore` removes them after a crash
    control::StateStore store;
    store.set_budget_min_w(budget_min_w);  // before the API answers its first PUT
    control::Daemon daemon(clock, gpus, engine_ptrs, std::move(policy),
                           run::controller_config(config), store, saved,
                           run::daemon_options(config));
    api::ServerOptions server_options;
    server_options.host = config.listen_host;
    server_options.port = config.listen_port;
    server_options.token = read_token(config);
    api::HttpServer server(store, server_options);

    StopSignals signals({.reset_after_first = true, .ignore_sigpipe = true});
    PALS_RETURN_IF_ERROR(server.start());
    print_line(
        fmt::format("listening on http://{}:{}", url_host(config.listen_host), server.port()));
    PALS_LOG_INFO(
        "pals run: policy {}, {} group(s), period {} s, budget {}, NVML {} ({} GPUs)",
        config.policy, config.groups.size(), config.period_s,
        config.budget_w > 0.0 ? fmt::format("{:.0f} W", config.budget_w) : std::string("none"),
        gpus.library_path(), count);
    Status result = daemon.run(signals.flag());
    server.stop();
    if (const std::shared_ptr<const control::StateSnapshot> last = store.latest()) {
        print_line(run_summary(*last));
    }
    if (result.is_ok()) {
        PALS_LOG_INFO("pals run: stopped{}; saved limits restored",
                      daemon.degraded() ? " (degraded)" : "");
    }
    return result;
}

}  // namespace

void add_run_command(CLI::App& app, CommandContext& ctx) {
    auto opt = std::make_shared<RunOptions>();
    CLI::App* cmd = app.add_subcommand("run",
                                       "the live controller: power caps and batch caps of vLLM "
                                       "servers, HTTP API (docs/deploy.md)");
    cmd->add_option("--config", opt->config,
                    "TOML configuration file (every key is also a flag and PALS_* variable)")
        ->envname("PALS_CONFIG");
    cmd->add_flag("--check", opt->check,
                  "validate the configuration, print it and exit (touches no GPU)");
    cmd->add_flag("--json", opt->json, "with --check: print JSON instead of TOML");
    cmd->add_option(
        "--group", opt->groups,
        "a GPU group, repeatable: \"url=http://127.0.0.1:8000,gpus=0+1,max_num_seqs=256,"
        "batch_cap_file=/run/pals/batch_cap[,model_name=M][,engine=RANK]\" (replaces the file's; "
        "env PALS_GROUPS, ';' between groups)");
    const auto& keys = run::run_config_keys();
    opt->values.resize(keys.size());
    for (std::size_t i = 0; i < keys.size(); ++i) {
        const std::string env = run::run_config_env_name(keys[i].key);
        opt->flags.push_back(cmd->add_option(run::run_config_flag_name(keys[i].key), opt->values[i],
                                             fmt::format("{} (env {})", keys[i].help, env)));
    }
    try {
        opt->global_log_level = app.get_option("--log-level");
    } catch (const CLI::OptionNotFound&) {
        opt->global_log_level = nullptr;
    }
    cmd->callback([opt, &ctx] {
        const Status status = run_daemon(*opt);
        ctx.exit_code = status.is_ok() ? 0 : report_error(status);
    });
}

}  // namespace pals::cli
