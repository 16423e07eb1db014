// `pals run`: the live control daemon (docs/deploy.md). Thin: it loads the configuration
// (run::RunConfig: TOML file < PALS_* environment < flags), builds NVML, one VllmEngine per
// group, the policy, the Daemon and the HTTP API, and runs until SIGINT/SIGTERM.
//
// Signals: the handler only stores to a lock-free atomic flag (async-signal-safe) and is reset
// after the first signal (a second Ctrl-C kills at once). The Daemon polls the flag at least
// every 0.1 s and restores the saved GPU limits in normal code before the process exits 0.
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cli/commands.hpp"
#include "cli/stop_signals.hpp"
#include "pals/api/http_server.hpp"
#include "pals/cluster/cluster_agent.hpp"
#include "pals/cluster/daemon_port.hpp"
#include "pals/cluster/etcd_store.hpp"
#include "pals/common/clock.hpp"
#include "pals/common/file_util.hpp"
#include "pals/common/log.hpp"
#include "pals/control/daemon.hpp"
#include "pals/control/policy_registry.hpp"
#include "pals/engine/vllm/vllm_engine.hpp"
#include "pals/power/nvml_backend.hpp"
#include "pals/power/saved_controls.hpp"
#include "pals/profile/power_model.hpp"
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
    /// The same for run::cluster_config_keys().
    std::vector<std::string> cluster_values;
    std::vector<CLI::Option*> cluster_flags;
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
    const auto& cluster_keys = run::cluster_config_keys();
    for (std::size_t i = 0; i < cluster_keys.size(); ++i) {
        if (opt.cluster_flags[i]->count() > 0) {
            src.flags.emplace_back(cluster_keys[i].key, opt.cluster_values[i]);
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

/// The sum of the GPUs' maximum power limits, W.
Result<double> max_budget_w(power::GpuBackend& backend, const std::vector<int>& gpus) {
    double total_w = 0.0;
    for (int gpu : gpus) {
        PALS_ASSIGN_OR_RETURN(power::PowerLimitRange range, backend.power_limit_range(gpu));
        total_w += range.max_w;
    }
    return total_w;
}

/// What a cluster member builds from [cluster].
struct ClusterSetup {
    std::unique_ptr<cluster::ClusterStore> store;
    cluster::AgentOptions agent_options;
};

Result<ClusterSetup> make_cluster_setup(const run::RunConfig& config, double budget_min_w,
                                        double budget_max_w) {
    const run::RunClusterConfig& c = config.cluster;
    cluster::EtcdOptions etcd;
    etcd.endpoints = c.endpoint_list;
    etcd.ca_file = c.ca_file;
    etcd.cert_file = c.cert_file;
    etcd.key_file = c.key_file;
    etcd.user = c.user;
    etcd.request_timeout = std::chrono::milliseconds(
        static_cast<std::int64_t>(std::llround(c.request_timeout_s * 1000.0)));
    etcd.connect_timeout = std::min(etcd.request_timeout, std::chrono::milliseconds(500));
    if (!c.password_file.empty()) {
        PALS_ASSIGN_OR_RETURN(std::string text,
                              read_file(c.password_file).with_prefix("cluster.password_file"));
        etcd.password = text.substr(0, text.find('\n'));
    }
    PALS_ASSIGN_OR_RETURN(
        auto store, cluster::EtcdClusterStore::create(std::move(etcd)).with_prefix("cluster"));
    ClusterSetup setup;
    setup.store = std::move(store);
    cluster::AgentOptions& a = setup.agent_options;
    a.cluster = c.name;
    a.node = c.node;
    if (a.node.empty()) {
        std::array<char, 256> host{};
        if (gethostname(host.data(), host.size() - 1) != 0 || host[0] == '\0') {
            return Status::invalid_argument(
                "cluster.node: not set, and the host name cannot be read: set it");
        }
        a.node = host.data();
    }
    a.lease_ttl_s = c.lease_ttl_s;
    a.period = Seconds(config.period_s);
    a.poll = Seconds(config.period_s / 2.0);
    a.floor_w = std::max(budget_min_w, c.floor_w);
    a.max_w = budget_max_w;
    if (a.floor_w > budget_max_w) {
        return Status::invalid_argument(
            fmt::format("cluster.floor_w: {:g} W is above the most the GPUs can hold ({:g} W)",
                        c.floor_w, budget_max_w));
    }
    return setup;
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

    // A cluster member: its node budget starts at the floor and comes from the coordinator;
    // on the way out it holds the floor (docs/cluster.md).
    std::optional<ClusterSetup> cluster;
    if (config.cluster.enabled()) {
        PALS_ASSIGN_OR_RETURN(double budget_max_w, max_budget_w(gpus, group_gpus));
        PALS_ASSIGN_OR_RETURN(ClusterSetup setup,
                              make_cluster_setup(config, budget_min_w, budget_max_w));
        cluster.emplace(std::move(setup));
    }

    std::vector<std::unique_ptr<engine::vllm::VllmEngine>> engines;
    std::vector<engine::ServingEngine*> engine_ptrs;
    std::vector<std::filesystem::path> cap_files;
    for (engine::vllm::VllmEngineConfig& e : run::engine_configs(config)) {
        cap_files.push_back(e.batch_cap_path);
        cap_files.push_back(engine::vllm::step_tokens_path(e));
        engines.push_back(std::make_unique<engine::vllm::VllmEngine>(std::move(e), clock));
        engine_ptrs.push_back(engines.back().get());
    }
    // `pals power restore` removes the batch-cap and step-token files after a crash.
    saved.note_cap_files(cap_files);
    control::StateStore store;
    store.set_budget_min_w(budget_min_w);  // before the API answers its first PUT
    control::ControllerConfig controller = run::controller_config(config);
    control::DaemonOptions daemon_options = run::daemon_options(config);
    if (cluster) {
        controller.budget = control::BudgetSchedule(cluster->agent_options.floor_w);
        daemon_options.exit_budget_w = cluster->agent_options.floor_w;
    }
    control::Daemon daemon(clock, gpus, engine_ptrs, std::move(policy), std::move(controller),
                           store, saved, daemon_options);
    std::unique_ptr<cluster::DaemonNodePort> port;
    std::unique_ptr<cluster::ClusterAgent> agent;
    SystemClock agent_clock;
    if (cluster) {
        cluster::DemandModel demand_model;
        if (!config.power_model.empty()) {
            // The fitted model of the groups (policy pals) gives the demand curve.
            PALS_ASSIGN_OR_RETURN(profile::PowerModel model,
                                  profile::PowerModel::load(config.power_model));
            demand_model.model = std::make_shared<const profile::PowerModel>(std::move(model));
            demand_model.workload = config.workload;
            demand_model.slo_tpot_s = config.slo_tpot_s;
        }
        port = std::make_unique<cluster::DaemonNodePort>(
            store, budget_min_w, cluster->agent_options.max_w, std::move(demand_model));
        agent = std::make_unique<cluster::ClusterAgent>(*cluster->store, agent_clock, *port,
                                                        cluster->agent_options);
    }
    api::ServerOptions server_options;
    server_options.host = config.listen_host;
    server_options.port = config.listen_port;
    server_options.token = read_token(config);
    if (agent) {
        server_options.node_budget_from_cluster = true;
        server_options.set_cluster_budget = [&agent](std::optional<double> watts) {
            return agent->set_cluster_budget(watts);
        };
    }
    api::HttpServer server(store, server_options);

    StopSignals signals({.reset_after_first = true, .ignore_sigpipe = true});
    PALS_RETURN_IF_ERROR(server.start());
    std::atomic<bool> agent_stop{false};
    std::thread agent_thread;
    if (agent) {
        PALS_LOG_INFO("cluster {}: node {} via {} (lease ttl {} s, floor {:.0f} W, max {:.0f} W)",
                      cluster->agent_options.cluster, cluster->agent_options.node,
                      cluster->store->describe(), cluster->agent_options.lease_ttl_s,
                      cluster->agent_options.floor_w, cluster->agent_options.max_w);
        agent_thread = std::thread([&agent, &agent_stop] { agent->run(agent_stop); });
    }
    print_line(
        fmt::format("listening on http://{}:{}", url_host(config.listen_host), server.port()));
    PALS_LOG_INFO(
        "pals run: policy {}, {} group(s), period {} s, budget {}, NVML {} ({} GPUs)",
        config.policy, config.groups.size(), config.period_s,
        config.budget_w > 0.0 ? fmt::format("{:.0f} W", config.budget_w) : std::string("none"),
        gpus.library_path(), count);
    Status result = daemon.run(signals.flag());
    if (agent) {
        // The daemon holds the floor now (exit_budget_w): leaving hands the rest of the share
        // back at once. If it could not, the lease expires by itself.
        agent_stop = true;
        agent_thread.join();
        if (result.is_ok()) {
            agent->leave();
        }
    }
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
    const auto& cluster_keys = run::cluster_config_keys();
    opt->cluster_values.resize(cluster_keys.size());
    for (std::size_t i = 0; i < cluster_keys.size(); ++i) {
        opt->cluster_flags.push_back(cmd->add_option(
            cluster_keys[i].flag, opt->cluster_values[i],
            fmt::format("[cluster] {} (env {})", cluster_keys[i].help, cluster_keys[i].env)));
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
