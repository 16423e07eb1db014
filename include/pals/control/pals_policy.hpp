#pragma once
/// @file pals_policy.hpp
/// @brief PALS's policy: each period, per GPU group, the most energy-efficient (cap, batch cap)
/// that the fitted model predicts meets the demand and the ITL SLO within the group's share of
/// the budget, and the SM clock, corrected online by measurement:
/// - demand = smoothed served tokens/s + the backlog drained over a horizon;
/// - throughput and ITL corrections: EWMA of measured / predicted at the current point (only
///   when the group is saturated for throughput), dividing the model's figures;
/// - partial load (the share covers the cap the demand needs): the profile is measured at
///   saturation, where a low cap throttles the clock; at partial load the GPU does not reach
///   that cap and would race at the highest clock. So the cap stays at the share (a ceiling),
///   the batch cap at launch, and the SM clock is locked: seeded at the clock the model
///   predicts at its chosen point, trimmed by latency feedback (ClockTrimmer);
/// - budget binds (the share is below that cap): the model's point within the share, clocks
///   free;
/// - escalation: a growing queue or TTFT/ITL near its SLO raises a cap floor at once (up the
///   frontier), which then decays slowly, but only where the cap binds (a group drawing >= 90 %
///   of its cap): below it a higher cap changes nothing and the clock feedback answers;
/// - budget split: each group gets a share proportional to the cap its demand needs (groups
///   that need little give the rest to those that need more), never above the budget.

#include <memory>
#include <string>

#include "pals/control/controller.hpp"
#include "pals/profile/power_model.hpp"

namespace pals::control {

struct PalsSettings {
    std::string workload;           ///< model workload mix ("" = the first)
    double demand_margin = 1.15;    ///< plan for this much more than the measured demand
    double drain_horizon_s = 10.0;  ///< drain a backlog within this time
    double itl_target = 0.85;       ///< plan for ITL p90 <= this x the TPOT SLO
    double escalation_w = 100.0;    ///< cap floor raise on a latency or queue alarm
    double floor_decay_w = 10.0;    ///< per period
    double smoothing = 0.3;         ///< EWMA weight of a new measurement
};

[[nodiscard]] std::unique_ptr<Policy> make_pals_policy(
    std::shared_ptr<const profile::PowerModel> model, PalsSettings settings = {});

}  // namespace pals::control
