#include "cli/evaluate_report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "cli/report_format.hpp"
#include "pals/control/scenario_power_model.hpp"
#include "pals/profile/pareto.hpp"
#include "pals/report/frontier_chart.hpp"
#include "pals/report/svg.hpp"

namespace pals::cli {

using report::escape_xml;
using report::palette_color;
using report::render_svg;
using report::SvgChart;
using report::SvgSeries;

namespace {

std::string budget_text(const control::Scenario& sc) {
    if (sc.budget.empty()) {
        return "no budget";
    }
    std::string out;
    for (const auto& [t, w] : sc.budget.steps()) {
        out += fmt::format("{}{:.0f} W from {:.0f} s", out.empty() ? "" : ", ", w, t);
    }
    return out;
}

/// "n/a" for a ratio to a policy not in the run or to a zero (NaN).
std::string ratio(double v) {
    if (!std::isfinite(v)) {
        return "n/a";
    }
    return v > 0.0 ? fmt::format("{:.3f}", v) : "0";
}

/// JSON has no infinity: a ratio over a zero reference is null.
nlohmann::json json_ratio(double v) {
    return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

/// Up to `n` points of a sorted sample as a CDF.
SvgSeries cdf(const std::string& label, const std::vector<double>& sorted, double scale) {
    SvgSeries s;
    s.label = label;
    constexpr std::size_t kPoints = 200;
    const std::size_t n = sorted.size();
    for (std::size_t k = 0; k < std::min(n, kPoints); ++k) {
        const std::size_t i = n <= kPoints ? k : k * (n - 1) / (kPoints - 1);
        s.x.push_back(std::max(sorted[i] * scale, 1e-3));
        s.y.push_back(static_cast<double>(i + 1) / static_cast<double>(n));
    }
    return s;
}

}  // namespace

std::string evaluation_table(const control::ScenarioResult& result) {
    const control::Scenario& sc = result.scenario;
    std::vector<std::vector<std::string>> rows;
    for (const control::PolicyRun& r : result.runs) {
        const control::PolicyMetrics& m = r.metrics;
        rows.push_back(
            {r.policy, fmt::format("{:.3f}", m.tokens_per_joule), ratio(m.efficiency_vs_default),
             fmt::format("{:.1f}", m.slo_attainment * 100.0), fmt::format("{}", m.qos_violations),
             ratio(m.qos_vs_cap_only), fmt::format("{:.0f}", m.goodput_tok_s),
             fmt::format("{:.1f}", m.served_deficit * 100.0),
             fmt::format("{:.0f}", m.budget_excess_j),
             fmt::format("{:.0f}", m.budget_peak_excess_w),
             fmt::format("{:.0f}", m.time_over_budget_s), fmt::format("{:.0f}", m.settle_time_s),
             m.chosen});
    }
    std::string out = fmt::format(
        "\n== {} ==\n{} on {}x {} (TP{}{}), {}; SLO TTFT {:.2f} s, TPOT {:.3f} s; budget: {}\n\n",
        sc.name, sc.node.model.name, sc.node.parallel.tp * sc.node.replicas, sc.node.gpu.name,
        sc.node.parallel.tp,
        sc.node.replicas > 1 ? fmt::format(" x {} replicas", sc.node.replicas) : "",
        sc.workload.kind == workload::WorkloadKind::kTrace
            ? sc.workload.trace_path.filename().string()
            : std::string("synthetic"),
        sc.slo.ttft_s, sc.slo.tpot_s, budget_text(sc));
    out += format_table(
        {"policy", "tok/J", "vs default", "SLO %", "QoS viol.", "vs cap-only", "goodput tok/s",
         "deficit %", "excess J", "peak W", "over s", "settle s", "chosen"},
        rows);
    out += fmt::format("({} policies in {:.1f} s)\n", result.runs.size(), result.wall_s);
    return out;
}

nlohmann::json evaluation_json(const control::ScenarioResult& result) {
    nlohmann::json policies = nlohmann::json::object();
    for (const control::PolicyRun& r : result.runs) {
        const control::PolicyMetrics& m = r.metrics;
        nlohmann::json& p = policies[r.policy];
        for (const control::MetricField& field : control::metric_fields()) {
            const double v = field.value(m);
            p[std::string(field.name)] =
                field.integer ? nlohmann::json(static_cast<std::int64_t>(v)) : json_ratio(v);
        }
        p["chosen"] = m.chosen;
    }
    return {{"scenario", result.scenario.name}, {"policies", policies}, {"wall_s", result.wall_s}};
}

std::string evaluation_html(const std::vector<control::ScenarioResult>& results) {
    std::string html =
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>PALS evaluation</title><style>"
        "body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse;font-"
        "size:13px}"
        "td,th{border:1px solid #ccc;padding:3px "
        "8px;text-align:right}td:first-child,th:first-child{text-align:left}"
        "h2{margin-top:36px}.charts{display:flex;flex-wrap:wrap;gap:12px}</style></head><body>"
        "<h1>PALS evaluation</h1><p>All policies run on the same trace, model and simulated "
        "hardware. "
        "Energy counts all GPUs, idle included.</p>";
    for (const control::ScenarioResult& result : results) {
        const control::Scenario& sc = result.scenario;
        html += fmt::format("<h2 id=\"{0}\">{0}</h2><p>{1} on {2}x {3}; budget: {4}</p>",
                            escape_xml(sc.name), escape_xml(sc.node.model.name),
                            sc.node.parallel.tp * sc.node.replicas, escape_xml(sc.node.gpu.name),
                            escape_xml(budget_text(sc)));
        html +=
            "<table><tr><th>policy</th><th>tok/J</th><th>vs default</th><th>SLO %</th><th>QoS "
            "violations</th>"
            "<th>vs cap-only</th><th>goodput tok/s</th><th>deficit %</th><th>excess J</th><th>peak "
            "excess "
            "W</th><th>over budget s</th>"
            "<th>settle s</th></tr>";
        for (const control::PolicyRun& r : result.runs) {
            const control::PolicyMetrics& m = r.metrics;
            html += fmt::format(
                "<tr><td>{}</td><td>{:.3f}</td><td>{}</td><td>{:.1f}</td><td>{}</td><td>{}</"
                "td><td>{:.0f}</td><td>{:.1f}</td>"
                "<td>{:.0f}</td><td>{:.0f}</td><td>{:.0f}</td><td>{:.0f}</td></tr>",
                escape_xml(r.policy), m.tokens_per_joule, ratio(m.efficiency_vs_default),
                m.slo_attainment * 100.0, m.qos_violations, ratio(m.qos_vs_cap_only),
                m.goodput_tok_s, m.served_deficit * 100.0, m.budget_excess_j,
                m.budget_peak_excess_w, m.time_over_budget_s, m.settle_time_s);
        }
        html += "</table><div class=\"charts\">";
        SvgChart power{"Node GPU power vs budget", "time (s)", "power (W)", {}};
        SvgChart caps{"Power cap per GPU (first group)", "time (s)", "cap (W)", {}};
        SvgChart batch{"Batch cap (first group)", "time (s)", "batch cap", {}};
        SvgChart ttft{"TTFT CDF", "TTFT (s, log)", "share of requests", {}};
        SvgChart tpot{"TPOT CDF", "TPOT (s, log)", "share of requests", {}};
        ttft.log_x = tpot.log_x = true;
        bool budget_drawn = false;
        for (std::size_t k = 0; k < result.runs.size(); ++k) {
            const control::PolicyRun& r = result.runs[k];
            const std::string color = palette_color(k);
            SvgSeries p{r.policy, {}, {}, color, false, false};
            SvgSeries c{r.policy, {}, {}, color, false, true};
            SvgSeries b{r.policy, {}, {}, color, false, true};
            SvgSeries budget{"budget", {}, {}, "#000", true, true};
            for (const control::TickRecord& t : r.history) {
                p.x.push_back(t.time_s);
                p.y.push_back(t.power_w);
                if (!t.cap_w.empty()) {
                    c.x.push_back(t.time_s);
                    c.y.push_back(t.cap_w.front());
                    b.x.push_back(t.time_s);
                    b.y.push_back(t.batch_cap.front());
                }
                if (std::isfinite(t.budget_w)) {
                    budget.x.push_back(t.time_s);
                    budget.y.push_back(t.budget_w);
                }
            }
            power.series.push_back(std::move(p));
            if (!budget_drawn && !budget.x.empty()) {
                power.series.push_back(std::move(budget));
                budget_drawn = true;
            }
            caps.series.push_back(std::move(c));
            batch.series.push_back(std::move(b));
            ttft.series.push_back(cdf(r.policy, r.ttft_s, 1.0));
            tpot.series.push_back(cdf(r.policy, r.tpot_s, 1.0));
            ttft.series.back().color = tpot.series.back().color = color;
        }
        for (const SvgChart* chart : {&power, &caps, &batch, &ttft, &tpot}) {
            html += render_svg(*chart);
        }
        html += "</div>";
        if (!result.frontier_svg.empty()) {
            html += "<h3>Model frontier (pals)</h3>" + result.frontier_svg;
        }
    }
    html += "</body></html>\n";
    return html;
}

std::string frontier_svg_for(const profile::PowerModel& model, const control::Scenario& sc) {
    profile::FrontierConstraints constraints;
    constraints.max_itl_s = sc.slo.tpot_s;
    Result<profile::Frontier> frontier = profile::compute_frontier(model, "", constraints);
    if (!frontier.is_ok()) {
        return {};
    }
    report::FrontierSvgOptions options;
    options.title = fmt::format("{} on {}x {}: the power model's frontier", sc.node.model.name,
                                sc.node.parallel.tp, sc.node.gpu.name);
    options.subtitle = fmt::format("ITL p90 <= {:.0f} ms", sc.slo.tpot_s * 1e3);
    return report::render_frontier_svg(frontier.value(), options);
}

Result<std::shared_ptr<const profile::PowerModel>> power_model_for(const control::Scenario& sc) {
    profile::ModelCacheOptions cache;
    cache.on_profile = [](const sim::NodeConfig& node, const std::filesystem::path& file) {
        std::fprintf(stderr,
                     "pals: profiling %s on the simulator for policy 'pals' (cached in %s)\n",
                     node.model.name.c_str(), file.c_str());
    };
    return control::scenario_power_model(sc, cache);
}

}  // namespace pals::cli
