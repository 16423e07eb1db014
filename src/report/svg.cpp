#include "pals/report/svg.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace pals::report {

namespace {

constexpr int kMarginLeft = 64;
constexpr int kMarginRight = 168;
constexpr int kMarginTop = 28;
constexpr int kMarginBottom = 44;
constexpr int kTicks = 5;
const char* const kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"};

/// A "nice" tick step (1, 2 or 5 x 10^k) for a span.
double nice_step(double span) {
    if (span <= 0.0) {
        return 1.0;
    }
    const double raw = span / kTicks;
    const double mag = std::pow(10.0, std::floor(std::log10(raw)));
    for (double m : {1.0, 2.0, 5.0, 10.0}) {
        if (raw <= m * mag) {
            return m * mag;
        }
    }
    return 10.0 * mag;
}

std::string number(double v) {
    if (std::abs(v) >= 1e4 || (std::abs(v) < 1e-2 && v != 0.0)) {
        return fmt::format("{:.2g}", v);
    }
    return fmt::format("{:g}", std::round(v * 1000.0) / 1000.0);
}

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

}  // namespace

std::string viridis(double t) {
    t = std::clamp(t, 0.0, 1.0) * static_cast<double>(kViridis.size() - 1);
    const auto i = std::min(static_cast<std::size_t>(t), kViridis.size() - 2);
    const double f = t - static_cast<double>(i);
    std::array<int, 3> rgb{};
    for (std::size_t c = 0; c < 3; ++c) {
        rgb[c] = static_cast<int>(std::lround(kViridis[i][c] * (1.0 - f) + kViridis[i + 1][c] * f));
    }
    return fmt::format("#{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2]);
}

std::string si_tick_label(double v) {
    if (v >= 1e6) {
        return fmt::format("{:g}M", v / 1e6);
    }
    if (v >= 1e3) {
        return fmt::format("{:g}k", v / 1e3);
    }
    return fmt::format("{:g}", v);
}

double LogAxis::map(double v) const {
    return p0 + (std::log10(v) - std::log10(lo)) / (std::log10(hi) - std::log10(lo)) * (p1 - p0);
}

namespace {

/// Mantissas of log-axis ticks, sparsest first.
const std::array<std::vector<double>, 3>& tick_mantissas() {
    static const std::array<std::vector<double>, 3> kMantissas = {
        std::vector<double>{1.0}, std::vector<double>{1.0, 2.0, 5.0},
        std::vector<double>{1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0}};
    return kMantissas;
}

std::vector<double> ticks_with(const LogAxis& axis, const std::vector<double>& mantissas) {
    std::vector<double> out;
    for (int e = static_cast<int>(std::floor(std::log10(axis.lo)));
         e <= static_cast<int>(std::ceil(std::log10(axis.hi))); ++e) {
        for (double k : mantissas) {
            // k x 10^e, rounded so that 0.2 is 0.2 and not 0.20000000000000001
            const double v = std::stod(fmt::format("{:g}e{}", k, e));
            if (v >= axis.lo && v <= axis.hi) {
                out.push_back(v);
            }
        }
    }
    return out;
}

}  // namespace

std::vector<double> LogAxis::ticks() const {
    std::vector<double> out;
    for (const std::vector<double>& m : tick_mantissas()) {
        out = ticks_with(*this, m);
        if (out.size() >= 4) {
            break;
        }
    }
    return out;
}

std::vector<double> LogAxis::ticks(std::size_t max_ticks) const {
    std::vector<double> out;
    for (auto it = tick_mantissas().rbegin(); it != tick_mantissas().rend(); ++it) {
        out = ticks_with(*this, *it);
        if (out.size() <= max_ticks) {
            return out;
        }
    }
    return out;  // powers of ten only, however many
}

std::vector<double> LogAxis::minor_ticks() const {
    return ticks_with(*this, {1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0});
}

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

std::string palette_color(std::size_t k) {
    return kPalette[k % std::size(kPalette)];
}

std::string escape_xml(std::string_view text) {
    std::string out;
    for (char c : text) {
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

std::string svg_theme_css() {
    return ".pals-bg{fill:#fff}.pals-plot{fill:#fafafa}.pals-fg{fill:#222}.pals-muted{fill:#555}"
           ".pals-grid{stroke:#e5e5e5}.pals-axis{stroke:#888}.pals-line-fg{stroke:#222}"
           ".pals-hollow{fill:#fff}"
           "@media (prefers-color-scheme:dark){.pals-bg{fill:#15181c}.pals-plot{fill:#1b1f24}"
           ".pals-fg{fill:#e4e6e8}.pals-muted{fill:#a9afb6}.pals-grid{stroke:#30363d}"
           ".pals-axis{stroke:#8b949e}.pals-line-fg{stroke:#e4e6e8}.pals-hollow{fill:#15181c}}";
}

namespace {

/// The legend's text of a group of coinciding series, in lines of at most kLegendChars.
constexpr std::size_t kLegendChars = 22;
/// Fewest pixels between two labelled ticks of a log axis.
constexpr double kMinTickGapPx = 44.0;

std::vector<std::string> legend_lines(const std::vector<std::string>& names) {
    std::vector<std::string> lines;
    for (const std::string& name : names) {
        if (lines.empty()) {
            lines.push_back(name);
        } else if (lines.back().size() + 3 + name.size() <= kLegendChars) {
            lines.back() += " = " + name;
        } else {
            lines.back() += " =";
            lines.push_back(name);
        }
    }
    return lines;
}

/// Columns at which coinciding lines are compared, and how far apart (px) they may be there.
constexpr int kTraceColumns = 240;
constexpr double kCoincidePx = 1.5;

/// The line through `pixels` (x increasing) sampled at kTraceColumns columns across the plot:
/// its y there (linear between points), NaN where it does not reach.
std::vector<double> trace_of(const std::vector<std::pair<double, double>>& pixels, double left,
                             double width) {
    std::vector<double> out(kTraceColumns, std::numeric_limits<double>::quiet_NaN());
    std::size_t i = 0;
    for (int col = 0; col < kTraceColumns && !pixels.empty(); ++col) {
        const double x = left + width * col / (kTraceColumns - 1);
        while (i + 1 < pixels.size() && pixels[i + 1].first < x) {
            ++i;
        }
        if (x < pixels.front().first - 0.5 || x > pixels.back().first + 0.5) {
            continue;
        }
        if (i + 1 < pixels.size() && pixels[i + 1].first > pixels[i].first) {
            const double f = std::clamp(
                (x - pixels[i].first) / (pixels[i + 1].first - pixels[i].first), 0.0, 1.0);
            out[col] = pixels[i].second + f * (pixels[i + 1].second - pixels[i].second);
        } else {
            out[col] = pixels[i].second;
        }
    }
    return out;
}

/// Whether two lines look the same: within kCoincidePx wherever both are drawn, over nearly
/// the same span (a line that ends a few columns earlier, as a run that finished sooner, counts).
bool same_trace(const std::vector<double>& a, const std::vector<double>& b) {
    constexpr int kEndSlack = 6;  // columns drawn by only one of the two
    int both = 0;
    int one = 0;
    for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
        const bool has_a = !std::isnan(a[i]);
        const bool has_b = !std::isnan(b[i]);
        if (has_a && has_b) {
            if (std::fabs(a[i] - b[i]) > kCoincidePx) {
                return false;
            }
            ++both;
        } else if (has_a || has_b) {
            ++one;
        }
    }
    return both > kTraceColumns / 4 && one <= kEndSlack;
}

/// The stroke of a series: a palette colour, or the foreground class.
std::string stroke_of(const std::string& color) {
    if (color == kForegroundColor) {
        return R"(class="pals-line-fg" stroke="#222")";
    }
    return fmt::format(R"(stroke="{}")", color);
}

}  // namespace

std::string render_svg(const SvgChart& c) {
    double x_lo = std::numeric_limits<double>::infinity();
    double x_hi = -x_lo;
    double y_hi = -std::numeric_limits<double>::infinity();
    auto tx = [&c](double x) { return c.log_x ? std::log10(std::max(x, 1e-12)) : x; };
    for (const SvgSeries& s : c.series) {
        for (std::size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
            if (!std::isfinite(s.y[i]) || !std::isfinite(s.x[i])) {
                continue;
            }
            x_lo = std::min(x_lo, tx(s.x[i]));
            x_hi = std::max(x_hi, tx(s.x[i]));
            y_hi = std::max(y_hi, s.y[i]);
        }
    }
    if (!std::isfinite(x_lo)) {
        x_lo = 0.0;
        x_hi = 1.0;
        y_hi = 1.0;
    }
    for (const SvgMarker& m : c.x_markers) {
        if (std::isfinite(m.x) && (!c.log_x || m.x > 0.0)) {
            x_lo = std::min(x_lo, tx(m.x));
            x_hi = std::max(x_hi, tx(m.x));
        }
    }
    if (c.log_x) {  // a little room on both sides of the data
        constexpr double kPadDecades = 0.05;
        x_lo -= kPadDecades;
        x_hi += kPadDecades;
    }
    if (x_hi <= x_lo) {
        x_hi = x_lo + 1.0;
    }
    const double y_lo = c.y_min;
    const double y_step = nice_step(y_hi - y_lo);
    const double y_top = std::max(y_lo + y_step, std::ceil(y_hi / y_step) * y_step);
    const double plot_w = c.width - kMarginLeft - kMarginRight;
    const double plot_h = c.height - kMarginTop - kMarginBottom;
    const double plot_bottom = kMarginTop + plot_h;
    auto px = [&](double x) { return kMarginLeft + (tx(x) - x_lo) / (x_hi - x_lo) * plot_w; };
    auto py = [&](double y) {
        return kMarginTop + (1.0 - (std::clamp(y, y_lo, y_top) - y_lo) / (y_top - y_lo)) * plot_h;
    };

    std::string svg = fmt::format(
        R"(<svg xmlns="http://www.w3.org/2000/svg" class="pals-chart pals-fg" viewBox="0 0 {} {}" width="100%" preserveAspectRatio="xMidYMid meet" font-family="sans-serif" font-size="11" fill="#222" role="img">)",
        c.width, c.height);
    svg += fmt::format(
        R"(<title>{0}</title><rect class="pals-bg" width="100%" height="100%" fill="#fff"/><text x="{1}" y="16" font-size="13" font-weight="bold">{0}</text>)",
        escape_xml(c.title), kMarginLeft);
    svg += fmt::format(
        R"(<rect class="pals-plot" x="{}" y="{}" width="{:.1f}" height="{:.1f}" fill="#fafafa"/>)",
        kMarginLeft, kMarginTop, plot_w, plot_h);
    // Grid and y ticks.
    for (double y = y_lo; y <= y_top + 1e-9 * y_step; y += y_step) {
        svg += fmt::format(
            R"(<line class="pals-grid" x1="{:.1f}" x2="{:.1f}" y1="{:.1f}" y2="{:.1f}" stroke="#e5e5e5"/>)",
            double{kMarginLeft}, kMarginLeft + plot_w, py(y), py(y));
        svg += fmt::format(R"(<text x="{}" y="{:.1f}" text-anchor="end">{}</text>)",
                           kMarginLeft - 6, py(y) + 4, number(y));
    }
    // X ticks: on a log axis 1-2-5 (or every mantissa) per decade as space allows, with an
    // unlabelled grid line at every mantissa.
    auto x_grid = [&](double x) {
        svg += fmt::format(
            R"(<line class="pals-grid" x1="{0:.1f}" x2="{0:.1f}" y1="{1}" y2="{2:.1f}" stroke="#e5e5e5"/>)",
            px(x), kMarginTop, plot_bottom);
    };
    auto x_label = [&](double x) {
        svg += fmt::format(
            R"(<line class="pals-axis" x1="{0:.1f}" x2="{0:.1f}" y1="{1:.1f}" y2="{2:.1f}" stroke="#888"/>)",
            px(x), plot_bottom, plot_bottom + 4);
        svg += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" text-anchor="middle">{}</text>)", px(x),
                           plot_bottom + 16, number(x));
    };
    if (c.log_x) {
        const LogAxis axis{std::pow(10.0, x_lo), std::pow(10.0, x_hi), kMarginLeft,
                           kMarginLeft + plot_w};
        const auto max_labels = static_cast<std::size_t>(std::max(2.0, plot_w / kMinTickGapPx));
        for (double x : axis.minor_ticks()) {
            x_grid(x);
        }
        for (double x : axis.ticks(max_labels)) {
            x_label(x);
        }
    } else {
        const double x_step = nice_step(x_hi - x_lo);
        for (double x = std::ceil(x_lo / x_step) * x_step; x <= x_hi + 1e-9; x += x_step) {
            x_grid(x);
            x_label(x);
        }
    }
    svg += fmt::format(
        R"(<rect class="pals-axis" x="{}" y="{}" width="{:.1f}" height="{:.1f}" fill="none" stroke="#888"/>)",
        kMarginLeft, kMarginTop, plot_w, plot_h);
    svg += fmt::format(R"(<text x="{:.1f}" y="{}" text-anchor="middle">{}</text>)",
                       kMarginLeft + plot_w / 2, c.height - 8, escape_xml(c.x_label));
    svg += fmt::format(
        R"svg(<text transform="translate(14,{:.1f}) rotate(-90)" text-anchor="middle">{}</text>)svg",
        kMarginTop + plot_h / 2, escape_xml(c.y_label));
    // Reference lines (SLO targets).
    for (const SvgMarker& m : c.x_markers) {
        if (!std::isfinite(m.x) || (c.log_x && m.x <= 0.0)) {
            continue;
        }
        svg += fmt::format(
            R"(<line class="pals-line-fg" x1="{0:.1f}" x2="{0:.1f}" y1="{1}" y2="{2:.1f}" stroke="#222" stroke-width="1.2" stroke-dasharray="2,3"/>)",
            px(m.x), kMarginTop, plot_bottom);
        const bool right_half = px(m.x) > kMarginLeft + plot_w * 0.75;
        svg += fmt::format(R"(<text x="{:.1f}" y="{}" text-anchor="{}">{}</text>)",
                           px(m.x) + (right_half ? -4.0 : 4.0), kMarginTop + 12,
                           right_half ? "end" : "start", escape_xml(m.label));
    }
    // Series: those whose lines coincide on the chart are drawn once and named together.
    std::vector<std::vector<std::pair<double, double>>> pixels(c.series.size());
    std::vector<std::string> points(c.series.size());
    for (std::size_t k = 0; k < c.series.size(); ++k) {
        const SvgSeries& s = c.series[k];
        for (std::size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
            if (!std::isfinite(s.y[i]) || !std::isfinite(s.x[i])) {
                continue;
            }
            if (s.step && !pixels[k].empty()) {
                pixels[k].emplace_back(px(s.x[i]), pixels[k].back().second);
            }
            pixels[k].emplace_back(px(s.x[i]), py(s.y[i]));
        }
        for (const auto& [x, y] : pixels[k]) {
            points[k] += fmt::format("{:.1f},{:.1f} ", x, y);
        }
    }
    std::vector<std::vector<double>> traces(c.series.size());
    for (std::size_t k = 0; k < c.series.size(); ++k) {
        traces[k] = trace_of(pixels[k], kMarginLeft, plot_w);
    }
    auto coincide = [&](std::size_t a, std::size_t b) {
        return c.series[a].dashed == c.series[b].dashed && same_trace(traces[a], traces[b]);
    };
    double ly = kMarginTop + 10;
    for (std::size_t k = 0; k < c.series.size(); ++k) {
        const SvgSeries& s = c.series[k];
        bool drawn_before = false;
        for (std::size_t j = 0; j < k && !drawn_before; ++j) {
            drawn_before = coincide(j, k);
        }
        if (drawn_before) {
            continue;
        }
        std::vector<std::string> names = {s.label};
        for (std::size_t j = k + 1; j < c.series.size(); ++j) {
            if (coincide(k, j)) {
                names.push_back(c.series[j].label);
            }
        }
        const std::string color = s.color.empty() ? kPalette[k % std::size(kPalette)] : s.color;
        const std::string dash = s.dashed ? R"( stroke-dasharray="6,4")" : "";
        svg += fmt::format(R"(<polyline fill="none" {} stroke-width="1.6"{} points="{}"/>)",
                           stroke_of(color), dash, points[k]);
        svg += fmt::format(
            R"(<line x1="{:.1f}" x2="{:.1f}" y1="{:.1f}" y2="{:.1f}" {} stroke-width="2"{}/>)",
            kMarginLeft + plot_w + 10, kMarginLeft + plot_w + 30, ly, ly, stroke_of(color), dash);
        for (const std::string& line : legend_lines(names)) {
            svg += fmt::format(R"(<text x="{:.1f}" y="{:.1f}">{}</text>)",
                               kMarginLeft + plot_w + 34, ly + 4, escape_xml(line));
            ly += 13;
        }
        ly += 3;
    }
    svg += "</svg>";
    return svg;
}

}  // namespace pals::report
