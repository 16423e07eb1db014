#pragma once
/// @file policy_metrics.hpp
/// @brief The evaluation protocol's figures for one policy's run (DESIGN.md 2), and their names
/// as a scenario's [expect] and `pals evaluate --json` write them.

#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace pals::control {

/// A ratio to a policy that is not in the run, or to a zero.
inline constexpr double kNoRatio = std::numeric_limits<double>::quiet_NaN();

/// The protocol's figures for one policy.
struct PolicyMetrics {
    double output_tokens = 0.0;
    double energy_j = 0.0;  ///< all GPUs, idle included
    double duration_s = 0.0;
    double tokens_per_joule = 0.0;
    double efficiency_vs_default = kNoRatio;  ///< tokens/J over default's (NaN: no default)
    double slo_attainment = 0.0;              ///< requests meeting both TTFT and TPOT SLOs
    std::uint64_t requests = 0;
    std::uint64_t qos_violations = 0;   ///< requests missing TTFT or TPOT SLO
    std::uint64_t ttft_violations = 0;  ///< requests missing the TTFT SLO (finished ones)
    std::uint64_t tpot_violations = 0;  ///< requests missing the TPOT SLO (finished ones)
    double qos_violation_rate = 0.0;
    /// The violation rate the loop expected, period by period, from its latency window
    /// (expected_violation_share per group and period after warm-up, weighted by the requests
    /// its window saw): to set against qos_violation_rate. NaN for runs that bypass the loop
    /// (the oracles).
    double expected_violation_rate = kNoRatio;
    /// Violations over cap-only's: NaN without cap-only, and when cap-only had none and this
    /// policy some (1 when both had none).
    double qos_vs_cap_only = kNoRatio;
    /// Output tokens/s of the requests meeting both SLOs, from warm-up to the end of the run.
    double goodput_tok_s = 0.0;
    /// 1 - output tokens generated / output tokens offered (arriving, or the throughput target),
    /// over the 10-s windows from warm-up to the last arrival, at least 0: near 0 when the
    /// policy keeps up (it lags only by its latency, ~latency / span).
    double served_deficit = 0.0;
    int windows_missed = 0;  ///< 10-s windows served < 95 % of offered load (JSON only)
    int windows_total = 0;
    double budget_excess_j = 0.0;  ///< energy above the budget
    double budget_peak_excess_w = 0.0;
    double time_over_budget_s = 0.0;
    double settle_time_s = 0.0;    ///< worst over budget steps: time until under budget
    double budget_energy_j = 0.0;  ///< integral of the budget over the run (for ratios)
    /// Per GPU group: periods in which its cap, batch cap or clock lock changed, per minute of
    /// the run after warm-up (averaged over the groups).
    double actuations_per_min = 0.0;
    std::string chosen;  ///< oracles: the point(s) chosen
};

/// One numeric figure: its name (in --json and [expect]) and how to read it.
struct MetricField {
    std::string_view name;
    double (*value)(const PolicyMetrics&);
    bool integer = false;  ///< a count (written as a JSON integer)
};

/// Every numeric figure, in the order --json lists them.
[[nodiscard]] std::span<const MetricField> metric_fields();

/// The figure called `name`, or nullptr for an unknown name.
[[nodiscard]] const MetricField* find_metric(std::string_view name);

}  // namespace pals::control
