#include "pals/report/svg.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

namespace pals::report {

namespace {

constexpr int kMarginLeft = 64;
constexpr int kMarginRight = 160;
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

std::vector<double> LogAxis::ticks() const {
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
    if (x_hi <= x_lo) {
        x_hi = x_lo + 1.0;
    }
    const double y_lo = c.y_min;
    const double y_step = nice_step(y_hi - y_lo);
    const double y_top = std::max(y_lo + y_step, std::ceil(y_hi / y_step) * y_step);
    const double plot_w = c.width - kMarginLeft - kMarginRight;
    const double plot_h = c.height - kMarginTop - kMarginBottom;
    auto px = [&](double x) { return kMarginLeft + (tx(x) - x_lo) / (x_hi - x_lo) * plot_w; };
    auto py = [&](double y) {
        return kMarginTop + (1.0 - (std::clamp(y, y_lo, y_top) - y_lo) / (y_top - y_lo)) * plot_h;
    };

    std::string svg = fmt::format(
        R"(<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" viewBox="0 0 {} {}" font-family="sans-serif" font-size="11">)",
        c.width, c.height, c.width, c.height);
    svg += fmt::format(
        R"(<rect width="100%" height="100%" fill="white"/><text x="{}" y="16" font-size="13" font-weight="bold">{}</text>)",
        kMarginLeft, escape_xml(c.title));
    // Grid and y ticks.
    for (double y = y_lo; y <= y_top + 1e-9 * y_step; y += y_step) {
        svg += fmt::format(
            R"(<line x1="{:.1f}" x2="{:.1f}" y1="{:.1f}" y2="{:.1f}" stroke="#e5e5e5"/>)",
            double{kMarginLeft}, kMarginLeft + plot_w, py(y), py(y));
        svg += fmt::format(R"(<text x="{}" y="{:.1f}" text-anchor="end">{}</text>)",
                           kMarginLeft - 6, py(y) + 4, number(y));
    }
    // X ticks.
    if (c.log_x) {
        for (double e = std::ceil(x_lo); e <= x_hi + 1e-9; e += 1.0) {
            const double x = std::pow(10.0, e);
            svg += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" text-anchor="middle">{}</text>)",
                               px(x), kMarginTop + plot_h + 16, number(x));
        }
    } else {
        const double x_step = nice_step(x_hi - x_lo);
        for (double x = std::ceil(x_lo / x_step) * x_step; x <= x_hi + 1e-9; x += x_step) {
            svg += fmt::format(
                R"(<line x1="{:.1f}" x2="{:.1f}" y1="{:.1f}" y2="{:.1f}" stroke="#999"/>)", px(x),
                px(x), kMarginTop + plot_h, kMarginTop + plot_h + 4);
            svg += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" text-anchor="middle">{}</text>)",
                               px(x), kMarginTop + plot_h + 16, number(x));
        }
    }
    svg += fmt::format(
        R"(<rect x="{}" y="{}" width="{:.1f}" height="{:.1f}" fill="none" stroke="#333"/>)",
        kMarginLeft, kMarginTop, plot_w, plot_h);
    svg += fmt::format(R"(<text x="{:.1f}" y="{}" text-anchor="middle">{}</text>)",
                       kMarginLeft + plot_w / 2, c.height - 8, escape_xml(c.x_label));
    svg += fmt::format(
        R"svg(<text transform="translate(14,{:.1f}) rotate(-90)" text-anchor="middle">{}</text>)svg",
        kMarginTop + plot_h / 2, escape_xml(c.y_label));
    // Series and legend.
    for (std::size_t k = 0; k < c.series.size(); ++k) {
        const SvgSeries& s = c.series[k];
        const std::string color = s.color.empty() ? kPalette[k % std::size(kPalette)] : s.color;
        std::string points;
        for (std::size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
            if (!std::isfinite(s.y[i]) || !std::isfinite(s.x[i])) {
                continue;
            }
            if (s.step && i > 0) {
                points += fmt::format("{:.1f},{:.1f} ", px(s.x[i]), py(s.y[i - 1]));
            }
            points += fmt::format("{:.1f},{:.1f} ", px(s.x[i]), py(s.y[i]));
        }
        svg +=
            fmt::format(R"(<polyline fill="none" stroke="{}" stroke-width="1.6"{} points="{}"/>)",
                        color, s.dashed ? R"( stroke-dasharray="6,4")" : "", points);
        const double ly = kMarginTop + 10 + 16.0 * static_cast<double>(k);
        svg += fmt::format(
            R"(<line x1="{:.1f}" x2="{:.1f}" y1="{:.1f}" y2="{:.1f}" stroke="{}" stroke-width="2"{}/>)",
            kMarginLeft + plot_w + 10, kMarginLeft + plot_w + 30, ly, ly, color,
            s.dashed ? R"( stroke-dasharray="6,4")" : "");
        svg += fmt::format(R"(<text x="{:.1f}" y="{:.1f}">{}</text>)", kMarginLeft + plot_w + 34,
                           ly + 4, escape_xml(s.label));
    }
    svg += "</svg>";
    return svg;
}

}  // namespace pals::report
