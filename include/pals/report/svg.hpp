#pragma once
/// @file svg.hpp
/// @brief The SVG of PALS's reports, one module: text escaping, colours, logarithmic axes, and
/// a small self-contained line chart (axes, ticks, labels, legend). The frontier chart
/// (frontier_chart.hpp) and the evaluation's HTML report draw with it.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pals::report {

struct SvgSeries {
    std::string label;
    std::vector<double> x;
    std::vector<double> y;
    std::string color;  ///< CSS colour; empty picks from a palette
    bool dashed = false;
    bool step = false;  ///< draw as a step function (values hold until the next x)
};

/// A vertical reference line at x (an SLO target), labelled at its top.
struct SvgMarker {
    double x = 0.0;
    std::string label;
};

struct SvgChart {
    std::string title;
    std::string x_label;
    std::string y_label;
    std::vector<SvgSeries> series;
    std::vector<SvgMarker> x_markers;  ///< drawn dashed in the foreground colour; in the x range
    int width = 720;   ///< of the viewBox: the chart scales to its container's width
    int height = 300;  ///< of the viewBox (the aspect ratio is kept)
    bool log_x = false;
    double y_min = 0.0;  ///< lower bound of the y axis (upper bound from the data)
};

/// The colour of a series drawn in the page's foreground colour (black in light mode, light
/// grey in dark mode): a budget, a reference.
inline constexpr const char* kForegroundColor = "foreground";

/// The k-th colour of the chart palette (so one policy keeps its colour across charts).
[[nodiscard]] std::string palette_color(std::size_t k);

/// The chart as an `<svg>` element (no XML prologue), safe to inline in HTML. It has a viewBox
/// and width 100 %, so it fills its container; its colours are classes of svg_theme_css() with
/// the light theme as presentation attributes (it reads correctly without the CSS). Series whose
/// lines coincide on the chart (the same pixels) are drawn once, named together in the legend
/// ("default = cap-only").
[[nodiscard]] std::string render_svg(const SvgChart& chart);

/// The CSS of the charts' classes: the light theme, and the dark one under
/// `prefers-color-scheme: dark` (background, plot area, text, grid, axes, foreground lines).
[[nodiscard]] std::string svg_theme_css();

/// Escapes &, <, >, " for HTML/SVG text.
[[nodiscard]] std::string escape_xml(std::string_view text);

/// Viridis at t in [0, 1] (matplotlib's perceptually uniform colour map), as "#rrggbb".
[[nodiscard]] std::string viridis(double t);

/// A logarithmic axis from lo to hi (lo > 0), mapped to pixels [p0, p1].
struct LogAxis {
    double lo = 1.0;
    double hi = 10.0;
    double p0 = 0.0;
    double p1 = 1.0;
    [[nodiscard]] double map(double v) const;
    /// Major ticks (1, 2, 5 x 10^k, or every mantissa when the range is narrow) within range.
    [[nodiscard]] std::vector<double> ticks() const;
    /// The densest ticks with at most `max_ticks` in range: every mantissa (1, 1.5, 2, 3, ..
    /// 9 x 10^k), else 1-2-5 per decade, else powers of ten (however many).
    [[nodiscard]] std::vector<double> ticks(std::size_t max_ticks) const;
    /// 1..9 x 10^k within range: the grid lines between labelled ticks.
    [[nodiscard]] std::vector<double> minor_ticks() const;
};

/// The range of the positive finite values, padded by `pad` decades on each side (widened
/// when narrower than 1.5x; 1-10 when there is none).
[[nodiscard]] std::pair<double, double> log_range(const std::vector<double>& values, double pad);

/// A tick label: k/M suffixes for large values ("1.5k", "2M").
[[nodiscard]] std::string si_tick_label(double v);

}  // namespace pals::report
