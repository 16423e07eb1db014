#pragma once
/// @file pals_policy.hpp
/// @brief PALS's policy. Each period, per GPU group:
/// - the **share** of the budget (the maximum without one): each group gets the cap per GPU the
///   fitted model says its demand needs, scaled down together when the needs exceed the
///   budget, and the even share when they do not (groups that need little leave watts to the
///   others); a share moves only by more than a deadband, held for a few seconds;
/// - the **cap**, at partial load, is the lower of the share and the power the model says the
///   group draws at saturation at the lock in force: a step that draws more than that (a long
///   prefill chunk) runs below the lock, as the firmware slows it to the cap; the others run at
///   the lock. A budget-bound group (below) is capped at its share;
/// - the **SM clock** is locked (partial load, the usual case): seeded at the clock the model
///   predicts at its most efficient point for the demand within the share, and trimmed by
///   latency feedback (ClockTrimmer) with a learned floor: a latency alarm marks the lock that
///   let it happen, and the lock stays above it for a while (the margin feedback learns at the
///   load offered), and an alarm raises the lock again only once the latency window has seen
///   the last raise; the lock never goes below 3/4 of the model's clock (4/5 under a budget
///   that holds the share below the highest cap), and near the capacity the share allows it
///   stays closer to it (a load floor); one far below it rises at once; far from that
///   capacity, a long ITL tail is an alarm only with TPOT p90 closer to its SLO;
/// - **budget-bound** (the group draws its cap, the cap and not the lock sets its pace, the
///   model says the demand needs about the whole share, and latency is at risk): the goal becomes
///   fewest QoS violations within the budget, so the clock is freed (the cap alone governs it:
///   every watt of the share goes to latency) and held free for a while after the last such alarm;
/// - the **per-step token budget** (engines that have one) is lowered where TPOT is at risk and
///   TTFT has slack, and raised where TTFT is at risk (StepTokenBands);
/// - the **batch cap** stays at the launch value: at partial load a lower one only queues
///   work, and the profile's batch caps are measured at saturation.
/// Demand = smoothed served tokens/s x a margin + the backlog drained over a horizon; the
/// model's ITL is corrected by an EWMA of measured / predicted, compared at the operating point
/// observed (the batch running, the clock the group ran at). Its throughput is not: served
/// tokens/s measure the load offered, not what the node could serve, except when the batch cap
/// binds, which `pals` does not make it do.

#include <memory>
#include <string>

#include "pals/control/controller.hpp"
#include "pals/control/policies.hpp"
#include "pals/profile/power_model.hpp"

namespace pals::control {

/// The per-step token budget's feedback (engines that have one: ServingEngine::set_step_tokens).
/// The budget sets a priority between the running requests' next tokens and the prompts
/// waiting: a step carries at most that many tokens, so a lower budget splits long prompts into
/// smaller chunks, and the decode steps wait less behind them while first tokens come later.
/// TPOT at risk (TPOT p90 at `lower_tpot` of its SLO or more, a request above the TPOT SLO in
/// the latency window, or a stall: ITL p90 above the clock bands' itl_stall x the TPOT SLO) with
/// TTFT p90 below `ttft_slack` of its SLO halves the budget (not below `min_tokens`); TTFT p90
/// at `raise_ttft` of its SLO or more doubles it (up to the launch value). It moves at most once
/// per `dwell_s`, so the latency window sees the last move.
struct StepTokenBands {
    int min_tokens = 2048;  ///< 0: the launch value, always
    double lower_tpot = 0.9;
    double ttft_slack = 0.7;
    double raise_ttft = 0.8;
    double dwell_s = 5.0;
};

struct PalsSettings {
    std::string workload;           ///< model workload mix ("" = the first)
    double demand_margin = 1.1;     ///< plan for this much more than the measured demand
    double drain_horizon_s = 10.0;  ///< drain a backlog within this time
    double itl_target = 0.85;       ///< plan for ITL p90 <= this x the TPOT SLO
    double smoothing = 0.3;         ///< EWMA weight of a new measurement
    /// The model's capacity learned from the period: where a group served more output
    /// tokens/s than the model's saturated throughput at the clock and running batch observed
    /// (prefills interleave less at partial load than in the saturated profile), the demand is
    /// divided by that ratio (at most kMaxModelCorrection) before the model is asked what
    /// serves it. Never below 1: serving less than the model's figure is the load offered,
    /// not the capacity. false: the demand as measured.
    bool learn_capacity = true;
    /// The clock trim: ITL may come closer to its SLO than clock-only lets it (the model seeds
    /// the lock, so feedback only trims), and ITL p90 is an alarm only with TPOT p90 at 80 % of
    /// its SLO or more (the cap at the lock's power slows the steps that carry a prefill chunk,
    /// which lengthens ITL's tail far more than a request's mean gap); a queue raises the clock
    /// from 4 requests on (one waiting a step is normal at partial load); the learned floor
    /// sits 5 % above a lock that let ITL or TTFT reach its at-risk band and decays by half in
    /// ~2.3 minutes; a queue of 8 that grew in a period is a burst and sends the lock to the
    /// highest clock at once; a KV cache 80 % full raises the clock as a queue does (admission
    /// waits on completions), 90 % full is a burst; within 5 s of a lock change (the
    /// controller's latency window) an ITL or TTFT alarm holds the lock instead of raising it
    /// again, since the window still holds the latency of the lock before, unless ITL p90 is
    /// above 2.5 x the TPOT SLO (a stall: long prefill chunks holding every running request).
    ClockTrimmer::Bands clock_bands{.itl_comfortable = 0.85,
                                    .itl_at_risk = 0.97,
                                    .itl_needs_tpot = 0.8,
                                    .queue_alarm = 4,
                                    .floor_margin = 0.05,
                                    .floor_decay = 0.995,
                                    .burst_queue = 8,
                                    .kv_at_risk = 0.8,
                                    .kv_full = 0.9,
                                    .raise_settle_s = 5.0,
                                    .itl_stall = 2.5};
    /// Budget-bound: the clock stays free this long after the last alarm with the cap drawn
    /// (a budget that bound once binds again at the next peak of the same load: a short hold
    /// trims between peaks and meets the next one late).
    double budget_bound_hold_s = 300.0;
    /// Budget-bound only where the cap the model says the demand needs is at least this share
    /// of the budget share (otherwise the share is drawn because of the lock, not the load).
    double budget_bound_need = 0.9;
    /// The trim may take the lock below the model's clock in proportion to the headroom: freely
    /// while the demand is below `trim_free_below` of the capacity the share allows (the
    /// model's saturated throughput at the share and at the batch the KV cache admits for the
    /// requests running: running / KV-cache use, once the cache is `kv_admits_from` full), not
    /// at all above `trim_none_above`, linearly in between.
    double trim_free_below = 0.5;
    double trim_none_above = 0.8;
    /// ... and never below this share of the model's clock, at any load: a lock trimmed far
    /// below it in a lull meets the next rise of the load late, and the climb back down from
    /// the highest clock after the alarm costs more than the lull saved.
    double lowest_model_share = 0.75;
    /// ... and this share under a budget that holds the group's share below the GPUs' highest
    /// cap: there a lock raised after an alarm meets the share's cap sooner, so the climb that
    /// drains the backlog of a lull is slower.
    double lowest_model_share_budget = 0.8;
    /// ITL p90 at risk is an alarm only with TPOT p90 at this share of its SLO (instead of
    /// clock_bands.itl_needs_tpot) while the demand is below `itl_far_below` of the capacity
    /// the share allows: far from capacity a long ITL gap is a prefill chunk passing through a
    /// small batch, not a queue forming, and each answer (a raised lock, the cap back at the
    /// model's draw for calm_after_alarm_s) costs energy the requests' TPOT did not need.
    double itl_needs_tpot_far = 0.9;
    double itl_far_below = 0.35;
    double kv_admits_from = 0.3;
    double share_deadband_w = 10.0;  ///< a budget share moves only by more than this
    /// ... and only once the split has called for it this long without a break, so a one-period
    /// spike of one group's demand does not move every group's cap there and back. A new
    /// budget, or a share at either end of the cap range, moves the shares at once.
    double share_settle_s = 5.0;
    /// The cap at partial load is the lower of the share and the power the model predicts for
    /// the group at saturation at the lock in force, with the batch the KV cache admits
    /// (recomputed when the lock or the share moves, so it adds no changes of its own). Under
    /// a cap the firmware picks each step's clock: a step that draws more than a saturated one
    /// at the lock runs below it. false: the share.
    bool cap_at_lock_power = true;
    /// ... times this while the group is calm: no alarm of the trim (latency, queue, burst,
    /// KV cache; one that the settle time holds counts too) for calm_after_alarm_s. The cap
    /// then clips the steps that draw most (prefill chunks, bursts), which the firmware runs
    /// below the lock; an alarm puts the cap back at the model's draw at once. 1: no trim.
    double calm_cap_share = 0.9;
    double calm_after_alarm_s = 60.0;
    /// A lock at or below the load floor / this rises to the trim's target at once, without
    /// waiting out clock_dwell_s: the load nears what the lock serves.
    double load_floor_raise = 1.5;
    /// A lock steps down only by at least this much, or once the trim has settled (a floor
    /// or the lowest lock), so a steady load changes it a few times a minute; it steps up by
    /// 60 MHz or more, and at once on an alarm.
    double clock_down_deadband_mhz = 150.0;
    /// But for an alarm, a lock changes at most once in this many seconds.
    double clock_dwell_s = 10.0;
    StepTokenBands step_tokens;
};

[[nodiscard]] std::unique_ptr<Policy> make_pals_policy(
    std::shared_ptr<const profile::PowerModel> model, PalsSettings settings = {});

}  // namespace pals::control
