#pragma once
/// @file allocator.hpp
/// @brief How a cluster budget is divided among nodes (docs/cluster.md): pure functions, used by
/// the coordinator of `pals run` and by the simulated cluster alike.
///
/// Each node describes what it needs as a demand curve: a few points (node budget W -> expected
/// output tokens/s and QoS violation rate at the load it sees), and its hard minimum (the sum of
/// its GPUs' minimum power limits, or a configured floor above it). allocate_budget() gives every
/// node its minimum first, then water-fills the rest so that the marginal value of a watt
/// (tokens/s per W, on each curve's concave hull) is equal across the nodes that are neither at
/// their minimum nor at their maximum; watts no curve values (every node served) go out as a
/// margin (AllocateOptions::spare_margin) in proportion to headroom, so a node whose load rises
/// has room before the next round, and the rest is kept as a reserve.
///
/// Thread-safety: pure functions.

#include <limits>
#include <string>
#include <vector>

namespace pals::cluster {

/// One point of a demand curve.
struct DemandPoint {
    double power_w = 0.0;             ///< node budget (all its GPUs), W
    double tok_s = 0.0;               ///< expected output tokens/s at that budget
    double qos_violation_rate = 0.0;  ///< expected share of requests missing an SLO (0..1)
};

/// What one node asks for.
struct NodeDemand {
    double min_w = 0.0;  ///< it can hold no less (sum of the GPUs' minimum limits, or the floor)
    double max_w = 0.0;  ///< it can use no more (sum of the GPUs' maximum limits)
    std::vector<DemandPoint> curve;  ///< ascending power_w; may be empty (no value: spare only)
};

/// The division of a budget.
struct AllocationResult {
    std::vector<double> watts;  ///< per node, in the order given
    /// Tokens/s per W at the water level (0 when every curve is satisfied, or none is valued).
    double marginal_tok_per_j = 0.0;
    bool feasible = true;  ///< false: the budget is below the sum of the minimums (all at min)
    double spare_w = 0.0;  ///< budget left unallocated (the reserve, or every node at its max)
};

/// How spare watts (beyond what every curve values) are handed out.
struct AllocateOptions {
    /// Each node may get up to this share more than what its curve valued (a margin for a
    /// rise of its load before the next round), in proportion to its headroom; what is left
    /// stays unallocated: a reserve the coordinator raises a node from at once, without waiting
    /// for other nodes to lower first. Infinity: everything is handed out.
    double spare_margin = std::numeric_limits<double>::infinity();
};

/// Divides `budget_w` among `nodes` (see the file comment). Every node gets at least its min_w
/// (even when infeasible) and at most max(min_w, max_w); the sum never exceeds `budget_w` when
/// feasible. Each watt figure is rounded down to whole mW.
[[nodiscard]] AllocationResult allocate_budget(double budget_w,
                                               const std::vector<NodeDemand>& nodes,
                                               const AllocateOptions& options = {});

/// The expected tokens/s of `curve` at `power_w` (linear between points, flat outside).
[[nodiscard]] double curve_tok_s(const std::vector<DemandPoint>& curve, double power_w);
/// The expected QoS violation rate of `curve` at `power_w` (linear between points).
[[nodiscard]] double curve_violation_rate(const std::vector<DemandPoint>& curve, double power_w);

/// What a node measured over its last period, for measured_demand_curve().
struct NodeReading {
    double power_w = 0.0;  ///< drawn by its GPUs
    double tok_s = 0.0;    ///< output tokens/s served
    double caps_w = 0.0;   ///< sum of the power limits in force
    int running = 0;       ///< requests running
    int waiting = 0;       ///< requests queued
    double min_w = 0.0;    ///< sum of minimum limits
    double max_w = 0.0;    ///< sum of maximum limits
    /// Throughput the node served recently at its best (decaying peak), tokens/s: a power-bound
    /// node's demand is at least this, so that a share cut (and the throughput it costs) does
    /// not read as less demand. 0: none.
    double recent_peak_tok_s = 0.0;
};

/// Shape of the measured curve: throughput rises with (W - idle)^kMeasuredCurveExponent (the
/// GPU's power grows faster than its clock), idle taken as kIdleShareOfMin of the minimum.
inline constexpr double kMeasuredCurveExponent = 0.6;
inline constexpr double kIdleShareOfMin = 0.4;
/// A power-bound node's demand: what it serves times this, plus its queue's share.
inline constexpr double kBoundDemandHeadroom = 1.25;

/// A demand curve from measurements alone, for nodes without a fitted model: the demand is the
/// throughput served, scaled up when the node is power-bound (drawing within 5 % of its caps, or
/// queueing) by kBoundDemandHeadroom plus the queue's length over the batch's; throughput at
/// another budget follows the power law above, capped at the demand; the violation rate is the
/// share of the demand not served. `points` points from min_w to max_w.
[[nodiscard]] std::vector<DemandPoint> measured_demand_curve(const NodeReading& reading,
                                                             int points = 8);

}  // namespace pals::cluster
