#pragma once
/// @file svg_chart.hpp
/// @brief A small self-contained SVG line chart (axes, ticks, labels, legend), for HTML reports.

#include <string>
#include <vector>

namespace pals::cli {

struct SvgSeries {
    std::string label;
    std::vector<double> x;
    std::vector<double> y;
    std::string color;  ///< CSS colour; empty picks from a palette
    bool dashed = false;
    bool step = false;  ///< draw as a step function (values hold until the next x)
};

struct SvgChart {
    std::string title;
    std::string x_label;
    std::string y_label;
    std::vector<SvgSeries> series;
    int width = 720;
    int height = 300;
    bool log_x = false;
    double y_min = 0.0;  ///< lower bound of the y axis (upper bound from the data)
};

/// The k-th colour of the chart palette (so one policy keeps its colour across charts).
[[nodiscard]] std::string palette_color(std::size_t k);

/// The chart as an `<svg>` element (no XML prologue), safe to inline in HTML.
[[nodiscard]] std::string render_svg(const SvgChart& chart);

/// Escapes &, <, >, " for HTML/SVG text.
[[nodiscard]] std::string escape_xml(const std::string& text);

}  // namespace pals::cli
