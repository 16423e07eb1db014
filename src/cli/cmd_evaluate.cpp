// `pals evaluate`: every policy of each scenario on the same trace, model and hardware; one
// table per scenario, --json, and a self-contained HTML report.
#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>

#include "cli/commands.hpp"
#include "cli/evaluate_report.hpp"
#include "cli/flag_checks.hpp"
#include "cli/report_format.hpp"
#include "pals/cluster/cluster_sim.hpp"
#include "pals/common/file_util.hpp"
#include "pals/control/evaluation.hpp"
#include "pals/control/policy_registry.hpp"
#include "pals/model/model_catalog.hpp"
#include "pals/profile/pareto.hpp"

namespace pals::cli {

namespace {

struct EvaluateOptions {
    std::vector<std::string> scenarios;
    bool json = false;
    std::string report;
    double period_s = 0.0;
    std::vector<std::string> policies;  ///< replaces each scenario's [run] policies
    bool check_expect = false;          ///< run what [expect] needs and check its bounds
    std::string cache_dir;              ///< --cache-dir / PALS_CACHE_DIR ("": the default)
    /// Another sample of each scenario: its trace replayed from this second on (trace
    /// scenarios), and this seed for its random streams (synthetic arrivals and lengths).
    std::optional<double> trace_start_s;
    std::optional<std::uint64_t> seed;
    /// --cluster-nodes: a simulated cluster under one budget instead of scenario files.
    cluster::ClusterSimConfig cluster;
    std::string cluster_model = "meta-llama/Llama-3.1-70B-Instruct";
    std::string cluster_trace = "AzureLLMInferenceTrace_conv.csv";
    CLI::Option* cluster_flag = nullptr;
};

/// `pals evaluate --cluster-nodes N`: the simulated cluster (docs/cluster.md).
Status run_cluster_evaluate(const EvaluateOptions& opt) {
    cluster::ClusterSimConfig c = opt.cluster;
    PALS_ASSIGN_OR_RETURN(const std::string data, data_dir());
    PALS_ASSIGN_OR_RETURN(
        const std::filesystem::path model,
        model::find_model_config(opt.cluster_model, std::filesystem::path(data) / "models"));
    c.model_config = model.string();
    std::error_code ec;
    c.trace = std::filesystem::exists(opt.cluster_trace, ec)
                  ? opt.cluster_trace
                  : (std::filesystem::path(data) / "traces" / opt.cluster_trace).string();
    if (!opt.policies.empty()) {
        c.policies = opt.policies;
    }
    PALS_ASSIGN_OR_RETURN(const cluster::ClusterSimReport report, cluster::run_cluster_sim(c));
    const std::string text =
        opt.json ? cluster::cluster_sim_json(report) + "\n" : cluster::cluster_sim_table(report);
    std::fputs(text.c_str(), stdout);
    return Status::ok();
}

/// Exit code of `--check-expect` when a bound is broken (docs/cli.md).
constexpr int kExitExpectationFailed = 5;

/// Runs the scenarios; `failures` collects the broken [expect] bounds under --check-expect.
Status run_evaluate(const EvaluateOptions& opt, std::vector<std::string>& failures) {
    std::vector<control::ScenarioResult> results;
    for (const std::string& path : opt.scenarios) {
        PALS_ASSIGN_OR_RETURN(control::Scenario scenario, load_scenario_file(path));
        if (opt.period_s != 0.0) {
            PALS_RETURN_IF_ERROR(check_range("--period", opt.period_s, 0.001, 3600.0, "s"));
        }
        if (opt.period_s > 0.0) {
            scenario.period_s = opt.period_s;
        }
        if (opt.trace_start_s && scenario.workload.kind == workload::WorkloadKind::kTrace) {
            scenario.workload.trace_start_s = *opt.trace_start_s;
        }
        if (opt.seed) {
            scenario.seed = *opt.seed;
            scenario.workload.seed = *opt.seed;
        }
        if (opt.check_expect && scenario.expect.empty()) {
            return Status::invalid_argument(path +
                                            ": --check-expect: the scenario has no [expect]");
        }
        if (opt.check_expect && opt.policies.empty()) {
            scenario.policies = control::expectation_policies(scenario);
        } else if (!opt.policies.empty()) {
            scenario.policies.clear();
            for (const std::string& name : opt.policies) {
                if (control::find_policy(name) == nullptr) {
                    return control::unknown_policy(name).with_prefix("--policies");
                }
                scenario.policies.push_back(name);
            }
        }
        if (!opt.json) {
            std::fputs(scenario_echo(scenario).c_str(), stdout);
            std::fflush(stdout);
        }
        std::shared_ptr<const profile::PowerModel> model;
        if (std::any_of(
                scenario.policies.begin(), scenario.policies.end(),
                [](const std::string& name) { return control::find_policy(name)->needs_model; })) {
            PALS_ASSIGN_OR_RETURN(std::shared_ptr<const profile::PowerModel> m,
                                  power_model_for(scenario, opt.cache_dir));
            model = m;
        }
        PALS_ASSIGN_OR_RETURN(control::ScenarioResult result,
                              control::evaluate_scenario(scenario, model));
        if (model) {
            result.frontier_svg = frontier_svg_for(*model, scenario);
        }
        if (!opt.json) {
            std::fputs(evaluation_table(result).c_str(), stdout);
            std::fflush(stdout);
        }
        if (opt.check_expect) {
            const std::vector<std::string> broken = control::check_expectations(result);
            for (const std::string& failure : broken) {
                std::fprintf(stderr, "pals: expectation failed: %s\n", failure.c_str());
            }
            if (broken.empty() && !opt.json) {
                std::printf("%s: all %zu expectations hold\n", scenario.name.c_str(),
                            scenario.expect.size());
            }
            failures.insert(failures.end(), broken.begin(), broken.end());
        }
        results.push_back(std::move(result));
    }
    if (opt.json) {
        nlohmann::json out = nlohmann::json::array();
        for (const auto& r : results) {
            out.push_back(evaluation_json(r));
        }
        std::puts((results.size() == 1 ? out.front() : out).dump(2).c_str());
    }
    if (!opt.report.empty()) {
        PALS_RETURN_IF_ERROR(write_file_atomic(opt.report, evaluation_html(results)));
        if (!opt.json) {
            std::printf("report written to %s\n", opt.report.c_str());
        }
    }
    return Status::ok();
}

}  // namespace

void add_evaluate_command(CLI::App& app, CommandContext& ctx) {
    auto opt = std::make_shared<EvaluateOptions>();
    CLI::App* cmd =
        app.add_subcommand("evaluate", "compare PALS with the baselines on scenario files (TOML)");
    cmd->add_option("--scenario", opt->scenarios, "scenario file(s)")->check(existing_file());
    opt->cluster_flag =
        cmd->add_option("--cluster-nodes", opt->cluster.nodes,
                        "simulate a cluster of N nodes under one power budget instead of scenario "
                        "files: pals-cluster (etcd's protocol over an in-process store) vs an even "
                        "split, static per-node budgets and no budget (docs/cluster.md)")
            ->check(CLI::Range(1, 100000));
    cmd->add_option("--cluster-gpus-per-node", opt->cluster.gpus_per_node, "GPUs per node")
        ->check(CLI::Range(1, 64));
    cmd->add_option("--cluster-gpu", opt->cluster.gpu, "GPU type of the nodes");
    cmd->add_option("--cluster-model", opt->cluster_model, "model every node serves");
    cmd->add_option("--cluster-tp", opt->cluster.tp, "GPUs per replica")->check(CLI::Range(1, 64));
    cmd->add_option("--cluster-trace", opt->cluster_trace,
                    "Azure CSV trace (a path, or a file of the data folder's traces/)");
    cmd->add_option("--cluster-duration", opt->cluster.duration_s, "simulated seconds")
        ->check(finite_in(1.0, 1e6, "s"));
    cmd->add_option("--cluster-budget-share", opt->cluster.budget_share,
                    "cluster budget as a share of the nodes' maximum power")
        ->check(finite_in(0.0, 1.0, ""));
    cmd->add_option("--cluster-utilization", opt->cluster.mean_utilization,
                    "mean load as a share of a node's throughput at its maximum")
        ->check(finite_in(0.0, 10.0, ""));
    cmd->add_option("--cluster-skew", opt->cluster.load_skew_sigma,
                    "sigma of the lognormal per-node load multipliers")
        ->check(finite_in(0.0, 5.0, ""));
    cmd->add_option("--cluster-period", opt->cluster.period_s,
                    "pals-cluster: demand published and allocations read every this many s")
        ->check(finite_in(0.1, 3600.0, "s"));
    cmd->add_option("--cluster-seed", opt->cluster.seed, "seed of the per-node loads");
    cmd->add_option("--cluster-spare-margin", opt->cluster.spare_margin,
                    "pals-cluster: watts no curve values go out up to this share over each "
                    "node's need; the rest is a reserve (inf: all handed out)");
    cmd->add_flag("--json", opt->json, "print JSON instead of tables");
    cmd->add_option("--policies", opt->policies,
                    "run only these policies (comma-separated; default: each scenario's [run] "
                    "policies)")
        ->delimiter(',');
    cmd->add_option("--report", opt->report,
                    "write a self-contained HTML report to this file (relative to the current "
                    "folder)");
    cmd->add_option("--cache-dir", opt->cache_dir,
                    "where the power models profiled for policy pals are cached (default: "
                    "$XDG_CACHE_HOME/pals, else ~/.cache/pals)")
        ->envname("PALS_CACHE_DIR");
    cmd->add_option("--period", opt->period_s,
                    "control period in seconds (default: each scenario's run.period_s)")
        ->check(finite_in(0.0, 3600.0, "s"));
    cmd->add_option("--trace-start", opt->trace_start_s,
                    "another sample of each trace scenario: replay its trace from this second "
                    "on (trace time, before scaling), wrapping around at its end")
        ->check(finite_in(0.0, 1e9, "s"));
    cmd->add_option("--seed", opt->seed,
                    "another sample of each scenario: this seed instead of its run.seed "
                    "(synthetic arrivals and lengths)");
    cmd->add_flag("--check-expect", opt->check_expect,
                  "run only the policies each scenario's [expect] names (unless --policies) and "
                  "check its bounds: exit 5 when one is broken");
    cmd->callback([opt, &ctx] {
        if (opt->cluster_flag->count() > 0) {
            const Status status = run_cluster_evaluate(*opt);
            ctx.exit_code = status.is_ok() ? 0 : report_error(status);
            return;
        }
        if (opt->scenarios.empty()) {
            ctx.exit_code = report_error(Status::invalid_argument(
                "--scenario: give at least one scenario file (or --cluster-nodes N for a simulated "
                "cluster)"));
            return;
        }
        std::vector<std::string> failures;
        const Status status = run_evaluate(*opt, failures);
        if (!status.is_ok()) {
            ctx.exit_code = report_error(status);
        } else if (!failures.empty()) {
            std::fprintf(stderr, "pals: error: %zu expectation(s) failed\n", failures.size());
            ctx.exit_code = kExitExpectationFailed;
        } else {
            ctx.exit_code = 0;
        }
    });
}

}  // namespace pals::cli
