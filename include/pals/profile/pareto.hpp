#pragma once
/// @file pareto.hpp
/// @brief The Pareto frontier of (cap, batch cap) points over three objectives: energy per
/// output token (lower), throughput (higher) and p90 inter-token latency (lower), among the
/// points that meet an ITL SLO and a power budget (`pals frontier`).
///
/// Thread-safety: free functions over values.

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pals/common/status.hpp"
#include "pals/profile/power_model.hpp"

namespace pals::profile {

/// Relative differences below which an objective does not make one point better than another.
/// Without them a grid's frontier is mostly noise: a cap that buys 0.3 % more throughput for
/// 20 % more energy, or 1.2 % lower ITL for 33 % more J/token, would sit on it as a "choice".
struct ParetoTolerance {
    /// J/token and throughput: about twice the fitted model's cross-validated error on them
    /// (1-1.5 % MAPE on the simulator's H100 profiles), which it cannot resolve.
    double relative = 0.0;
    /// ITL p90: its cross-validated error is larger (about 2 % MAPE, with a long tail near
    /// saturation), and 5 % of a 20-100 ms ITL is 1-5 ms, which no reader of a token stream
    /// notices; latency that matters is a bound (--max-itl-p90), not an objective.
    double itl = 0.0;
};

/// `pals frontier`'s defaults (docs/profile.md).
inline constexpr ParetoTolerance kDefaultParetoTolerance{0.02, 0.05};

/// True when `a` dominates `b`: no worse than b beyond the tolerance on any of the three
/// objectives (J/token, throughput, ITL p90) and better by more than it on one; or, with a
/// nonzero tolerance, equal to b within the tolerances on all three and cheaper (lower J/token):
/// equivalent points are one choice, and the cheapest stands for them. A zero tolerance is
/// strict Pareto dominance.
[[nodiscard]] bool dominates(const Prediction& a, const Prediction& b,
                             const ParetoTolerance& tolerance = {});

/// Indices of the points no other point dominates (with `tolerance`), sorted by throughput
/// (ascending). Exact duplicates are all kept. With a tolerance, dominance is not transitive;
/// should no point survive, the strict frontier is returned. O(n^2), for the few hundred
/// points of a profile grid.
[[nodiscard]] std::vector<std::size_t> pareto_front(std::span<const Prediction> points,
                                                    const ParetoTolerance& tolerance = {});

/// The 2-D frontier over (J/token lower, throughput higher) only: the staircase a chart of
/// energy/token against throughput shows. Sorted by throughput.
[[nodiscard]] std::vector<std::size_t> energy_throughput_front(std::span<const Prediction> points);

/// Constraints of a frontier (0 = none) and the dominance rule.
struct FrontierConstraints {
    double max_itl_s = 0.0;    ///< p90 ITL bound (--slo-itl)
    double max_power_w = 0.0;  ///< group power bound, all GPUs (--budget)
    ParetoTolerance tolerance = kDefaultParetoTolerance;  ///< see dominates()
};

/// Candidates, which meet the constraints, and the frontier among those.
struct Frontier {
    std::string workload;
    std::vector<Prediction> points;     ///< every (cap, batch cap) candidate
    std::vector<bool> feasible;         ///< per point: meets the constraints
    std::vector<std::size_t> front;     ///< indices into points, by throughput
    std::vector<std::size_t> front_2d;  ///< feasible energy/throughput staircase, by throughput
};

/// Evaluates the model on its profiled caps (or every `cap_step_w` W from cap_min when > 0)
/// x its batch caps, and returns the frontier among the feasible points.
/// kNotFound for an unknown workload; kInvalidArgument for a negative constraint or step.
[[nodiscard]] Result<Frontier> compute_frontier(const PowerModel& model, std::string_view workload,
                                                const FrontierConstraints& constraints,
                                                double cap_step_w = 0.0);

}  // namespace pals::profile
