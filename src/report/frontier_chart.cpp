#include "pals/report/frontier_chart.hpp"

#include <fmt/format.h>

#include <map>
#include <vector>

#include "pals/report/svg.hpp"

namespace pals::report {

namespace {

/// Caps listed one by one in the legend up to this many; a colour bar beyond.
constexpr std::size_t kMaxLegendEntries = 16;

}  // namespace

std::string render_frontier_svg(const profile::Frontier& frontier,
                                const FrontierSvgOptions& options) {
    const double width = options.width_px;
    const double height = options.height_px;
    constexpr double kLeft = 84.0;
    constexpr double kRight = 190.0;
    constexpr double kTop = 72.0;
    constexpr double kBottom = 64.0;
    constexpr double kPadDecades = 0.04;

    std::vector<double> xs;
    std::vector<double> ys;
    for (const profile::Prediction& p : frontier.points) {
        xs.push_back(p.throughput_tok_s);
        ys.push_back(p.j_per_token);
    }
    const auto [x_lo, x_hi] = log_range(xs, kPadDecades);
    const auto [y_lo, y_hi] = log_range(ys, kPadDecades);
    const LogAxis x{x_lo, x_hi, kLeft, width - kRight};
    const LogAxis y{y_lo, y_hi, height - kBottom, kTop};

    // Caps, ascending, each with its points by batch cap.
    std::map<double, std::vector<std::size_t>> by_cap;
    for (std::size_t i = 0; i < frontier.points.size(); ++i) {
        by_cap[frontier.points[i].power_cap_w].push_back(i);
    }
    const double cap_min = by_cap.empty() ? 0.0 : by_cap.begin()->first;
    const double cap_max = by_cap.empty() ? 1.0 : by_cap.rbegin()->first;
    auto cap_colour = [&](double cap) {
        return viridis(cap_max > cap_min ? (cap - cap_min) / (cap_max - cap_min) : 0.5);
    };

    std::string s;
    s += fmt::format(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"pals-chart\" width=\"{0}\" "
        "height=\"{1}\" "
        "viewBox=\"0 0 {0} {1}\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n"
        "<style>{2}</style>\n",
        width, height, svg_theme_css());
    s += fmt::format("<rect class=\"pals-bg\" width=\"{}\" height=\"{}\" fill=\"#ffffff\"/>\n",
                     width, height);
    s += fmt::format(
        "<text x=\"{}\" y=\"28\" font-size=\"16\" font-weight=\"bold\" class=\"pals-fg\" "
        "fill=\"#222\">{}</text>\n",
        kLeft, escape_xml(options.title));
    s += fmt::format(
        "<text x=\"{}\" y=\"50\" font-size=\"13\" class=\"pals-muted\" fill=\"#555\">{}</text>\n",
        kLeft, escape_xml(options.subtitle));

    // Plot frame, grid and ticks.
    s += fmt::format(
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" class=\"pals-plot\" fill=\"#fafafa\" "
        "stroke=\"#888\"/>\n",
        kLeft, kTop, width - kLeft - kRight, height - kTop - kBottom);
    for (double v : x.ticks()) {
        const double px = x.map(v);
        s += fmt::format(
            "<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" class=\"pals-grid\" "
            "stroke=\"#e2e2e2\"/>\n",
            px, kTop, height - kBottom);
        s += fmt::format(
            "<line class=\"pals-axis\" x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" "
            "stroke=\"#888\"/>\n",
            px, height - kBottom, height - kBottom + 5);
        s += fmt::format(
            "<text x=\"{:.1f}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\" "
            "class=\"pals-fg\" fill=\"#333\">{}</text>\n",
            px, height - kBottom + 19, si_tick_label(v));
    }
    for (double v : y.ticks()) {
        const double py = y.map(v);
        s += fmt::format(
            "<line x1=\"{0}\" y1=\"{1:.1f}\" x2=\"{2}\" y2=\"{1:.1f}\" class=\"pals-grid\" "
            "stroke=\"#e2e2e2\"/>\n",
            kLeft, py, width - kRight);
        s += fmt::format(
            "<line class=\"pals-axis\" x1=\"{0}\" y1=\"{1:.1f}\" x2=\"{2}\" y2=\"{1:.1f}\" "
            "stroke=\"#888\"/>\n",
            kLeft - 5, py, kLeft);
        s += fmt::format(
            "<text x=\"{}\" y=\"{:.1f}\" font-size=\"12\" text-anchor=\"end\" "
            "class=\"pals-fg\" fill=\"#333\">{}</text>\n",
            kLeft - 8, py + 4, si_tick_label(v));
    }
    s += fmt::format(
        "<text x=\"{:.1f}\" y=\"{}\" font-size=\"13\" text-anchor=\"middle\" "
        "class=\"pals-fg\" fill=\"#222\">throughput (output "
        "tokens/s, log scale)</text>\n",
        (kLeft + width - kRight) / 2, height - 18);
    s += fmt::format(
        "<text transform=\"translate(22 {:.1f}) rotate(-90)\" font-size=\"13\" "
        "text-anchor=\"middle\" "
        "class=\"pals-fg\" fill=\"#222\">energy per output token (J, log scale)</text>\n",
        (kTop + height - kBottom) / 2);
    s += fmt::format(
        "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\" class=\"pals-muted\" "
        "fill=\"#777\">better: right "
        "and down</text>\n",
        width - kRight - 8, kTop + 16);

    // One line per cap through its batch caps.
    for (const auto& [cap, idx] : by_cap) {
        std::string pts;
        for (std::size_t i : idx) {
            pts += fmt::format("{:.1f},{:.1f} ", x.map(frontier.points[i].throughput_tok_s),
                               y.map(frontier.points[i].j_per_token));
        }
        s += fmt::format(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.6\" "
            "stroke-opacity=\"0.85\"/>\n",
            pts, cap_colour(cap));
        for (std::size_t i : idx) {
            const profile::Prediction& p = frontier.points[i];
            const bool ok = frontier.feasible[i];
            s += fmt::format(
                "<circle{} cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\" fill-opacity=\"{}\" "
                "stroke=\"{}\" "
                "stroke-opacity=\"{}\"><title>{} W, batch {}: {:.0f} tok/s, {:.4f} J/tok, ITL p90 "
                "{:.1f} ms, {:.0f} "
                "W{}</title></circle>\n",
                ok ? "" : " class=\"pals-hollow\"", x.map(p.throughput_tok_s), y.map(p.j_per_token),
                ok ? cap_colour(cap) : "#ffffff", ok ? 1.0 : 0.6, cap_colour(cap), ok ? 1.0 : 0.5,
                p.power_cap_w, p.batch_cap, p.throughput_tok_s, p.j_per_token, p.itl_p90_s * 1e3,
                p.power_w, ok ? "" : " (violates the constraints)");
        }
    }
    // Batch-cap labels along the highest cap's line.
    if (!by_cap.empty()) {
        constexpr double kMinLabelGapPx = 26.0;
        double last_px = -1e9;
        for (std::size_t i : by_cap.rbegin()->second) {
            const profile::Prediction& p = frontier.points[i];
            if (x.map(p.throughput_tok_s) - last_px < kMinLabelGapPx) {
                continue;
            }
            last_px = x.map(p.throughput_tok_s);
            s += fmt::format(
                "<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"10\" class=\"pals-muted\" "
                "fill=\"#666\">B={}</text>\n",
                x.map(p.throughput_tok_s) + 5, y.map(p.j_per_token) - 6, p.batch_cap);
        }
    }
    // The frontier, on top: the energy/throughput staircase dashed, the 3-D frontier ringed.
    for (std::size_t i : frontier.front) {
        const profile::Prediction& p = frontier.points[i];
        s += fmt::format(
            "<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"6\" fill=\"none\" stroke=\"#d62728\" "
            "stroke-width=\"2\"/>\n",
            x.map(p.throughput_tok_s), y.map(p.j_per_token));
    }
    if (!frontier.front_2d.empty()) {
        std::string pts;
        for (std::size_t i : frontier.front_2d) {
            pts += fmt::format("{:.1f},{:.1f} ", x.map(frontier.points[i].throughput_tok_s),
                               y.map(frontier.points[i].j_per_token));
        }
        s += fmt::format(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"2.2\" "
            "stroke-dasharray=\"6,4\"/>\n",
            pts);
    }

    // Legend.
    const double lx = width - kRight + 18;
    double ly = kTop + 8;
    s += fmt::format(
        "<text x=\"{}\" y=\"{}\" font-size=\"13\" font-weight=\"bold\" class=\"pals-fg\" "
        "fill=\"#222\">power "
        "cap</text>\n",
        lx, ly);
    ly += 16;
    s += fmt::format(
        "<text x=\"{}\" y=\"{}\" font-size=\"11\" class=\"pals-muted\" fill=\"#555\">(W per "
        "GPU)</text>\n",
        lx, ly);
    ly += 18;
    if (by_cap.size() <= kMaxLegendEntries) {
        for (auto it = by_cap.rbegin(); it != by_cap.rend(); ++it) {
            s += fmt::format(
                "<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"{}\" "
                "stroke-width=\"3\"/>\n",
                lx, ly - 4, lx + 22, ly - 4, cap_colour(it->first));
            s += fmt::format(
                "<text x=\"{}\" y=\"{:.1f}\" font-size=\"12\" class=\"pals-fg\" fill=\"#222\">{:g} "
                "W</text>\n",
                lx + 30, ly, it->first);
            ly += 18;
        }
    } else {
        constexpr int kBarSteps = 32;
        constexpr double kBarHeight = 160.0;
        for (int k = 0; k < kBarSteps; ++k) {
            const double t = 1.0 - static_cast<double>(k) / (kBarSteps - 1);
            s += fmt::format(
                "<rect x=\"{}\" y=\"{:.1f}\" width=\"16\" height=\"{:.1f}\" fill=\"{}\"/>\n", lx,
                ly + k * kBarHeight / kBarSteps, kBarHeight / kBarSteps + 0.5, viridis(t));
        }
        s += fmt::format(
            "<text x=\"{}\" y=\"{:.1f}\" font-size=\"12\" class=\"pals-fg\" fill=\"#222\">{:g} "
            "W</text>\n",
            lx + 24, ly + 10, cap_max);
        s += fmt::format(
            "<text x=\"{}\" y=\"{:.1f}\" font-size=\"12\" class=\"pals-fg\" fill=\"#222\">{:g} "
            "W</text>\n",
            lx + 24, ly + kBarHeight, cap_min);
        ly += kBarHeight + 22;
    }
    ly += 10;
    s += fmt::format(
        "<circle cx=\"{}\" cy=\"{:.1f}\" r=\"6\" fill=\"none\" stroke=\"#d62728\" "
        "stroke-width=\"2\"/>\n",
        lx + 11, ly - 4);
    s += fmt::format(
        "<text x=\"{}\" y=\"{:.1f}\" font-size=\"12\" class=\"pals-fg\" fill=\"#222\">Pareto "
        "frontier</text>\n",
        lx + 30, ly);
    ly += 18;
    s += fmt::format(
        "<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#d62728\" "
        "stroke-width=\"2.2\" "
        "stroke-dasharray=\"6,4\"/>\n",
        lx, ly - 4, lx + 22, ly - 4);
    s += fmt::format(
        "<text x=\"{}\" y=\"{:.1f}\" font-size=\"12\" class=\"pals-fg\" fill=\"#222\">J/tok vs "
        "tok/s only</text>\n",
        lx + 30, ly);
    ly += 18;
    s += fmt::format(
        "<circle class=\"pals-hollow\" cx=\"{}\" cy=\"{:.1f}\" r=\"3\" fill=\"#ffffff\" "
        "stroke=\"#888\"/>\n",
        lx + 11, ly - 4);
    s += fmt::format(
        "<text x=\"{}\" y=\"{:.1f}\" font-size=\"12\" class=\"pals-fg\" fill=\"#222\">violates "
        "SLO/budget</text>\n",
        lx + 30, ly);
    ly += 18;
    s += fmt::format(
        "<text x=\"{}\" y=\"{:.1f}\" font-size=\"11\" class=\"pals-muted\" fill=\"#555\">rings: "
        "frontier over</text>\n",
        lx, ly + 6);
    s += fmt::format(
        "<text x=\"{}\" y=\"{:.1f}\" font-size=\"11\" class=\"pals-muted\" fill=\"#555\">J/token, "
        "tok/s, ITL "
        "p90</text>\n",
        lx, ly + 20);
    s += "</svg>\n";
    return s;
}

}  // namespace pals::report
