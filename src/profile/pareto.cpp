#include "pals/profile/pareto.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <map>

namespace pals::profile {

namespace {

/// Relative tolerance below which two objective values count as equal.
constexpr double kEqualTolerance = 1e-12;

bool less(double a, double b) {
    return a < b - kEqualTolerance * std::max(std::fabs(a), std::fabs(b));
}

// ---- SVG helpers -------------------------------------------------------------------------

/// Viridis, sampled at 9 stops (matplotlib's colour map, perceptually uniform).
constexpr std::array<std::array<double, 3>, 9> kViridis = {{{68, 1, 84},
                                                            {71, 44, 122},
                                                            {59, 81, 139},
                                                            {44, 113, 142},
                                                            {33, 144, 141},
                                                            {39, 173, 129},
                                                            {92, 200, 99},
                                                            {170, 220, 50},
                                                            {253, 231, 37}}};
/// Caps listed one by one in the legend up to this many; a colour bar beyond.
constexpr std::size_t kMaxLegendEntries = 16;

std::string colour_at(double t) {
    t = std::clamp(t, 0.0, 1.0) * static_cast<double>(kViridis.size() - 1);
    const auto i = std::min(static_cast<std::size_t>(t), kViridis.size() - 2);
    const double f = t - static_cast<double>(i);
    std::array<int, 3> rgb{};
    for (std::size_t c = 0; c < 3; ++c) {
        rgb[c] = static_cast<int>(std::lround(kViridis[i][c] * (1.0 - f) + kViridis[i + 1][c] * f));
    }
    return fmt::format("#{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2]);
}

std::string escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            default:
                out += c;
        }
    }
    return out;
}

/// A tick label: 3 significant digits, k/M suffixes for large values.
std::string tick_label(double v) {
    if (v >= 1e6) {
        return fmt::format("{:g}M", v / 1e6);
    }
    if (v >= 1e3) {
        return fmt::format("{:g}k", v / 1e3);
    }
    return fmt::format("{:g}", v);
}

/// A logarithmic axis from lo to hi (lo > 0), mapped to pixels [p0, p1].
struct LogAxis {
    double lo = 1.0;
    double hi = 10.0;
    double p0 = 0.0;
    double p1 = 1.0;
    [[nodiscard]] double map(double v) const {
        return p0 +
               (std::log10(v) - std::log10(lo)) / (std::log10(hi) - std::log10(lo)) * (p1 - p0);
    }
    /// Major ticks (1, 2, 5 x 10^k, or every mantissa when the range is narrow) within range.
    [[nodiscard]] std::vector<double> ticks() const {
        const std::array<std::vector<double>, 3> mantissas = {
            std::vector<double>{1.0}, std::vector<double>{1.0, 2.0, 5.0},
            std::vector<double>{1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0}};
        std::vector<double> out;
        for (const std::vector<double>& m : mantissas) {
            out.clear();
            for (int e = static_cast<int>(std::floor(std::log10(lo)));
                 e <= static_cast<int>(std::ceil(std::log10(hi))); ++e) {
                for (double k : m) {
                    const double v = k * std::pow(10.0, e);
                    if (v >= lo && v <= hi) {
                        out.push_back(v);
                    }
                }
            }
            if (out.size() >= 4) {
                break;
            }
        }
        return out;
    }
};

/// Log range of the values, padded by `pad` decades on each side.
std::pair<double, double> log_range(const std::vector<double>& values, double pad) {
    double lo = std::numeric_limits<double>::infinity();
    double hi = 0.0;
    for (double v : values) {
        if (v > 0.0 && std::isfinite(v)) {
            lo = std::min(lo, v);
            hi = std::max(hi, v);
        }
    }
    if (!std::isfinite(lo)) {
        return {1.0, 10.0};
    }
    if (hi / lo < 1.5) {
        lo /= 1.25;
        hi *= 1.25;
    }
    return {lo / std::pow(10.0, pad), hi * std::pow(10.0, pad)};
}

}  // namespace

bool dominates(const Prediction& a, const Prediction& b, double tolerance) {
    // Objectives as "lower is better" pairs (throughput negated through its reciprocal).
    const std::array<std::pair<double, double>, 3> ab = {
        {{a.j_per_token, b.j_per_token},
         {1.0 / a.throughput_tok_s, 1.0 / b.throughput_tok_s},
         {a.itl_p90_s, b.itl_p90_s}}};
    const double slack = 1.0 + tolerance;
    bool better = false;
    for (const auto& [x, y] : ab) {
        if (less(y * slack, x)) {
            return false;  // a is worse than b beyond the tolerance
        }
        better = better || less(x * slack, y);
    }
    return better;
}

std::vector<std::size_t> pareto_front(std::span<const Prediction> points, double tolerance) {
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < points.size(); ++i) {
        bool dominated = false;
        for (std::size_t j = 0; j < points.size() && !dominated; ++j) {
            dominated = j != i && dominates(points[j], points[i], tolerance);
        }
        if (!dominated) {
            out.push_back(i);
        }
    }
    if (out.empty() && tolerance > 0.0 && !points.empty()) {
        return pareto_front(points, 0.0);
    }
    std::stable_sort(out.begin(), out.end(), [&](std::size_t a, std::size_t b) {
        return points[a].throughput_tok_s < points[b].throughput_tok_s;
    });
    return out;
}

std::vector<std::size_t> energy_throughput_front(std::span<const Prediction> points) {
    std::vector<std::size_t> order(points.size());
    for (std::size_t i = 0; i < order.size(); ++i) {
        order[i] = i;
    }
    // By throughput descending; keep each point cheaper than everything faster.
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        if (points[a].throughput_tok_s != points[b].throughput_tok_s) {
            return points[a].throughput_tok_s > points[b].throughput_tok_s;
        }
        return points[a].j_per_token < points[b].j_per_token;
    });
    std::vector<std::size_t> out;
    double best = std::numeric_limits<double>::infinity();
    for (std::size_t i : order) {
        if (points[i].j_per_token < best) {
            best = points[i].j_per_token;
            out.push_back(i);
        }
    }
    std::reverse(out.begin(), out.end());
    return out;
}

Result<Frontier> compute_frontier(const PowerModel& model, std::string_view workload,
                                  const FrontierConstraints& constraints, double cap_step_w) {
    if (!(constraints.max_itl_s >= 0.0) || !(constraints.max_power_w >= 0.0) ||
        !(cap_step_w >= 0.0) || !(constraints.tolerance >= 0.0)) {
        return Status::invalid_argument(
            "the SLO, the budget, the cap step and the tolerance must be >= 0");
    }
    Frontier f;
    const std::vector<std::string> names = model.workloads();
    f.workload = workload.empty() ? names.front() : std::string(workload);
    std::vector<double> caps = model.caps_w();
    if (cap_step_w > 0.0) {
        caps.clear();
        for (double c = model.cap_min_w(); c < model.cap_max_w() - 1e-9; c += cap_step_w) {
            caps.push_back(c);
        }
        caps.push_back(model.cap_max_w());
    }
    for (int batch : model.batch_caps()) {
        for (double cap : caps) {
            Result<Prediction> p = model.predict(cap, batch, f.workload);
            if (!p.is_ok()) {
                return p.status();
            }
            const bool ok =
                (constraints.max_itl_s <= 0.0 || p->itl_p90_s <= constraints.max_itl_s) &&
                (constraints.max_power_w <= 0.0 || p->power_w <= constraints.max_power_w);
            f.points.push_back(p.value());
            f.feasible.push_back(ok);
        }
    }
    std::vector<Prediction> feasible;
    std::vector<std::size_t> index;
    for (std::size_t i = 0; i < f.points.size(); ++i) {
        if (f.feasible[i]) {
            feasible.push_back(f.points[i]);
            index.push_back(i);
        }
    }
    for (std::size_t k : pareto_front(feasible, constraints.tolerance)) {
        f.front.push_back(index[k]);
    }
    for (std::size_t k : energy_throughput_front(feasible)) {
        f.front_2d.push_back(index[k]);
    }
    return f;
}

std::string render_frontier_svg(const Frontier& frontier, const FrontierSvgOptions& options) {
    const double width = options.width_px;
    const double height = options.height_px;
    constexpr double kLeft = 84.0;
    constexpr double kRight = 190.0;
    constexpr double kTop = 72.0;
    constexpr double kBottom = 64.0;
    constexpr double kPadDecades = 0.04;

    std::vector<double> xs;
    std::vector<double> ys;
    for (const Prediction& p : frontier.points) {
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
        return colour_at(cap_max > cap_min ? (cap - cap_min) / (cap_max - cap_min) : 0.5);
    };

    std::string s;
    s += fmt::format(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} "
        "{1}\" "
        "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n",
        width, height);
    s += fmt::format("<rect width=\"{}\" height=\"{}\" fill=\"#ffffff\"/>\n", width, height);
    s += fmt::format(
        "<text x=\"{}\" y=\"28\" font-size=\"16\" font-weight=\"bold\" fill=\"#222\">{}</text>\n",
        kLeft, escape(options.title));
    s += fmt::format("<text x=\"{}\" y=\"50\" font-size=\"13\" fill=\"#555\">{}</text>\n", kLeft,
                     escape(options.subtitle));

    // Plot frame, grid and ticks.
    s += fmt::format(
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#fafafa\" stroke=\"#888\"/>\n",
        kLeft, kTop, width - kLeft - kRight, height - kTop - kBottom);
    for (double v : x.ticks()) {
        const double px = x.map(v);
        s += fmt::format(
            "<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"#e2e2e2\"/>\n", px,
            kTop, height - kBottom);
        s += fmt::format(
            "<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"#888\"/>\n", px,
            height - kBottom, height - kBottom + 5);
        s += fmt::format(
            "<text x=\"{:.1f}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\" "
            "fill=\"#333\">{}</text>\n",
            px, height - kBottom + 19, tick_label(v));
    }
    for (double v : y.ticks()) {
        const double py = y.map(v);
        s += fmt::format(
            "<line x1=\"{0}\" y1=\"{1:.1f}\" x2=\"{2}\" y2=\"{1:.1f}\" stroke=\"#e2e2e2\"/>\n",
            kLeft, py, width - kRight);
        s += fmt::format(
            "<line x1=\"{0}\" y1=\"{1:.1f}\" x2=\"{2}\" y2=\"{1:.1f}\" stroke=\"#888\"/>\n",
            kLeft - 5, py, kLeft);
        s += fmt::format(
            "<text x=\"{}\" y=\"{:.1f}\" font-size=\"12\" text-anchor=\"end\" "
            "fill=\"#333\">{}</text>\n",
            kLeft - 8, py + 4, tick_label(v));
    }
    s += fmt::format(
        "<text x=\"{:.1f}\" y=\"{}\" font-size=\"13\" text-anchor=\"middle\" "
        "fill=\"#222\">throughput (output "
        "tokens/s, log scale)</text>\n",
        (kLeft + width - kRight) / 2, height - 18);
    s += fmt::format(
        "<text transform=\"translate(22 {:.1f}) rotate(-90)\" font-size=\"13\" "
        "text-anchor=\"middle\" "
        "fill=\"#222\">energy per output token (J, log scale)</text>\n",
        (kTop + height - kBottom) / 2);
    s += fmt::format(
        "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\" fill=\"#777\">better: right "
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
            const Prediction& p = frontier.points[i];
            const bool ok = frontier.feasible[i];
            s += fmt::format(
                "<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\" fill-opacity=\"{}\" "
                "stroke=\"{}\" "
                "stroke-opacity=\"{}\"><title>{} W, batch {}: {:.0f} tok/s, {:.4f} J/tok, ITL p90 "
                "{:.1f} ms, {:.0f} "
                "W{}</title></circle>\n",
                x.map(p.throughput_tok_s), y.map(p.j_per_token), ok ? cap_colour(cap) : "#ffffff",
                ok ? 1.0 : 0.6, cap_colour(cap), ok ? 1.0 : 0.5, p.power_cap_w, p.batch_cap,
                p.throughput_tok_s, p.j_per_token, p.itl_p90_s * 1e3, p.power_w,
                ok ? "" : " (violates the constraints)");
        }
    }
    // Batch-cap labels along the highest cap's line.
    if (!by_cap.empty()) {
        constexpr double kMinLabelGapPx = 26.0;
        double last_px = -1e9;
        for (std::size_t i : by_cap.rbegin()->second) {
            const Prediction& p = frontier.points[i];
            if (x.map(p.throughput_tok_s) - last_px < kMinLabelGapPx) {
                continue;
            }
            last_px = x.map(p.throughput_tok_s);
            s += fmt::format(
                "<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"10\" fill=\"#666\">B={}</text>\n",
                x.map(p.throughput_tok_s) + 5, y.map(p.j_per_token) - 6, p.batch_cap);
        }
    }
    // The frontier, on top: the energy/throughput staircase dashed, the 3-D frontier ringed.
    for (std::size_t i : frontier.front) {
        const Prediction& p = frontier.points[i];
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
        "<text x=\"{}\" y=\"{}\" font-size=\"13\" font-weight=\"bold\" fill=\"#222\">power "
        "cap</text>\n",
        lx, ly);
    ly += 16;
    s += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#555\">(W per GPU)</text>\n",
                     lx, ly);
    ly += 18;
    if (by_cap.size() <= kMaxLegendEntries) {
        for (auto it = by_cap.rbegin(); it != by_cap.rend(); ++it) {
            s += fmt::format(
                "<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"{}\" "
                "stroke-width=\"3\"/>\n",
                lx, ly - 4, lx + 22, ly - 4, cap_colour(it->first));
            s += fmt::format(
                "<text x=\"{}\" y=\"{:.1f}\" font-size=\"12\" fill=\"#222\">{:g} W</text>\n",
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
                ly + k * kBarHeight / kBarSteps, kBarHeight / kBarSteps + 0.5, colour_at(t));
        }
        s += fmt::format(
            "<text x=\"{}\" y=\"{:.1f}\" font-size=\"12\" fill=\"#222\">{:g} W</text>\n", lx + 24,
            ly + 10, cap_max);
        s += fmt::format(
            "<text x=\"{}\" y=\"{:.1f}\" font-size=\"12\" fill=\"#222\">{:g} W</text>\n", lx + 24,
            ly + kBarHeight, cap_min);
        ly += kBarHeight + 22;
    }
    ly += 10;
    s += fmt::format(
        "<circle cx=\"{}\" cy=\"{:.1f}\" r=\"6\" fill=\"none\" stroke=\"#d62728\" "
        "stroke-width=\"2\"/>\n",
        lx + 11, ly - 4);
    s += fmt::format(
        "<text x=\"{}\" y=\"{:.1f}\" font-size=\"12\" fill=\"#222\">Pareto frontier</text>\n",
        lx + 30, ly);
    ly += 18;
    s += fmt::format(
        "<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#d62728\" "
        "stroke-width=\"2.2\" "
        "stroke-dasharray=\"6,4\"/>\n",
        lx, ly - 4, lx + 22, ly - 4);
    s += fmt::format(
        "<text x=\"{}\" y=\"{:.1f}\" font-size=\"12\" fill=\"#222\">J/tok vs tok/s only</text>\n",
        lx + 30, ly);
    ly += 18;
    s += fmt::format("<circle cx=\"{}\" cy=\"{:.1f}\" r=\"3\" fill=\"#ffffff\" stroke=\"#888\"/>\n",
                     lx + 11, ly - 4);
    s += fmt::format(
        "<text x=\"{}\" y=\"{:.1f}\" font-size=\"12\" fill=\"#222\">violates SLO/budget</text>\n",
        lx + 30, ly);
    ly += 18;
    s += fmt::format(
        "<text x=\"{}\" y=\"{:.1f}\" font-size=\"11\" fill=\"#555\">rings: frontier over</text>\n",
        lx, ly + 6);
    s += fmt::format(
        "<text x=\"{}\" y=\"{:.1f}\" font-size=\"11\" fill=\"#555\">J/token, tok/s, ITL "
        "p90</text>\n",
        lx, ly + 20);
    s += "</svg>\n";
    return s;
}

}  // namespace pals::profile
