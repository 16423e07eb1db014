// `pals frontier`: the Pareto set of a fitted model over (J/token, throughput, ITL), as a table,
// JSON or an SVG chart (docs/profile.md).
#include <fmt/format.h>

#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/flag_checks.hpp"
#include "cli/report_format.hpp"
#include "pals/common/file_util.hpp"
#include "pals/profile/pareto.hpp"
#include "pals/profile/power_model.hpp"
#include "pals/report/frontier_chart.hpp"

namespace pals::cli {

namespace {

struct FrontierOptions {
    std::string model;
    std::string workload;
    double slo_itl_s = 0.0;
    double budget_w = 0.0;
    double cap_step_w = 0.0;
    double tolerance_pct = profile::kDefaultParetoTolerance.relative * 100.0;
    double itl_tolerance_pct = profile::kDefaultParetoTolerance.itl * 100.0;
    double demand_tok_s = 0.0;  ///< > 0: answer "which point for this load" (best_point)
    bool json = false;
    std::string svg;
};

std::string constraints_text(const FrontierOptions& opt) {
    std::string out;
    if (opt.slo_itl_s > 0.0) {
        out += fmt::format("ITL p90 <= {:g} ms", opt.slo_itl_s * 1e3);
    }
    if (opt.budget_w > 0.0) {
        out += (out.empty() ? "" : ", ") + fmt::format("group power <= {:g} W", opt.budget_w);
    }
    return out.empty() ? std::string("no constraints") : out;
}

/// How dominance was judged, for the table's heading.
std::string dominance_text(const FrontierOptions& opt) {
    if (opt.tolerance_pct == 0.0 && opt.itl_tolerance_pct == 0.0) {
        return "strict dominance";
    }
    return fmt::format(
        "differences under {:g} % in J/token and tok/s and under {:g} % in ITL p90 ignored",
        opt.tolerance_pct, opt.itl_tolerance_pct);
}

/// The controller's query for the load `opt` names: the most efficient point meeting the demand
/// within the bounds (PowerModel::best_point), as a line and as JSON.
struct Answer {
    std::string text;
    nlohmann::ordered_json json;
};

Answer answer_demand(const profile::PowerModel& m, const FrontierOptions& opt) {
    profile::Query q;
    q.demand_tok_s = opt.demand_tok_s;
    q.max_itl_s = opt.slo_itl_s;
    q.max_power_w = opt.budget_w;
    const profile::QueryResult r = m.best_point(q, opt.workload);
    const profile::Prediction& p = r.point;
    Answer a;
    a.text = fmt::format(
        "for {:.0f} tok/s ({}): {} cap {:g} W x batch cap {}: predicted {:.0f} tok/s, {:.0f} W "
        "for the group, {:.4f} J/token, ITL p90 {:.1f} ms, SM clock {:.0f} MHz\n",
        opt.demand_tok_s, constraints_text(opt),
        r.feasible ? "the most efficient point meeting it is"
                   : "no point meets it; best effort (the most throughput within the power "
                     "bound) is",
        p.power_cap_w, p.batch_cap, p.throughput_tok_s, p.power_w, p.j_per_token, p.itl_p90_s * 1e3,
        p.sm_clock_mhz);
    a.json = {{"demand_tok_s", opt.demand_tok_s},       {"feasible", r.feasible},
              {"power_cap_w", p.power_cap_w},           {"batch_cap", p.batch_cap},
              {"throughput_tok_s", p.throughput_tok_s}, {"power_w", p.power_w},
              {"j_per_token", p.j_per_token},           {"itl_p90_s", p.itl_p90_s},
              {"sm_clock_mhz", p.sm_clock_mhz}};
    return a;
}

/// Expected distinct experts per MoE layer in one decode step of `batch` sequences.
double experts_touched(const profile::ModelShape& shape, double batch) {
    return profile::expected_distinct_experts(shape.num_experts, shape.experts_per_token, batch);
}

Status run_frontier(const FrontierOptions& opt) {
    PALS_ASSIGN_OR_RETURN(profile::PowerModel model, profile::PowerModel::load(opt.model));
    const profile::PowerModel& m = model;
    const std::vector<std::string> names = m.workloads();
    if (!opt.workload.empty() &&
        std::find(names.begin(), names.end(), opt.workload) == names.end()) {
        return Status::not_found(fmt::format("{}: no workload '{}' (has: {})", opt.model,
                                             opt.workload, fmt::join(names, ", ")));
    }
    profile::FrontierConstraints constraints;
    constraints.max_itl_s = opt.slo_itl_s;
    constraints.max_power_w = opt.budget_w;
    constraints.tolerance = {opt.tolerance_pct / 100.0, opt.itl_tolerance_pct / 100.0};
    PALS_ASSIGN_OR_RETURN(profile::Frontier frontier,
                          profile::compute_frontier(m, opt.workload, constraints, opt.cap_step_w));
    const profile::Frontier& f = frontier;
    const profile::ModelShape& shape = m.shape();
    std::size_t feasible = 0;
    for (bool ok : f.feasible) {
        feasible += ok ? 1 : 0;
    }

    if (!opt.svg.empty()) {
        report::FrontierSvgOptions svg;
        svg.title = fmt::format("{} on {}x {}: energy per token vs throughput", shape.model,
                                shape.tp, shape.gpu);
        const std::string kind =
            shape.is_moe() ? fmt::format("MoE {} experts top-{}, {:.1f}B active / {:.1f}B total",
                                         shape.num_experts, shape.experts_per_token,
                                         shape.active_params_b, shape.total_params_b)
                           : fmt::format("dense {:.1f}B", shape.total_params_b);
        svg.subtitle = fmt::format(
            "{}; workload {}; {}; {} of {} points feasible, {} on the frontier", kind, f.workload,
            constraints_text(opt), feasible, f.points.size(), f.front.size());
        PALS_RETURN_IF_ERROR(write_file_atomic(opt.svg, report::render_frontier_svg(f, svg)));
    }

    if (opt.json) {
        nlohmann::ordered_json j;
        j["model"] = {{"name", shape.model},
                      {"gpu", shape.gpu},
                      {"tp", shape.tp},
                      {"ep", shape.ep},
                      {"moe", shape.is_moe()},
                      {"num_experts", shape.num_experts},
                      {"experts_per_token", shape.experts_per_token},
                      {"active_params_b", shape.active_params_b},
                      {"total_params_b", shape.total_params_b}};
        j["workload"] = f.workload;
        j["constraints"] = {{"max_itl_p90_s", opt.slo_itl_s},
                            {"max_power_w", opt.budget_w},
                            {"tolerance_pct", opt.tolerance_pct},
                            {"itl_tolerance_pct", opt.itl_tolerance_pct}};
        j["points"] = f.points.size();
        j["feasible"] = feasible;
        nlohmann::ordered_json front = nlohmann::ordered_json::array();
        for (std::size_t i : f.front) {
            const profile::Prediction& p = f.points[i];
            nlohmann::ordered_json pj = {{"power_cap_w", p.power_cap_w},
                                         {"batch_cap", p.batch_cap},
                                         {"throughput_tok_s", p.throughput_tok_s},
                                         {"power_w", p.power_w},
                                         {"j_per_token", p.j_per_token},
                                         {"itl_p50_s", p.itl_p50_s},
                                         {"itl_p90_s", p.itl_p90_s},
                                         {"itl_p99_s", p.itl_p99_s},
                                         {"tpot_p90_s", p.tpot_p90_s},
                                         {"avg_batch", p.avg_batch},
                                         {"sm_clock_mhz", p.sm_clock_mhz}};
            if (shape.is_moe()) {
                pj["experts_touched_per_layer"] = experts_touched(shape, p.avg_batch);
            }
            front.push_back(pj);
        }
        j["frontier"] = front;
        if (opt.demand_tok_s > 0.0) {
            j["answer"] = answer_demand(m, opt).json;
        }
        std::printf("%s\n", j.dump(2).c_str());
        return Status::ok();
    }

    std::vector<std::string> header = {"cap W",     "batch",      "tok/s",      "power W",
                                       "J/tok",     "ITL p50 ms", "ITL p90 ms", "TPOT p90 ms",
                                       "avg batch", "SM MHz"};
    if (shape.is_moe()) {
        header.push_back("experts/layer");
    }
    std::vector<std::vector<std::string>> rows;
    for (std::size_t i : f.front) {
        const profile::Prediction& p = f.points[i];
        std::vector<std::string> row = {
            fmt::format("{:g}", p.power_cap_w),        std::to_string(p.batch_cap),
            fmt::format("{:.0f}", p.throughput_tok_s), fmt::format("{:.0f}", p.power_w),
            fmt::format("{:.4f}", p.j_per_token),      fmt::format("{:.1f}", p.itl_p50_s * 1e3),
            fmt::format("{:.1f}", p.itl_p90_s * 1e3),  fmt::format("{:.1f}", p.tpot_p90_s * 1e3),
            fmt::format("{:.1f}", p.avg_batch),        fmt::format("{:.0f}", p.sm_clock_mhz)};
        if (shape.is_moe()) {
            const double d = experts_touched(shape, p.avg_batch);
            row.push_back(fmt::format("{:.1f} ({:.0f}%)", d, 100.0 * d / shape.num_experts));
        }
        rows.push_back(std::move(row));
    }
    std::printf(
        "%s\nworkload %s; %s; %zu of %zu points feasible; Pareto frontier over (J/token lower, "
        "tok/s higher, ITL p90 lower): %zu points (%s)\n\n%s",
        shape.describe().c_str(), f.workload.c_str(), constraints_text(opt).c_str(), feasible,
        f.points.size(), f.front.size(), dominance_text(opt).c_str(),
        format_table(header, rows).c_str());
    if (!opt.svg.empty()) {
        std::printf("\nchart -> %s\n", opt.svg.c_str());
    }
    if (opt.demand_tok_s > 0.0) {
        std::printf("\n%s", answer_demand(m, opt).text.c_str());
    }
    return Status::ok();
}

}  // namespace

void add_frontier_command(CLI::App& app, CommandContext& ctx) {
    auto opt = std::make_shared<FrontierOptions>();
    CLI::App* cmd = app.add_subcommand(
        "frontier", "the Pareto frontier of a fitted model (table, JSON or SVG)");
    cmd->add_option("model", opt->model, "MODEL.json written by `pals fit`")->required();
    cmd->add_option("--workload", opt->workload, "workload mix (default: the first)");
    cmd->add_option("--slo-itl,--max-itl-p90", opt->slo_itl_s,
                    "keep points with predicted ITL p90 <= S seconds (0: no bound)")
        ->check(finite_in(0.0, kMaxSeconds, "s"));
    cmd->add_option("--budget,--max-power", opt->budget_w,
                    "keep points whose group power (all GPUs) is <= W (0: no bound)")
        ->check(finite_in(0.0, 1e7, "W"));
    cmd->add_option("--cap-step", opt->cap_step_w,
                    "evaluate caps every W watts instead of the profiled caps")
        ->check(finite_in(0.0, 10000.0, "W"));
    cmd->add_option("--tolerance", opt->tolerance_pct,
                    "J/token and tok/s differences under this many percent do not count for "
                    "dominance (about twice the model's cross-validated error; 0: strict)")
        ->check(finite_in(0.0, 100.0, "%"))
        ->capture_default_str();
    cmd->add_option("--itl-tolerance", opt->itl_tolerance_pct,
                    "ITL p90 differences under this many percent do not count (its model error "
                    "is larger, and 5 % of an ITL is a few ms nobody notices; 0: strict)")
        ->check(finite_in(0.0, 100.0, "%"))
        ->capture_default_str();
    cmd->footer(
        "The frontier keeps the points worth choosing between: a point is dropped when another "
        "is better by more than the tolerance on one of J/token, tok/s and ITL p90 and worse by "
        "more than it on none, or equal within the tolerances on all three and cheaper (so "
        "1.2 % lower ITL does not keep a point that costs 25 % more energy). Bound the latency "
        "with --max-itl-p90. --demand searches every point, on the frontier or not "
        "(docs/profile.md).");
    cmd->add_option("--demand", opt->demand_tok_s,
                    "also answer: which point serves TOK_S tokens/s within the bounds at the "
                    "fewest joules per token (the controller's query)")
        ->check(finite_in(0.0, 1e9, "tok/s"));
    cmd->add_flag("--json", opt->json, "print the frontier as JSON");
    cmd->add_option("--svg", opt->svg, "write an SVG chart of energy/token vs throughput to FILE");
    cmd->callback([opt, &ctx] {
        const Status status = run_frontier(*opt);
        ctx.exit_code = status.is_ok() ? 0 : report_error(status);
    });
}

}  // namespace pals::cli
