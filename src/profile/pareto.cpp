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

}  // namespace

bool dominates(const Prediction& a, const Prediction& b, const ParetoTolerance& t) {
    // Objectives as "lower is better" pairs (throughput negated through its reciprocal), each
    // with the relative difference below which it does not count.
    const std::array<std::array<double, 3>, 3> ab = {
        {{a.j_per_token, b.j_per_token, t.relative},
         {1.0 / a.throughput_tok_s, 1.0 / b.throughput_tok_s, t.relative},
         {a.itl_p90_s, b.itl_p90_s, t.itl}}};
    bool better = false;
    for (const auto& [x, y, tolerance] : ab) {
        const double slack = 1.0 + tolerance;
        if (less(y * slack, x)) {
            return false;  // a is worse than b beyond the tolerance
        }
        better = better || less(x * slack, y);
    }
    // Equal within the tolerances on all three: one choice, and the cheaper point stands for it.
    return better || ((t.relative > 0.0 || t.itl > 0.0) && less(a.j_per_token, b.j_per_token));
}

std::vector<std::size_t> pareto_front(std::span<const Prediction> points,
                                      const ParetoTolerance& tolerance) {
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
    if (out.empty() && (tolerance.relative > 0.0 || tolerance.itl > 0.0) && !points.empty()) {
        return pareto_front(points, ParetoTolerance{});
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
        !(cap_step_w >= 0.0) || !(constraints.tolerance.relative >= 0.0) ||
        !(constraints.tolerance.itl >= 0.0)) {
        return Status::invalid_argument(
            "the SLO, the budget, the cap step and the tolerances must be >= 0");
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
            PALS_ASSIGN_OR_RETURN(Prediction p, model.predict(cap, batch, f.workload));
            const bool ok =
                (constraints.max_itl_s <= 0.0 || p.itl_p90_s <= constraints.max_itl_s) &&
                (constraints.max_power_w <= 0.0 || p.power_w <= constraints.max_power_w);
            f.points.push_back(p);
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

}  // namespace pals::profile
