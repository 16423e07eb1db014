// `pals demo`: the main job on the embedded default (the simulator). Mixtral-8x7B on 2xH100
// (TP2) serving ten minutes of the Azure conversation trace: first the energy/latency table over
// fixed power caps x batch caps, then the headline comparison of PALS with the baselines under a
// budget step (scenarios/mixtral-conv-step-budget.toml), written as an HTML report.
#include <fmt/format.h>

#include <cstdio>
#include <memory>

#include "cli/commands.hpp"
#include "cli/evaluate_report.hpp"
#include "cli/flag_checks.hpp"
#include "cli/report_format.hpp"
#include "cli/sim_options.hpp"
#include "pals/common/file_util.hpp"

namespace pals::cli {

namespace {

/// --scenario's default: the scenario compiled into pals (cli/demo_scenario.hpp).
constexpr std::string_view kBuiltinScenario = "builtin:mixtral-conv-step-budget";

struct DemoOptions {
    std::string trace;
    double duration_s = 600.0;
    std::vector<double> caps_w = {700, 550, 400, 300};
    std::vector<int> batch_caps = {16, 64, 256};
    std::string scenario = std::string(kBuiltinScenario);
    std::string report = "pals-demo-report.html";
    std::string cache_dir;  ///< --cache-dir / PALS_CACHE_DIR; "": the default cache
};

Status run_demo(const DemoOptions& opt) {
    sim::NodeOptions node_opt;
    node_opt.gpu = "H100-SXM";
    node_opt.tp = 2;
    PALS_ASSIGN_OR_RETURN(const std::string model_path, default_model_path());
    PALS_ASSIGN_OR_RETURN(sim::NodeConfig node, node_opt.build({}, model_path));
    for (const double cap : opt.caps_w) {
        if (Status st = check_range("--caps", cap, node.gpu.power_limit_min_w,
                                    node.gpu.power_limit_max_w, "W", node.gpu.name);
            !st.is_ok()) {
            return st;
        }
    }
    workload::WorkloadSpec spec;
    spec.kind = workload::WorkloadKind::kTrace;
    if (opt.trace.empty()) {
        PALS_ASSIGN_OR_RETURN(const std::string data, data_dir());
        spec.trace_path = data + "/traces/AzureLLMInferenceTrace_conv.csv";
    } else {
        spec.trace_path = opt.trace;
    }
    spec.duration_s = opt.duration_s;
    PALS_ASSIGN_OR_RETURN(std::vector<workload::Request> requests, workload::build_workload(spec));
    std::printf(
        "PALS demo: %s on 2x %s (TP2), %zu requests from %s (first %.0f s)\n"
        "SLOs: TTFT <= 1 s, TPOT <= 100 ms. Energy and power are all GPUs, idle included.\n\n",
        model_id_text(node.model.name).c_str(), node.gpu.name.c_str(), requests.size(),
        spec.trace_path.filename().c_str(), opt.duration_s);
    std::vector<std::vector<std::string>> rows;
    double wall = 0.0;
    for (const double cap : opt.caps_w) {
        for (const int batch : opt.batch_caps) {
            sim::NodeConfig config = node;
            config.power_cap_w = cap;
            config.engine.max_num_seqs = batch;
            PALS_ASSIGN_OR_RETURN(sim::Simulator sim, sim::Simulator::create(config, requests));
            sim.run_to_completion();
            const sim::SimulationReport r = sim.report();
            wall += r.sim_wall_s;
            rows.push_back({fmt::format("{:.0f}", cap), fmt::format("{}", batch),
                            fmt::format("{:.0f}", r.throughput_tok_s),
                            fmt::format("{:.0f}", r.avg_power_w),
                            fmt::format("{:.3f}", r.tokens_per_joule),
                            fmt::format("{:.0f}", r.sm_clock_mhz_avg),
                            fmt::format("{:.0f}", r.ttft_s.p50 * 1e3),
                            fmt::format("{:.0f}", r.ttft_s.p99 * 1e3),
                            fmt::format("{:.1f}", r.tpot_s.p50 * 1e3),
                            fmt::format("{:.1f}", r.tpot_s.p99 * 1e3),
                            fmt::format("{:.1f}", r.slo_attainment * 100.0)});
        }
    }
    std::fputs(format_table({"cap W/GPU", "batch cap", "tok/s", "power W", "tok/J", "SM MHz",
                             "TTFT p50 ms", "TTFT p99 ms", "TPOT p50 ms", "TPOT p99 ms", "SLO %"},
                            rows)
                   .c_str(),
               stdout);
    std::printf("\n%zu simulations in %.2f s of wall time.\n", rows.size(), wall);
    if (opt.scenario.empty()) {
        return Status::ok();
    }

    // The headline comparison: every policy on the same trace under a budget step.
    PALS_ASSIGN_OR_RETURN(control::Scenario scenario, opt.scenario == kBuiltinScenario
                                                          ? builtin_demo_scenario()
                                                          : load_scenario_file(opt.scenario));
    scenario.workload.duration_s = opt.duration_s;
    std::fputs(scenario_echo(scenario).c_str(), stdout);
    std::fflush(stdout);
    PALS_ASSIGN_OR_RETURN(std::shared_ptr<const profile::PowerModel> model,
                          power_model_for(scenario, opt.cache_dir));
    PALS_ASSIGN_OR_RETURN(control::ScenarioResult result,
                          control::evaluate_scenario(scenario, model));
    result.frontier_svg = frontier_svg_for(*model, scenario);
    std::fputs(evaluation_table(result).c_str(), stdout);
    if (!opt.report.empty()) {
        PALS_RETURN_IF_ERROR(write_file_atomic(opt.report, evaluation_html({result})));
        std::printf("report written to %s\n", opt.report.c_str());
    }
    return Status::ok();
}

}  // namespace

void add_demo_command(CLI::App& app, CommandContext& ctx) {
    auto opt = std::make_shared<DemoOptions>();
    CLI::App* cmd = app.add_subcommand(
        "demo", "the main job on the simulator: energy/latency over power caps x batch caps");
    cmd->add_option("--trace", opt->trace, "trace to replay (default: Azure conversation trace)");
    cmd->add_option("--duration", opt->duration_s, "seconds of the trace to replay")
        ->check(finite_above(0.0, kMaxSeconds, "s"))
        ->capture_default_str();
    cmd->add_option("--caps", opt->caps_w, "power caps per GPU (W)")
        ->delimiter(',')
        ->check(finite_in(0.0, 10000.0, "W"));
    cmd->add_option("--batch-caps", opt->batch_caps, "batch caps")
        ->delimiter(',')
        ->check(integer_in(1, kMaxSeqs));
    cmd->add_option("--scenario", opt->scenario,
                    "scenario file of the policy comparison (the default is built into pals: "
                    "scenarios/mixtral-conv-step-budget.toml; \"\" skips it)")
        ->capture_default_str();
    cmd->add_option("--report", opt->report,
                    "HTML report of the comparison, relative to the current folder (\"\" for "
                    "none)")
        ->capture_default_str();
    cmd->add_option("--cache-dir", opt->cache_dir,
                    "where the power models profiled for policy pals are cached (default: "
                    "$XDG_CACHE_HOME/pals, else ~/.cache/pals)")
        ->envname("PALS_CACHE_DIR");
    cmd->callback([opt, &ctx] {
        const Status status = run_demo(*opt);
        ctx.exit_code = status.is_ok() ? 0 : report_error(status);
    });
}

}  // namespace pals::cli
