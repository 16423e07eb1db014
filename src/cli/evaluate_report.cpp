#include "cli/evaluate_report.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "cli/commands.hpp"
#include "cli/demo_scenario.hpp"
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

SvgChart chart(std::string title, std::string x_label, std::string y_label) {
    SvgChart c;
    c.title = std::move(title);
    c.x_label = std::move(x_label);
    c.y_label = std::move(y_label);
    return c;
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

std::string scenario_echo(const control::Scenario& sc) {
    std::string out = fmt::format("\n== {} ==\n", sc.name);
    out += node_echo(
        sc.node,
        fmt::format("set by each policy (policy default: {:g} W per GPU)",
                    sc.node.gpu.power_limit_default_w),
        fmt::format("set by each policy, up to {} (max-num-seqs)", sc.node.engine.max_num_seqs),
        "locked only by the clock-locking policies");
    if (!sc.physics.is_identity()) {
        out += echo_line("physics", sc.physics.describe());
    }
    out += echo_line("workload", workload_text(sc.workload));
    out += echo_line("SLO",
                     fmt::format("TTFT <= {:g} s, TPOT <= {:g} s", sc.slo.ttft_s, sc.slo.tpot_s));
    out += echo_line("budget", budget_text(sc));
    out += echo_line("policies", fmt::format("{}", fmt::join(sc.policies, ", ")));
    out += echo_line("control", fmt::format("period {:g} s, warm-up {:g} s, seed {}", sc.period_s,
                                            sc.warmup_s, sc.seed));
    return out + "\n";
}

std::string evaluation_table(const control::ScenarioResult& result) {
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
    std::string out;
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
    // Light and dark themes (prefers-color-scheme); charts fill the page's width, two per row
    // where they fit.
    std::string html =
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        "<meta name=\"color-scheme\" content=\"light dark\">"
        "<title>PALS evaluation</title><style>"
        ":root{color-scheme:light dark;--fg:#222;--bg:#fff;--muted:#555;--border:#ccc;"
        "--head:#f2f2f2}"
        "@media (prefers-color-scheme:dark){:root{--fg:#e4e6e8;--bg:#0f1114;--muted:#a9afb6;"
        "--border:#3a4048;--head:#1b1f24}}"
        "body{font-family:sans-serif;margin:24px;color:var(--fg);background:var(--bg)}"
        "p.note{color:var(--muted)}"
        "table{border-collapse:collapse;font-size:13px;width:100%}"
        "td,th{border:1px solid var(--border);padding:3px 8px;text-align:right}"
        "th{background:var(--head)}"
        "td:first-child,th:first-child,td:last-child,th:last-child{text-align:left}"
        "h2{margin-top:36px}"
        ".charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));"
        "gap:16px;margin-top:16px}"
        ".charts svg,.frontier svg{display:block;width:100%;height:auto}"
        ".frontier{max-width:1100px}" +
        report::svg_theme_css() +
        "</style></head><body>"
        "<h1>PALS evaluation</h1><p>All policies run on the same trace, model and simulated "
        "hardware. Energy counts all GPUs, idle included. Dotted vertical lines on the latency "
        "CDFs are the SLO targets; policies whose curves coincide are drawn once and named "
        "together in the legend (<i>a = b</i>).</p>";
    for (const control::ScenarioResult& result : results) {
        const control::Scenario& sc = result.scenario;
        html += fmt::format(
            "<h2 id=\"{0}\">{0}</h2><p>{1} on {2}x {3} (TP {4}, EP {5}); {6}; SLO TTFT &le; "
            "{7:g} s, TPOT &le; {8:g} s; budget: {9}</p>",
            escape_xml(sc.name), escape_xml(model_text(sc.node.model)),
            sc.node.parallel.tp * sc.node.replicas, escape_xml(sc.node.gpu.name),
            sc.node.parallel.tp, sc.node.parallel.ep, escape_xml(workload_text(sc.workload)),
            sc.slo.ttft_s, sc.slo.tpot_s, escape_xml(budget_text(sc)));
        html +=
            "<table><tr><th>policy</th><th>tok/J</th><th>vs default</th><th>SLO %</th>"
            "<th>QoS violations</th><th>vs cap-only</th><th>goodput tok/s</th><th>deficit %</th>"
            "<th>excess J</th><th>peak excess W</th><th>over budget s</th><th>settle s</th>"
            "<th>chosen</th></tr>";
        for (const control::PolicyRun& r : result.runs) {
            const control::PolicyMetrics& m = r.metrics;
            html += fmt::format(
                "<tr><td>{}</td><td>{:.3f}</td><td>{}</td><td>{:.1f}</td><td>{}</td><td>{}</"
                "td><td>{:.0f}</td><td>{:.1f}</td>"
                "<td>{:.0f}</td><td>{:.0f}</td><td>{:.0f}</td><td>{:.0f}</td><td>{}</td></tr>",
                escape_xml(r.policy), m.tokens_per_joule, ratio(m.efficiency_vs_default),
                m.slo_attainment * 100.0, m.qos_violations, ratio(m.qos_vs_cap_only),
                m.goodput_tok_s, m.served_deficit * 100.0, m.budget_excess_j,
                m.budget_peak_excess_w, m.time_over_budget_s, m.settle_time_s,
                m.chosen.empty() ? std::string("&ndash;") : escape_xml(m.chosen));
        }
        html += "</table><div class=\"charts\">";
        SvgChart power = chart("Node GPU power vs budget", "time (s)", "power (W)");
        SvgChart caps = chart("Power cap per GPU (first group)", "time (s)", "cap (W)");
        SvgChart batch = chart("Batch cap (first group)", "time (s)", "batch cap");
        SvgChart ttft = chart("TTFT CDF", "TTFT (s, log scale)", "share of requests");
        SvgChart tpot = chart("TPOT CDF", "TPOT (s, log scale)", "share of requests");
        ttft.log_x = tpot.log_x = true;
        ttft.x_markers.push_back({sc.slo.ttft_s, fmt::format("SLO {:g} s", sc.slo.ttft_s)});
        tpot.x_markers.push_back({sc.slo.tpot_s, fmt::format("SLO {:g} s", sc.slo.tpot_s)});
        bool budget_drawn = false;
        for (std::size_t k = 0; k < result.runs.size(); ++k) {
            const control::PolicyRun& r = result.runs[k];
            const std::string color = palette_color(k);
            SvgSeries p{r.policy, {}, {}, color, false, false};
            SvgSeries c{r.policy, {}, {}, color, false, true};
            SvgSeries b{r.policy, {}, {}, color, false, true};
            SvgSeries budget{"budget", {}, {}, report::kForegroundColor, true, true};
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
            html += "<figure style=\"margin:0\">" + render_svg(*chart) + "</figure>";
        }
        html += "</div>";
        if (!result.frontier_svg.empty()) {
            html += "<h3>Model frontier (pals)</h3><div class=\"frontier\">" + result.frontier_svg +
                    "</div>";
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
    options.title =
        fmt::format("{} on {}x {}: the power model's frontier", model_id_text(sc.node.model.name),
                    sc.node.parallel.tp, sc.node.gpu.name);
    options.subtitle = fmt::format("ITL p90 <= {:.0f} ms", sc.slo.tpot_s * 1e3);
    return report::render_frontier_svg(frontier.value(), options);
}

Result<control::Scenario> load_scenario_file(const std::string& path) {
    const Result<std::string> data = data_dir();
    Result<control::Scenario> scenario =
        control::load_scenario(path, data.is_ok() ? data.value() : std::string());
    if (!scenario.is_ok() && !data.is_ok()) {
        return Status(scenario.status().code(),
                      scenario.status().message() + " (" + data.status().message() + ")");
    }
    return scenario;
}

Result<control::Scenario> builtin_demo_scenario() {
    PALS_ASSIGN_OR_RETURN(const std::string data, data_dir());
    return control::parse_scenario(kDemoScenarioToml, kDemoScenarioName, data, data);
}

Result<std::shared_ptr<const profile::PowerModel>> power_model_for(const control::Scenario& sc,
                                                                   const std::string& cache_dir) {
    profile::ModelCacheOptions cache;
    if (!cache_dir.empty()) {
        cache.dir = cache_dir;
    }
    cache.on_profile = [](const sim::NodeConfig& node, const std::filesystem::path& file) {
        std::fprintf(stderr,
                     "pals: profiling %s on the simulator for policy 'pals' (cached in %s)\n",
                     node.model.name.c_str(), file.c_str());
    };
    return control::scenario_power_model(sc, cache);
}

}  // namespace pals::cli
