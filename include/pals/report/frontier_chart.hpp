#pragma once
/// @file frontier_chart.hpp
/// @brief The power model's Pareto frontier as an SVG chart (`pals frontier --svg`, the HTML
/// report), drawn with the report's SVG module.

#include <string>

#include "pals/profile/pareto.hpp"

namespace pals::report {

/// Options of the SVG chart.
struct FrontierSvgOptions {
    std::string title;     ///< first line, e.g. the model and GPU
    std::string subtitle;  ///< second line, e.g. the workload and constraints
    int width_px = 960;
    int height_px = 640;
};

/// A self-contained SVG: energy per token (log y) against throughput (log x), one coloured line
/// per cap through its batch caps, infeasible points faded, the frontier ringed and the
/// energy/throughput staircase dashed, ticks, labels and a legend.
[[nodiscard]] std::string render_frontier_svg(const profile::Frontier& frontier,
                                              const FrontierSvgOptions& options);

}  // namespace pals::report
