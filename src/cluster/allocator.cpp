#include "pals/cluster/allocator.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace pals::cluster {

namespace {

/// Slopes closer than this (relative) are one water level.
constexpr double kSlopeTolerance = 1e-9;
/// A node drawing this share of its caps or more is power-bound.
constexpr double kPowerBoundShare = 0.95;

struct Segment {
    std::size_t node = 0;
    double slope = 0.0;  ///< tok/s per W
    double length_w = 0.0;
};

double floor_mw(double w) {
    return std::floor(w * 1000.0) / 1000.0;
}

/// The upper concave hull of (w, value) over [lo, hi], as segments of decreasing slope.
std::vector<Segment> hull_segments(std::size_t node, const NodeDemand& d, double lo, double hi) {
    std::vector<Segment> out;
    if (hi <= lo) {
        return out;
    }
    std::vector<std::pair<double, double>> pts;
    pts.emplace_back(lo, curve_tok_s(d.curve, lo));
    for (const DemandPoint& p : d.curve) {
        if (p.power_w > lo && p.power_w < hi && std::isfinite(p.tok_s)) {
            pts.emplace_back(p.power_w, p.tok_s);
        }
    }
    pts.emplace_back(hi, curve_tok_s(d.curve, hi));
    std::sort(pts.begin(), pts.end());
    std::vector<std::pair<double, double>> hull;
    for (const auto& p : pts) {
        while (hull.size() >= 2) {
            const auto& a = hull[hull.size() - 2];
            const auto& b = hull.back();
            // b lies on or below the chord a-p: not on the upper hull.
            const double cross = (b.first - a.first) * (p.second - a.second) -
                                 (b.second - a.second) * (p.first - a.first);
            if (cross >= 0.0) {
                hull.pop_back();
            } else {
                break;
            }
        }
        if (!hull.empty() && p.first <= hull.back().first) {
            hull.back().second = std::max(hull.back().second, p.second);
            continue;
        }
        hull.push_back(p);
    }
    for (std::size_t i = 1; i < hull.size(); ++i) {
        const double len = hull[i].first - hull[i - 1].first;
        if (len <= 0.0) {
            continue;
        }
        const double slope = (hull[i].second - hull[i - 1].second) / len;
        out.push_back({node, std::max(0.0, slope), len});
    }
    return out;
}

}  // namespace

namespace {

/// The field `value` of `curve` at `power_w`: linear between points, flat outside.
double interpolate(const std::vector<DemandPoint>& curve, double power_w,
                   double DemandPoint::*value) {
    if (curve.empty()) {
        return 0.0;
    }
    if (power_w <= curve.front().power_w) {
        return curve.front().*value;
    }
    for (std::size_t i = 1; i < curve.size(); ++i) {
        if (power_w <= curve[i].power_w) {
            const DemandPoint& a = curve[i - 1];
            const DemandPoint& b = curve[i];
            const double span = b.power_w - a.power_w;
            const double t = span > 0.0 ? (power_w - a.power_w) / span : 1.0;
            return a.*value + t * (b.*value - a.*value);
        }
    }
    return curve.back().*value;
}

}  // namespace

double curve_tok_s(const std::vector<DemandPoint>& curve, double power_w) {
    return interpolate(curve, power_w, &DemandPoint::tok_s);
}

double curve_violation_rate(const std::vector<DemandPoint>& curve, double power_w) {
    return interpolate(curve, power_w, &DemandPoint::qos_violation_rate);
}

AllocationResult allocate_budget(double budget_w, const std::vector<NodeDemand>& nodes,
                                 const AllocateOptions& options) {
    AllocationResult r;
    const std::size_t n = nodes.size();
    r.watts.resize(n);
    double min_total_w = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        r.watts[i] = std::max(0.0, nodes[i].min_w);
        min_total_w += r.watts[i];
    }
    if (!(budget_w >= min_total_w)) {
        r.feasible = false;
        return r;
    }
    double rest_w = budget_w - min_total_w;

    // 1. Water-filling over the concave hulls: segments in decreasing slope.
    std::vector<Segment> segments;
    for (std::size_t i = 0; i < n; ++i) {
        const double hi = std::max(nodes[i].max_w, r.watts[i]);
        for (const Segment& s : hull_segments(i, nodes[i], r.watts[i], hi)) {
            if (s.slope > 0.0) {
                segments.push_back(s);
            }
        }
    }
    std::stable_sort(segments.begin(), segments.end(),
                     [](const Segment& a, const Segment& b) { return a.slope > b.slope; });
    std::size_t k = 0;
    while (k < segments.size() && rest_w > 0.0) {
        // The segments of one water level (equal slopes) share what is left in proportion.
        std::size_t end = k + 1;
        const double level = segments[k].slope;
        while (end < segments.size() && segments[end].slope >= level * (1.0 - kSlopeTolerance)) {
            ++end;
        }
        double level_len = 0.0;
        for (std::size_t j = k; j < end; ++j) {
            level_len += segments[j].length_w;
        }
        const double share = std::min(1.0, rest_w / level_len);
        for (std::size_t j = k; j < end; ++j) {
            r.watts[segments[j].node] += segments[j].length_w * share;
        }
        rest_w -= level_len * share;
        r.marginal_tok_per_j = level;  // the last level reached is the water level
        if (share < 1.0) {
            rest_w = 0.0;
        }
        k = end;
    }

    // 2. Watts no curve values: a margin in proportion to headroom, up to each maximum and to
    // spare_margin over what the curve valued; the rest is the reserve.
    if (rest_w > 0.0) {
        r.marginal_tok_per_j = 0.0;
        std::vector<double> room(n);
        double room_w = 0.0;
        for (std::size_t i = 0; i < n; ++i) {
            const double cap = std::isfinite(options.spare_margin)
                                   ? r.watts[i] * (1.0 + options.spare_margin)
                                   : std::numeric_limits<double>::infinity();
            room[i] = std::max(0.0, std::min(nodes[i].max_w, cap) - r.watts[i]);
            room_w += room[i];
        }
        const double share = room_w > 0.0 ? std::min(1.0, rest_w / room_w) : 0.0;
        for (std::size_t i = 0; i < n; ++i) {
            r.watts[i] += room[i] * share;
        }
        r.spare_w = std::max(0.0, rest_w - room_w);
    }
    for (std::size_t i = 0; i < n; ++i) {
        r.watts[i] = std::max(floor_mw(r.watts[i]), std::max(0.0, nodes[i].min_w));
    }
    // Rounding may have left the sum a hair above the budget: take it from the largest share.
    const double total = std::accumulate(r.watts.begin(), r.watts.end(), 0.0);
    if (total > budget_w && n > 0) {
        const auto big = static_cast<std::size_t>(std::max_element(r.watts.begin(), r.watts.end()) -
                                                  r.watts.begin());
        r.watts[big] = std::max(nodes[big].min_w, floor_mw(r.watts[big] - (total - budget_w)));
    }
    return r;
}

std::vector<DemandPoint> measured_demand_curve(const NodeReading& in, int points) {
    std::vector<DemandPoint> curve;
    const double lo = in.min_w;
    const double hi = std::max(in.max_w, lo);
    points = std::max(points, 2);
    const double idle_w = kIdleShareOfMin * in.min_w;
    const bool bound =
        (in.caps_w > 0.0 && in.power_w >= kPowerBoundShare * in.caps_w) || in.waiting > 0;
    // Demand: what it serves, more when it queues (a queue as long as the batch doubles it).
    double demand = std::max(0.0, in.tok_s);
    if (bound) {
        // Power-bound: it would serve more with more watts; how much more the queue says, and
        // a node that does not queue yet (its batch absorbs the load, slower) gets headroom.
        demand *= kBoundDemandHeadroom + static_cast<double>(in.waiting) / std::max(1, in.running);
        demand = std::max(demand, in.recent_peak_tok_s);
    }
    const double active_w = std::max(in.power_w - idle_w, 1.0);
    for (int k = 0; k < points; ++k) {
        const double w = lo + (hi - lo) * k / (points - 1);
        double tok = 0.0;
        if (demand > 0.0) {
            const double scale =
                std::pow(std::max(w - idle_w, 0.0) / active_w, kMeasuredCurveExponent);
            // Not power-bound, demand is what it serves: more watts buy nothing more.
            tok = std::min(demand, in.tok_s * scale);
        }
        const double viol = demand > 0.0 ? std::clamp(1.0 - tok / demand, 0.0, 1.0) : 0.0;
        curve.push_back({w, tok, viol});
    }
    return curve;
}

}  // namespace pals::cluster
