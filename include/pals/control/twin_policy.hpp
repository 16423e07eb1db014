#pragma once
/// @file twin_policy.hpp
/// @brief `pals-mpc`, design (b) of issue 13: model predictive control of the power cap and the
/// SM clock over a short horizon, with the calibrated simulator as a digital twin of each GPU
/// group.
///
/// Every period, for each group, a twin replica is seeded from what the group's metrics show
/// (vLLM exports counts and rates, not each request's progress): the running requests with
/// their prefill done and half the mean output left, the waiting ones whole, and arrivals over
/// the horizon at the measured request rate with the measured mean lengths (a fixed random
/// stream, the same for every candidate). Each candidate is simulated over the horizon at the
/// launch batch cap: a clock lock (free, and 0.30-0.95 of the highest clock by 0.05) at the
/// group's budget share, and a cap below the share (from the GPUs' lowest by 50 W) with a free
/// clock. The one with the fewest SLO violations, then the most tokens/J, is applied, and kept
/// until another is better by a margin (steady actuation). A guard answers the latency measured
/// now: a cap below the share goes back to it (and no lower cap is a candidate for a while), a
/// lock rises a step, a burst frees the clock at the share. Evaluation only: the twin needs the
/// node's model and GPU description, which `pals run` does not have.

#include <memory>

#include "pals/control/controller.hpp"
#include "pals/sim/simulator.hpp"

namespace pals::control {

struct TwinSettings {
    double horizon_s = 20.0;  ///< simulated ahead per candidate
    double smoothing = 0.3;   ///< EWMA weight of a new rate or length measurement
    /// The twin's arrivals come this much faster than measured (bursts the mean hides).
    double demand_margin = 1.15;
    /// A new lock replaces the one in force only with fewer violations, or this much more
    /// tokens/J at as few.
    double switch_margin = 0.02;
    /// After latency at risk, no cap below the share is a candidate for this long.
    double share_hold_s = 10.0;
};

/// `node` is the node as profiled (its `replicas` ignored: each group is twinned alone), `slo`
/// the targets the violations are counted against.
[[nodiscard]] std::unique_ptr<Policy> make_twin_policy(sim::NodeConfig node, sim::SloTargets slo,
                                                       TwinSettings settings = {});

}  // namespace pals::control
