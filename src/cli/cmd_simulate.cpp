// `pals simulate`: one run of the serving simulator at a fixed power cap and batch cap.
#include <fmt/format.h>

#include <cstdio>
#include <memory>

#include "cli/commands.hpp"
#include "cli/report_format.hpp"
#include "cli/sim_options.hpp"
#include "pals/common/file_util.hpp"

namespace pals::cli {

namespace {

struct SimulateOptions {
    NodeFlags node;
    WorkloadFlags workload;
    SloFlags slo;
    bool json = false;
    std::string out;
};

Status run_simulate(const SimulateOptions& opt) {
    PALS_ASSIGN_OR_RETURN(sim::NodeConfig node, opt.node.build());
    PALS_ASSIGN_OR_RETURN(workload::WorkloadSpec spec, opt.workload.build());
    PALS_ASSIGN_OR_RETURN(std::vector<workload::Request> requests, workload::build_workload(spec));
    PALS_ASSIGN_OR_RETURN(const sim::SloTargets slo, opt.slo.build());
    // What ran, at the top of the human output (the JSON carries only results).
    const std::string echo =
        opt.json
            ? std::string()
            : "pals simulate\n" + node_echo(node) +
                  echo_line("workload",
                            fmt::format("{}: {} requests", workload_text(spec), requests.size())) +
                  echo_line("SLO",
                            fmt::format("TTFT <= {:g} s, TPOT <= {:g} s", slo.ttft_s, slo.tpot_s)) +
                  "\n";
    PALS_ASSIGN_OR_RETURN(sim::Simulator simulator,
                          sim::Simulator::create(node, std::move(requests), slo));
    simulator.run_to_completion();
    const sim::SimulationReport report = simulator.report();
    const std::string text =
        opt.json ? report_to_json(report).dump(2) + "\n" : echo + report_to_text(report);
    if (!opt.out.empty()) {
        return write_file_atomic(opt.out, text);
    }
    std::fputs(text.c_str(), stdout);
    return Status::ok();
}

}  // namespace

void add_simulate_command(CLI::App& app, CommandContext& ctx) {
    auto opt = std::make_shared<SimulateOptions>();
    CLI::App* cmd = app.add_subcommand(
        "simulate", "simulate a serving node at a fixed power cap and batch cap");
    opt->node.add_to(*cmd);
    opt->workload.add_to(*cmd);
    opt->slo.add_to(*cmd);
    cmd->add_flag("--json", opt->json, "print one JSON object instead of a table");
    cmd->add_option("--out", opt->out,
                    "write the output to this file (atomically) instead of stdout");
    cmd->callback([opt, &ctx] {
        const Status status = run_simulate(*opt);
        ctx.exit_code = status.is_ok() ? 0 : report_error(status);
    });
}

}  // namespace pals::cli
