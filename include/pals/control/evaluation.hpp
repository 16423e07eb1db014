#pragma once
/// @file evaluation.hpp
/// @brief Runs every policy of a scenario on the same trace, model and hardware (a fresh
/// SimulatedNode each), and scores them by the evaluation protocol (DESIGN.md 2).

#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "pals/common/status.hpp"
#include "pals/control/controller.hpp"
#include "pals/control/scenario.hpp"
#include "pals/profile/power_model.hpp"

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
    std::uint64_t qos_violations = 0;  ///< requests missing TTFT or TPOT SLO
    double qos_violation_rate = 0.0;
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
    std::string chosen;            ///< oracles: the point(s) chosen
};

/// One policy's run: figures and time series for the report.
struct PolicyRun {
    std::string policy;
    PolicyMetrics metrics;
    std::vector<TickRecord> history;
    std::vector<double> ttft_s;  ///< per request (sorted) for CDFs
    std::vector<double> tpot_s;
};

struct ScenarioResult {
    Scenario scenario;
    std::vector<PolicyRun> runs;  ///< in the order of scenario.policies
    double wall_s = 0.0;
    std::string frontier_svg;  ///< the pals model's frontier plot, filled in by the caller
};

/// Candidate (cap, batch) points the oracles search: caps 200..700 W in 100-W steps (the GPU's
/// range), batch caps 16..max_num_seqs in powers of two.
struct OracleGrid {
    std::vector<double> caps_w;
    std::vector<int> batch_caps;
    /// SM clock locks tried (MHz), each at the highest cap the budget allows and every batch
    /// cap: below that cap a lock and a cap both slow the GPU, so (cap x batch, free clock) and
    /// (lock x batch, highest allowed cap) together cover what a policy can set.
    std::vector<double> clocks_mhz;
};
[[nodiscard]] OracleGrid oracle_grid(const Scenario& scenario);

/// Runs the scenario's policies. `model` is needed only for `pals` (nullptr otherwise).
[[nodiscard]] Result<ScenarioResult> evaluate_scenario(
    const Scenario& scenario, const std::shared_ptr<const profile::PowerModel>& model);

}  // namespace pals::control
