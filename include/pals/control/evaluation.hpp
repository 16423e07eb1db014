#pragma once
/// @file evaluation.hpp
/// @brief Runs every policy of a scenario on the same trace, model and hardware (a fresh
/// SimulatedNode each), and scores them by the evaluation protocol (DESIGN.md 2).

#include <memory>
#include <string>
#include <vector>

#include "pals/common/status.hpp"
#include "pals/control/controller.hpp"
#include "pals/control/policy_metrics.hpp"
#include "pals/control/scenario.hpp"
#include "pals/profile/power_model.hpp"

namespace pals::control {

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

/// Candidate points the oracles search: caps 200..700 W in 100-W steps (the GPU's range) with a
/// free clock, and SM clock locks 0.30..0.95 of the highest clock in steps of 0.05 at the highest
/// cap the budget allows, for batch caps 16..max_num_seqs in powers of two; and locks under lower
/// caps at max_num_seqs.
struct OracleGrid {
    std::vector<double> caps_w;
    std::vector<int> batch_caps;
    /// SM clock locks tried (MHz), each at the highest cap the budget allows and every batch cap.
    std::vector<double> clocks_mhz;
    /// A lock under a lower cap (`pals` sets both at partial load: the lock paces the steps that
    /// draw less than the cap, the cap slows those that would draw more), at the launch batch cap,
    /// the only one `pals` uses: every (cap, lock) of these two lists. Caps 200 W up to below the
    /// highest by 25 W (`pals`'s caps are continuous); locks 0.3..0.9 of the highest clock by 0.1.
    std::vector<double> capped_lock_caps_w;
    std::vector<double> capped_lock_clocks_mhz;
    /// Per-step token budgets below the launch max_num_batched_tokens (halving it, down to
    /// `pals`'s lowest, StepTokenBands::min_tokens): tried at the point the search over the
    /// actuators above chose (a second stage, not a dimension of the grid; the budget moves
    /// TPOT against TTFT at any cap, batch and clock, so it is refined where the rest is set).
    std::vector<int> step_tokens;
};
[[nodiscard]] OracleGrid oracle_grid(const Scenario& scenario);

/// Runs the scenario's policies. `model` is needed only for `pals` (nullptr otherwise).
[[nodiscard]] Result<ScenarioResult> evaluate_scenario(
    const Scenario& scenario, const std::shared_ptr<const profile::PowerModel>& model);

/// The policies a check of `scenario`'s [expect] needs (its subject and the baselines it names),
/// in the order of policy_names().
[[nodiscard]] std::vector<std::string> expectation_policies(const Scenario& scenario);

/// Each [expect] bound that `result` breaks, one message per bound ("FILE:L:C: expect.ratio.
/// default.tokens_per_joule: pals/default = 1.21 is below 1.3 (pals 3.02, default 2.5)");
/// empty when all hold. A ratio over a zero figure is 0 for 0/0 (no violations against none
/// meets any upper bound) and infinite otherwise.
[[nodiscard]] std::vector<std::string> check_expectations(const ScenarioResult& result);

}  // namespace pals::control
