#include "pals/control/pals_policy.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace pals::control {

namespace {

/// The alarms that put a group whose cap binds in the budget-bound regime: ITL p90 above 0.95
/// and TTFT p90 above 0.7 of their SLOs, or a queue of kQueueAlarmRequests or more that has not
/// shrunk for kQueuedPeriodsAlarm periods. (A queue of one or two that grows for a period is
/// normal at partial load; with the clock free a group always draws its cap, so such blips
/// would hold it budget-bound for good: the bands' own queue alarm is not used.)
constexpr ClockTrimmer::Bands kBudgetBoundBands{.itl_at_risk = 0.95, .ttft_at_risk = 0.7};
constexpr int kQueuedPeriodsAlarm = 3;
constexpr int kQueueAlarmRequests = 4;
/// A locked clock moves by at least this much unless latency is at risk.
constexpr double kClockDeadbandMhz = 60.0;
/// A group drawing at least this share of its cap is held by the cap.
constexpr double kCapBindingShare = 0.9;
/// Output tokens per request assumed before any request has finished.
constexpr double kDefaultOutputTokens = 200.0;
/// A time that has not come (a state not entered).
constexpr double kNever = std::numeric_limits<double>::infinity();

class PalsPolicy final : public Policy {
public:
    PalsPolicy(std::shared_ptr<const profile::PowerModel> model, PalsSettings settings)
        : m_model(std::move(model)), m_settings(std::move(settings)) {}

    [[nodiscard]] std::string_view name() const override { return "pals"; }

    std::vector<GroupDecision> decide(const Observation& o) override {
        if (m_state.size() != o.groups.size()) {
            m_state.assign(o.groups.size(), GroupState{});
            for (GroupState& st : m_state) {
                st.clock = ClockTrimmer(m_settings.clock_bands);
            }
        }
        // 1. Demand, model corrections and the cap the demand needs, per group.
        std::vector<double> demand(o.groups.size());
        std::vector<double> needed_w(o.groups.size());
        for (std::size_t i = 0; i < o.groups.size(); ++i) {
            update(o, o.groups[i], m_state[i]);
            demand[i] = planned_demand(o.groups[i], m_state[i]) / m_state[i].capacity_correction;
            needed_w[i] = needed_cap(o, demand[i]);
        }
        // 2. Budget shares, in W per GPU.
        const std::vector<double> share = split_budget(o, needed_w);
        // 3. Per group: the cap at its share, the launch batch cap, and the clock.
        // The node's budget binds only when the node draws close to it: a group that draws its
        // share while others leave watts unused needs a larger share, not a free clock.
        double node_power_w = 0.0;
        for (const GroupObservation& g : o.groups) {
            node_power_w += g.power_w;
        }
        const bool node_at_budget = node_power_w >= kCapBindingShare * o.budget_w;
        std::vector<GroupDecision> out;
        for (std::size_t i = 0; i < o.groups.size(); ++i) {
            out.push_back(decide_group(o, o.groups[i], m_state[i], demand[i], share[i], needed_w[i],
                                       node_at_budget));
        }
        return out;
    }

private:
    struct GroupState {
        ClockTrimmer clock;
        bool initialised = false;
        double demand_tok_s = 0.0;
        double itl_correction = 1.0;
        /// This period's served tokens/s over the model's saturated throughput at the clock
        /// and running batch observed, within [1, kMaxModelCorrection] (learn_capacity).
        double capacity_correction = 1.0;
        double share_w = 0.0;  ///< the share in force (deadband)
        /// The model's power per GPU at the lock in force (cap_at_lock_power), and the share
        /// and lock it was computed for (0: none yet).
        double lock_power_w = 0.0;
        double lock_power_share_w = 0.0;
        double lock_power_clock_mhz = 0.0;
        /// Since when the split has called for another share, without a break (kNever: not).
        double share_called_since_s = kNever;
        double reference_clock_mhz = 0.0;  ///< EWMA of the model's clock (0: unknown)
        double applied_clock_mhz = 0.0;    ///< the lock in force (0: free)
        double trimmed_clock_mhz = 0.0;    ///< the trim's target last period
        /// When the lock last changed (-inf: never).
        double changed_at_s = -std::numeric_limits<double>::infinity();
        /// Budget-bound until this time (the clock free); -inf: not budget-bound.
        double budget_bound_until_s = -std::numeric_limits<double>::infinity();
        std::string alarm;        ///< the alarm that made the group budget-bound
        double alarm_at_s = 0.0;  ///< ... and when it last rang
        int queued_periods = 0;   ///< consecutive periods with a queue that did not shrink
        /// When the trim last raised an alarm (-inf: never): the cap is trimmed only once
        /// calm_after_alarm_s have passed since.
        double last_alarm_s = -std::numeric_limits<double>::infinity();
        int step_tokens = 0;  ///< the per-step token budget in force (0: the launch value)
        /// When it last moved (-inf: never).
        double step_tokens_at_s = -std::numeric_limits<double>::infinity();
    };

    /// The per-step token budget (StepTokenBands), and why it moved, in `why` (empty: held).
    int step_tokens(const Observation& o, const GroupObservation& g, GroupState& s,
                    std::string& why) const {
        const StepTokenBands& b = m_settings.step_tokens;
        const int launch = g.max_step_tokens;
        if (launch <= 0 || b.min_tokens <= 0) {
            s.step_tokens = 0;
            return 0;
        }
        const int in_force = s.step_tokens > 0 ? s.step_tokens : launch;
        if (o.time_s - s.step_tokens_at_s < b.dwell_s) {
            return s.step_tokens;
        }
        const bool ttft_known = !std::isnan(g.ttft_p90_s);
        const bool tpot_risk =
            (!std::isnan(g.tpot_p90_s) && g.tpot_p90_s >= b.lower_tpot * o.slo_tpot_s) ||
            (!std::isnan(g.tpot_miss_share) && g.tpot_miss_share > 0.0) ||
            (!std::isnan(g.itl_p90_s) &&
             g.itl_p90_s > m_settings.clock_bands.itl_stall * o.slo_tpot_s);
        int next = in_force;
        if (ttft_known && g.ttft_p90_s >= b.raise_ttft * o.slo_ttft_s) {
            next = std::min(launch, 2 * in_force);
            if (next != in_force) {
                why = fmt::format("step tokens {} -> {}: TTFT p90 {:.2f} s", in_force, next,
                                  g.ttft_p90_s);
            }
        } else if (tpot_risk && (!ttft_known || g.ttft_p90_s < b.ttft_slack * o.slo_ttft_s)) {
            next = std::max(std::min(b.min_tokens, launch), in_force / 2);
            if (next != in_force) {
                why = fmt::format("step tokens {} -> {}: TPOT p90 {:.0f} ms, ITL p90 {:.0f} ms",
                                  in_force, next, g.tpot_p90_s * 1e3, g.itl_p90_s * 1e3);
            }
        }
        if (next != in_force) {
            s.step_tokens = next >= launch ? 0 : next;
            s.step_tokens_at_s = o.time_s;
        }
        return s.step_tokens;
    }

    void update(const Observation& o, const GroupObservation& g, GroupState& s) const {
        const double a = m_settings.smoothing;
        if (!s.initialised) {
            s.initialised = true;
            s.demand_tok_s = g.generation_tok_s;
        } else {
            s.demand_tok_s = (1.0 - a) * s.demand_tok_s + a * g.generation_tok_s;
        }
        // Compare with the model at the operating point observed: the batch actually running
        // and the clock the group ran at. A lock (or a load that leaves the cap undrawn) runs
        // the clock below what the cap in force allows: predicting at that cap would charge
        // the lock's slowdown to the model.
        s.capacity_correction = 1.0;
        const std::vector<int> profiled = m_model->batch_caps();
        const int batch = std::clamp(std::min(g.batch_cap, std::max(g.running, 1)),
                                     profiled.front(), profiled.back());
        Result<profile::Prediction> p = m_model->predict_at_clock(
            g.sm_clock_mhz, batch, o.cap_range.clamp(g.cap_w), m_settings.workload);
        if (!p.is_ok()) {
            return;
        }
        if (m_settings.learn_capacity && p->throughput_tok_s > 0.0) {
            s.capacity_correction =
                std::clamp(g.generation_tok_s / p->throughput_tok_s, 1.0, kMaxModelCorrection);
        }
        if (!std::isnan(g.itl_p90_s) && p->itl_p90_s > 0.0) {
            const double ratio =
                std::clamp(g.itl_p90_s / p->itl_p90_s, kMinModelCorrection, kMaxModelCorrection);
            s.itl_correction = (1.0 - a) * s.itl_correction + a * ratio;
        }
    }

    /// The batch the KV cache admits for the requests running (running / KV-cache use), within
    /// the profiled batch caps; the largest profiled one while the cache is less than
    /// kv_admits_from full (too little in use to tell, and far from binding).
    int kv_batch(const GroupObservation& g, const std::vector<int>& profiled) const {
        if (g.running <= 0 || g.kv_cache_usage < m_settings.kv_admits_from) {
            return profiled.back();
        }
        return std::clamp(static_cast<int>(g.running / g.kv_cache_usage), profiled.front(),
                          profiled.back());
    }

    double planned_demand(const GroupObservation& g, const GroupState& s) const {
        const double out_tokens =
            g.avg_output_tokens > 0.0 ? g.avg_output_tokens : kDefaultOutputTokens;
        const double backlog = g.waiting * out_tokens / m_settings.drain_horizon_s;
        return std::max(s.demand_tok_s, g.generation_tok_s) * m_settings.demand_margin + backlog;
    }

    /// The lowest cap per GPU at which the model meets `demand`, or the maximum when none does.
    double needed_cap(const Observation& o, double demand) const {
        profile::Query q;
        q.demand_tok_s = demand;
        const profile::QueryResult r = m_model->best_point(q, m_settings.workload);
        return r.feasible ? r.point.power_cap_w : o.cap_range.max_w;
    }

    /// Per group, W per GPU: the need of each (`needed_w`) if the needs fit the budget, raised
    /// to the even share; otherwise the needs scaled down together. A share moves only by more
    /// than the deadband, called for over share_settle_s, unless the budget moved or the share
    /// is at an end of the cap range (the loop still bounds the sum by the budget).
    std::vector<double> split_budget(const Observation& o, const std::vector<double>& needed_w) {
        const std::size_t n = o.groups.size();
        std::vector<double> share(n, o.cap_range.max_w);
        if (std::isfinite(o.budget_w)) {
            double need_total = 0.0;
            double gpus_total = 0.0;
            for (std::size_t i = 0; i < n; ++i) {
                need_total += std::max(o.cap_range.min_w, needed_w[i]) * o.groups[i].gpus;
                gpus_total += o.groups[i].gpus;
            }
            const double even = o.cap_range.clamp(o.budget_w / gpus_total);
            for (std::size_t i = 0; i < n; ++i) {
                const double need = std::max(o.cap_range.min_w, needed_w[i]);
                share[i] =
                    o.cap_range.clamp(need_total <= o.budget_w ? std::max(need, even)
                                                               : need * o.budget_w / need_total);
            }
        }
        const bool budget_moved = o.budget_w != m_budget_w;
        m_budget_w = o.budget_w;
        for (std::size_t i = 0; i < n; ++i) {
            GroupState& s = m_state[i];
            if (std::abs(share[i] - s.share_w) <= m_settings.share_deadband_w) {
                s.share_called_since_s = kNever;
            } else if (s.share_called_since_s == kNever) {
                s.share_called_since_s = o.time_s;
            }
            const bool settled = o.time_s - s.share_called_since_s >= m_settings.share_settle_s;
            if (s.share_w <= 0.0 || budget_moved || settled || share[i] == o.cap_range.max_w ||
                share[i] == o.cap_range.min_w) {
                s.share_w = share[i];
                s.share_called_since_s = kNever;
            }
            share[i] = s.share_w;
        }
        return share;
    }

    GroupDecision decide_group(const Observation& o, const GroupObservation& g, GroupState& s,
                               double demand, double share_w, double needed_w,
                               bool node_at_budget) const {
        // The model's most efficient point for the demand within the share: the clock it
        // predicts there seeds the lock.
        profile::Query q;
        q.demand_tok_s = demand;
        q.max_itl_s = m_settings.itl_target * o.slo_tpot_s / s.itl_correction;
        q.max_power_cap_w = share_w;
        profile::QueryResult r = m_model->best_point(q, m_settings.workload);
        if (!r.feasible && s.itl_correction > 1.0) {
            // The corrected ITL target is out of the model's reach, whose best effort is then
            // its highest-throughput point: the correction says the model is wrong here, not
            // that the highest clock is needed. Seed from the uncorrected target; feedback
            // raises the lock if latency is at risk.
            q.max_itl_s = m_settings.itl_target * o.slo_tpot_s;
            if (profile::QueryResult plain = m_model->best_point(q, m_settings.workload);
                plain.feasible) {
                r = plain;
            }
        }
        const double model_clock_mhz = r.point.sm_clock_mhz;
        s.reference_clock_mhz = s.reference_clock_mhz > 0.0 && model_clock_mhz > 0.0
                                    ? (1.0 - m_settings.smoothing) * s.reference_clock_mhz +
                                          m_settings.smoothing * model_clock_mhz
                                    : model_clock_mhz;

        GroupDecision d;
        d.cap_w = share_w;
        d.batch_cap = g.max_batch_cap;
        std::string tokens_why;
        d.step_tokens = step_tokens(o, g, s, tokens_why);
        const std::string tokens_text =
            d.step_tokens > 0 || !tokens_why.empty()
                ? fmt::format("; {}", tokens_why.empty()
                                          ? fmt::format("step tokens {}", d.step_tokens)
                                          : tokens_why)
                : std::string();
        const double corr = s.capacity_correction;
        // Named once it shows at two decimals; below, the two demands differ by < 0.5 %.
        const std::string demand_text =
            corr >= 1.005 ? fmt::format(
                                "demand {:.0f} tok/s ({:.0f} planned / {:.2f}: the group "
                                "served {:.2f}x the model's throughput at its clock and batch)",
                                demand, demand * corr, corr, corr)
                          : fmt::format("demand {:.0f} tok/s", demand);

        // Budget-bound: the group draws its cap, the cap (not a lock) sets its pace, and
        // latency is at risk. Only a budget below the maximum cap can bind.
        const bool lock_sets_pace = s.applied_clock_mhz > 0.0 && g.sm_clock_mhz > 0.0 &&
                                    g.sm_clock_mhz >= s.applied_clock_mhz - kClockDeadbandMhz / 2;
        const double cap_in_force = o.cap_range.clamp(g.cap_w);
        const bool cap_drawn = g.gpus > 0 && !lock_sets_pace && node_at_budget &&
                               g.power_w / g.gpus >= kCapBindingShare * cap_in_force;
        const LatencyRisk risk = latency_risk(o, g, kBudgetBoundBands);
        s.queued_periods = g.waiting >= kQueueAlarmRequests && g.waiting >= g.waiting_previous
                               ? s.queued_periods + 1
                               : 0;
        const bool queue_stuck = s.queued_periods >= kQueuedPeriodsAlarm;
        // The budget binds only where the model says the demand needs about the whole share: a
        // group whose cap is drawn while the model says less would do is held by its lock or
        // its load (a high lock after alarms draws the share), and freeing its clock for the
        // hold would spend the share on nothing.
        const bool needs_share = needed_w >= m_settings.budget_bound_need * share_w;
        if (share_w < o.cap_range.max_w && cap_drawn && needs_share &&
            (risk.itl || risk.ttft || queue_stuck)) {
            s.budget_bound_until_s = o.time_s + m_settings.budget_bound_hold_s;
            s.alarm_at_s = o.time_s;
            s.alarm = risk.ttft  ? fmt::format("TTFT p90 {:.2f} s", g.ttft_p90_s)
                      : risk.itl ? fmt::format("ITL p90 {:.0f} ms", g.itl_p90_s * 1e3)
                                 : fmt::format("a queue of {} for {} periods", g.waiting,
                                               s.queued_periods);
        }
        if (o.time_s < s.budget_bound_until_s && share_w < o.cap_range.max_w) {
            d.locked_clock_mhz = 0.0;
            s.applied_clock_mhz = 0.0;
            s.clock.reset();
            const double expected = expected_violation_share(g.ttft_miss_share, g.tpot_miss_share);
            d.reason = fmt::format(
                "budget-bound: cap {:.0f} W/GPU (share) drawn with {} at {:.0f} s; clock free "
                "until {:.0f} s, batch {} (launch); {}; expected violations "
                "{} (the latency window's){}",
                d.cap_w, s.alarm, s.alarm_at_s, s.budget_bound_until_s, d.batch_cap, demand_text,
                std::isnan(expected) ? std::string("n/a")
                                     : fmt::format("{:.1f} %", 100.0 * expected),
                tokens_text);
            return d;
        }
        // Near the capacity the share allows, a lock below the model's clock builds a queue
        // faster than feedback can answer (waiting grows as 1 / (1 - utilisation)): the trim
        // may go below the model's clock only in proportion to the headroom.
        double load_floor_mhz = 0.0;
        double utilisation = 0.0;  // demand / what the share serves at saturation (model)
        const int admitted_batch = kv_batch(g, m_model->batch_caps());
        if (Result<profile::Prediction> full =
                m_model->predict(share_w, admitted_batch, m_settings.workload);
            full.is_ok() && full->throughput_tok_s > 0.0) {
            utilisation = demand / m_settings.demand_margin / full->throughput_tok_s;
            const double w =
                std::clamp((utilisation - m_settings.trim_free_below) /
                               (m_settings.trim_none_above - m_settings.trim_free_below),
                           0.0, 1.0);
            const double lowest = share_w < o.cap_range.max_w ? m_settings.lowest_model_share_budget
                                                              : m_settings.lowest_model_share;
            load_floor_mhz = std::max(lowest, w) * s.reference_clock_mhz;
        }
        s.clock.set_itl_needs_tpot(utilisation < m_settings.itl_far_below
                                       ? m_settings.itl_needs_tpot_far
                                       : m_settings.clock_bands.itl_needs_tpot);
        std::string why;
        const double trimmed =
            s.clock.update(o, g, why, s.reference_clock_mhz, load_floor_mhz, s.applied_clock_mhz);
        // Hysteresis: a lock moves at once to answer an alarm (never down: the raise starts
        // from the lock in force), up by at least kClockDeadbandMhz, and down by at least
        // clock_down_deadband_mhz, or by half kClockDeadbandMhz once the trim has settled (its
        // target did not move this period: a floor or the lowest lock), so a steady load does
        // not rewrite the lock each period and a settled trim still lands; and, but for an
        // alarm, at most once per clock_dwell_s.
        double& applied = s.applied_clock_mhz;
        const double before_mhz = applied;
        const bool dwelt = o.time_s - s.changed_at_s >= m_settings.clock_dwell_s;
        const bool settled = std::abs(trimmed - s.trimmed_clock_mhz) < 1.0;
        s.trimmed_clock_mhz = trimmed;
        const bool moves = trimmed > applied
                               ? trimmed - applied >= kClockDeadbandMhz
                               : applied - trimmed >= m_settings.clock_down_deadband_mhz ||
                                     (settled && applied - trimmed >= 0.5 * kClockDeadbandMhz);
        const bool far_below_load = applied > 0.0 && trimmed > applied &&
                                    load_floor_mhz >= applied + kClockDeadbandMhz &&
                                    load_floor_mhz >= m_settings.load_floor_raise * applied;
        if (far_below_load) {
            applied = trimmed;
            why += " (at once: the load nears what the lock serves)";
        } else if (applied > 0.0 && s.clock.raised()) {
            applied = std::max(applied, trimmed);
        } else if (applied <= 0.0 || (moves && dwelt)) {
            applied = trimmed;
        } else if (moves) {
            why += fmt::format(" (holding {:.0f} MHz: changed {:.0f} s ago)", applied,
                               o.time_s - s.changed_at_s);
        } else {
            why += trimmed > applied
                       ? fmt::format(" (holding {:.0f} MHz: within {:.0f} MHz)", applied,
                                     kClockDeadbandMhz)
                       : fmt::format(" (holding {:.0f} MHz: down by less than {:.0f} MHz)", applied,
                                     m_settings.clock_down_deadband_mhz);
        }
        if (applied != before_mhz) {
            s.changed_at_s = o.time_s;
        }
        d.locked_clock_mhz = applied;
        const std::string share_why = std::isfinite(o.budget_w) ? "share" : "no budget";
        std::string cap_why = share_why;
        if (m_settings.cap_at_lock_power && g.gpus > 0) {
            // Recomputed only when the lock or the share moves: no changes of its own.
            if (s.lock_power_clock_mhz != applied || s.lock_power_share_w != share_w) {
                Result<profile::Prediction> at_lock = m_model->predict_at_clock(
                    applied, admitted_batch, share_w, m_settings.workload);
                s.lock_power_w =
                    at_lock.is_ok() ? o.cap_range.clamp(at_lock->power_w / g.gpus) : share_w;
                s.lock_power_clock_mhz = applied;
                s.lock_power_share_w = share_w;
            }
            if (s.clock.raised()) {
                s.last_alarm_s = o.time_s;
            }
            const bool calm = o.time_s - s.last_alarm_s >= m_settings.calm_after_alarm_s;
            const double factor = calm ? m_settings.calm_cap_share : 1.0;
            if (factor * s.lock_power_w < share_w) {
                d.cap_w = std::max(o.cap_range.min_w, factor * s.lock_power_w);
                cap_why = fmt::format(
                    "{}the model's draw at saturation at {:.0f} MHz{}; {} {:.0f} W",
                    factor < 1.0 ? fmt::format("{:.2f} x ", factor) : "", applied,
                    calm || m_settings.calm_cap_share >= 1.0
                        ? ""
                        : fmt::format(", an alarm {:.0f} s ago", o.time_s - s.last_alarm_s),
                    share_why, share_w);
            }
        }
        d.reason = fmt::format(
            "partial load: {} ({:.0f} % of what the share "
            "serves); cap {:.0f} W/GPU ({}), batch {} (launch); {}{}{}",
            demand_text, 100.0 * utilisation, d.cap_w, cap_why, d.batch_cap, why,
            s.clock.floor_mhz() > 0.0
                ? fmt::format("; learned floor {:.0f} MHz", s.clock.floor_mhz())
                : "",
            tokens_text);
        return d;
    }

    std::shared_ptr<const profile::PowerModel> m_model;
    PalsSettings m_settings;
    std::vector<GroupState> m_state;
    double m_budget_w = 0.0;  ///< the budget the shares were last split for
};

}  // namespace

std::unique_ptr<Policy> make_pals_policy(std::shared_ptr<const profile::PowerModel> model,
                                         PalsSettings settings) {
    return std::make_unique<PalsPolicy>(std::move(model), std::move(settings));
}

}  // namespace pals::control
