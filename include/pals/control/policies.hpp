#pragma once
/// @file policies.hpp
/// @brief PALS's policy and the baselines it is compared with, all behind control::Policy so
/// they run in the same loop (DESIGN.md 1.5, issue "baselines in the same code path").
///
/// The policies and what they set are listed once in policy_registry.hpp.

#include <memory>
#include <string>
#include <vector>

#include "pals/control/controller.hpp"

namespace pals::control {

/// Feedback on the locked SM clock (VoltanaLLM's idea): lower it while latency has slack and
/// the queue does not grow, raise it at once when latency nears its SLO. The clock is a share of
/// a reference: the highest clock for clock-only; for PALS, the clock the model predicts at the
/// point it chose, so feedback learns the margin of that prediction at the load offered.
class ClockTrimmer {
public:
    /// Latency bands as shares of the SLOs: the clock steps down while ITL p90 and TTFT p90 are
    /// below their comfortable shares and the queue does not grow, and up at once when either is
    /// above its at-risk share or the queue grows.
    struct Bands {
        double itl_comfortable = 0.7;
        double itl_at_risk = 0.9;
        double ttft_comfortable = 0.5;
        double ttft_at_risk = 0.9;
        /// ITL p90 above its at-risk share counts only while TPOT p90 is at least this share of
        /// the TPOT SLO (0: always). The SLO is on TPOT, a request's mean gap; ITL p90 also
        /// holds the single long gaps of decode steps that share a step with a long prefill
        /// chunk, which leave TPOT far inside its SLO. No TPOT p90 yet (no request finished in
        /// the window): ITL p90 alone.
        double itl_needs_tpot = 0.0;
        /// A queue of at least this many requests that grows raises the clock too.
        int queue_alarm = 1;
        /// A learned floor (0: none): when ITL or TTFT is at risk, the lock that let it happen
        /// x (1 + floor_margin) becomes a floor the step-down does not pass; it decays by the
        /// factor floor_decay per period, so the lock probes lower again after a while. This is
        /// the margin feedback learns at the load offered: bursts the p90s see only late make
        /// the lock stay above the level that let them through.
        double floor_margin = 0.0;
        double floor_decay = 0.995;
        /// A burst (0: none): a queue of at least this many requests that grew in the period
        /// sends the clock to the highest at once, since a burst arrives faster than the
        /// stepwise raise follows; the trim then steps down from there.
        int burst_queue = 0;
        /// KV-cache pressure (0: none): with at least this share of the KV cache in use, new
        /// requests are admitted only as running ones finish, so a slower clock queues them.
        /// Long prompts fill the cache before the queue or the latency percentiles show it:
        /// the clock goes up as for a growing queue, and does not step down.
        double kv_at_risk = 0.0;
        /// A full KV cache (0: none): at least this share in use is a burst (the highest clock
        /// at once): admission has all but stopped, and each period at a low clock adds to the
        /// queue the next requests meet.
        double kv_full = 0.0;
        /// Seconds after the lock in force last changed during which an ITL or TTFT alarm
        /// holds it instead of raising it again (0: every alarm raises): the latency window
        /// has not yet seen the new lock, so a raise would answer the old one's latency and
        /// overshoot (and the learned floor would mark a lock that let nothing happen). A
        /// queue, a burst or KV-cache pressure still raise it at once.
        double raise_settle_s = 0.0;
        /// A stall (0: none): ITL p90 above this share of the TPOT SLO raises the lock even
        /// within raise_settle_s of its last change. So long a tail is steps that carried long
        /// prefill chunks at a low clock (or under a cap that clips them), each holding every
        /// running request's next token: the window may still hold the lock before's latency,
        /// but waiting it out costs the TPOT of every request running, which a raise too many
        /// costs only energy. Not gated by itl_needs_tpot: TPOT p90 sees the requests that
        /// finished, not the ones the stall is holding.
        double itl_stall = 0.0;
    };
    ClockTrimmer() = default;
    explicit ClockTrimmer(Bands bands) : m_bands(bands) {}
    /// The clock (MHz) to lock for this group now, and why. `reference_mhz` <= 0: the highest.
    /// `floor_mhz` > 0: the clock does not step below it (a floor the caller derives, e.g.
    /// from the load; the learned floor applies too). `in_force_mhz` > 0: the lock in force,
    /// when the caller holds one other than the last returned (hysteresis): a raise starts
    /// from it, and it is the lock that let an alarm happen.
    double update(const Observation& o, const GroupObservation& g, std::string& why,
                  double reference_mhz = 0.0, double floor_mhz = 0.0, double in_force_mhz = 0.0);
    /// Whether the last update() found latency at risk (and raised the clock).
    [[nodiscard]] bool raised() const { return m_raised; }
    /// The learned floor in force, MHz (0: none).
    [[nodiscard]] double floor_mhz() const { return m_floor_mhz; }
    /// Starts over from the highest clock (after a period the lock was not in force).
    void reset() { m_share = 1.0; }
    /// Bands::itl_needs_tpot from the next update() on: a caller that knows how far the load
    /// is from capacity gates ITL p90 by it.
    void set_itl_needs_tpot(double share) { m_bands.itl_needs_tpot = share; }

private:
    Bands m_bands;
    double m_share = 1.0;      ///< of the reference
    double m_floor_mhz = 0.0;  ///< the learned floor (Bands::floor_margin), MHz
    bool m_raised = false;
    double m_in_force_mhz = 0.0;      ///< the lock in force at the last update()
    double m_in_force_since_s = 0.0;  ///< since when it has been in force (the update before)
};

/// What of a group's latency is at risk by `bands` (their at-risk shares and queue alarm):
/// ITL p90 or TTFT p90 above its share of the SLO, a queue of at least queue_alarm requests
/// that grows, or the KV cache at least kv_at_risk full; and whether it is a burst (a queue
/// of burst_queue that grows) or the cache kv_full full, or a stall (ITL p90 above itl_stall
/// of the TPOT SLO).
struct LatencyRisk {
    bool itl = false;
    bool ttft = false;
    bool queue = false;
    bool burst = false;    ///< a queue of at least burst_queue that grows (Bands::burst_queue)
    bool kv = false;       ///< the KV cache at least kv_at_risk full (Bands::kv_at_risk)
    bool kv_full = false;  ///< the KV cache at least kv_full full (Bands::kv_full)
    bool stall = false;    ///< ITL p90 above itl_stall of the TPOT SLO (Bands::itl_stall)
    [[nodiscard]] bool any() const {
        return itl || ttft || queue || burst || kv || kv_full || stall;
    }
};
[[nodiscard]] LatencyRisk latency_risk(const Observation& o, const GroupObservation& g,
                                       const ClockTrimmer::Bands& bands);

/// Bounds of the online corrections a model-driven policy learns (measured / predicted): the
/// model is never trusted less than this.
inline constexpr double kMinModelCorrection = 0.5;
inline constexpr double kMaxModelCorrection = 2.0;

/// The per-GPU cap a budget allows when shared evenly: budget / total GPUs, in the cap range.
[[nodiscard]] double even_share_cap_w(const Observation& o);

[[nodiscard]] std::unique_ptr<Policy> make_default_policy();
[[nodiscard]] std::unique_ptr<Policy> make_cap_only_policy();
[[nodiscard]] std::unique_ptr<Policy> make_batch_only_policy();
[[nodiscard]] std::unique_ptr<Policy> make_clock_only_policy();
/// Holds every group at (cap_w, batch_cap), within the budget, with the SM clock locked at
/// `locked_clock_mhz` when > 0 (free otherwise).
[[nodiscard]] std::unique_ptr<Policy> make_fixed_policy(std::string name, double cap_w,
                                                        int batch_cap,
                                                        double locked_clock_mhz = 0.0,
                                                        int step_tokens = 0);

}  // namespace pals::control
