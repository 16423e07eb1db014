#include "pals/control/twin_policy.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "pals/control/policies.hpp"

namespace pals::control {

namespace {

/// Mean output tokens per request before any has finished.
constexpr double kDefaultOutputTokens = 200.0;
/// Candidate locks at the share: 0.30 .. 0.95 of the highest clock by 0.05 (the oracles'
/// grid), and free; and caps below the share with a free clock, from the GPUs' lowest by
/// kCapStepW.
constexpr int kFirstLockTwentieth = 6;
constexpr int kLastLockTwentieth = 19;
constexpr double kCapStepW = 50.0;
/// The guard: latency above 0.95 (ITL) or 0.9 (TTFT) of its SLO, a growing queue of 4 or a KV
/// cache 80 % full takes a cap below the share back to it, or raises the lock by kRaiseStep at
/// least; a growing queue of 8 or a KV cache 90 % full (a burst) frees the clock at the share.
constexpr ClockTrimmer::Bands kGuardBands{.itl_at_risk = 0.95,
                                          .ttft_at_risk = 0.9,
                                          .queue_alarm = 4,
                                          .burst_queue = 8,
                                          .kv_at_risk = 0.8,
                                          .kv_full = 0.9};
constexpr double kRaiseStep = 1.15;
/// The twin's arrivals come from this fixed stream (common random numbers across candidates).
constexpr std::uint64_t kTwinSeed = 0x7A1E;

class TwinPolicy final : public Policy {
public:
    TwinPolicy(sim::NodeConfig node, sim::SloTargets slo, TwinSettings settings)
        : m_node(std::move(node)), m_slo(slo), m_settings(settings) {
        m_node.replicas = 1;
        m_node.power_cap_w = 0.0;
        m_node.locked_clock_mhz = 0.0;
    }

    [[nodiscard]] std::string_view name() const override { return "pals-mpc"; }

    std::vector<GroupDecision> decide(const Observation& o) override {
        m_state.resize(o.groups.size());
        const double share = even_share_cap_w(o);
        std::vector<GroupDecision> out;
        for (std::size_t i = 0; i < o.groups.size(); ++i) {
            out.push_back(decide_group(o, o.groups[i], m_state[i], share));
        }
        return out;
    }

private:
    struct GroupState {
        bool initialised = false;
        double rate_rps = 0.0;
        double input_tokens = 0.0;
        double locked_mhz = -1.0;  ///< the lock in force (0: free; < 0: none chosen yet)
        double cap_w = 0.0;        ///< the cap in force (0: none chosen yet)
        /// Until then no cap below the share is a candidate (set by the guard).
        double share_until_s = -std::numeric_limits<double>::infinity();
        /// The twin's ITL / TTFT p90 at the lock applied last period (0: none yet), and the
        /// learned ratio of the measured p90 to it: the twin's targets are the SLOs over it.
        double predicted_itl_s = 0.0;
        double predicted_ttft_s = 0.0;
        double itl_correction = 1.0;
        double ttft_correction = 1.0;
    };

    struct Outcome {
        double cap_w = 0.0;
        double clock_mhz = 0.0;
        std::uint64_t violations = 0;
        double tokens_per_joule = 0.0;
        double itl_p90_s = 0.0;
        double ttft_p90_s = 0.0;
    };

    GroupDecision decide_group(const Observation& o, const GroupObservation& g, GroupState& s,
                               double share_w) {
        const double out_tokens =
            g.avg_output_tokens > 0.0 ? g.avg_output_tokens : kDefaultOutputTokens;
        const double rate = g.generation_tok_s / out_tokens;
        const double input = rate > 0.0 ? g.prompt_tok_s / rate : 0.0;
        const double a = m_settings.smoothing;
        if (!s.initialised) {
            s.initialised = true;
            s.rate_rps = rate;
            s.input_tokens = input;
        } else {
            s.rate_rps = (1.0 - a) * s.rate_rps + a * rate;
            s.input_tokens = (1.0 - a) * s.input_tokens + a * input;
        }
        // Feedback: how far the measured latency is from what the twin predicted for the lock
        // in force (the twin's error at this load, on this GPU).
        const auto learn = [a](double measured, double predicted, double& correction) {
            if (!std::isnan(measured) && measured > 0.0 && predicted > 0.0) {
                correction =
                    (1.0 - a) * correction +
                    a * std::clamp(measured / predicted, kMinModelCorrection, kMaxModelCorrection);
            }
        };
        learn(g.itl_p90_s, s.predicted_itl_s, s.itl_correction);
        learn(g.ttft_p90_s, s.predicted_ttft_s, s.ttft_correction);
        sim::SloTargets targets = m_slo;
        targets.tpot_s /= s.itl_correction;
        targets.ttft_s /= s.ttft_correction;
        GroupDecision d;
        d.batch_cap = g.max_batch_cap;
        const std::vector<workload::Request> requests = twin_requests(g, s, out_tokens);
        if (requests.empty()) {  // nothing to serve or expect: the setting in force
            s.locked_mhz = s.locked_mhz < 0.0 ? 0.0 : s.locked_mhz;
            s.cap_w = s.cap_w > 0.0 ? std::min(s.cap_w, share_w) : share_w;
            d.cap_w = s.cap_w;
            d.locked_clock_mhz = s.locked_mhz;
            d.reason = "twin: idle, holding";
            return d;
        }
        // Latency at risk now: no cap below the share for a while (the guard below).
        const LatencyRisk risk = latency_risk(o, g, kGuardBands);
        if (risk.any()) {
            s.share_until_s = o.time_s + m_settings.share_hold_s;
        }
        // One twin built and checked per decision; each candidate runs on a copy of it.
        auto base = sim::Simulator::create(m_node, requests, m_slo);
        std::vector<std::pair<double, double>> candidates;  // (cap, clock; 0: free)
        for (int k = kFirstLockTwentieth; k <= kLastLockTwentieth + 1; ++k) {
            // k = kLastLockTwentieth + 1 stands for a free clock.
            candidates.emplace_back(
                share_w, k > kLastLockTwentieth ? 0.0 : std::round(0.05 * k * o.sm_clock_max_mhz));
        }
        if (o.time_s >= s.share_until_s) {
            for (double cap = o.cap_range.min_w; cap <= share_w - kCapStepW; cap += kCapStepW) {
                candidates.emplace_back(cap, 0.0);
            }
        }
        std::vector<Outcome> outcomes;
        for (const auto& [cap, clock] : candidates) {
            outcomes.push_back(base.is_ok() ? simulate(*base, cap, g.max_batch_cap, clock, targets)
                                            : Outcome{cap, clock, requests.size()});
        }
        const Outcome* best = nullptr;
        for (const Outcome& c : outcomes) {
            if (best == nullptr || c.violations < best->violations ||
                (c.violations == best->violations && c.tokens_per_joule > best->tokens_per_joule)) {
                best = &c;
            }
        }
        // Keep the setting in force unless the best candidate is clearly better.
        const Outcome* current = nullptr;
        for (const Outcome& c : outcomes) {
            current = c.cap_w == s.cap_w && c.clock_mhz == s.locked_mhz ? &c : current;
        }
        if (current != nullptr && current->violations <= best->violations &&
            current->tokens_per_joule * (1.0 + m_settings.switch_margin) >=
                best->tokens_per_joule) {
            best = current;
        }
        // Guard: when the measured latency is at risk now, never lower the clock or a cap
        // below the share, and raise either by a step at least (the twin's view of the queue's
        // age and the length tail is coarse); a burst frees the clock at the share.
        double cap = best->cap_w;
        double clock = best->clock_mhz;
        std::string guard;
        if (risk.burst || risk.kv_full) {
            cap = share_w;
            clock = 0.0;
            guard = "; burst: clock free at the share";
        } else if (risk.any() && s.cap_w > 0.0 && s.cap_w < share_w) {
            cap = share_w;
            clock = s.locked_mhz;
            guard = "; latency at risk: cap back to the share";
        } else if (risk.any() && s.locked_mhz > 0.0 &&
                   (clock == 0.0 || clock < s.locked_mhz * kRaiseStep)) {
            const double raised = s.locked_mhz * kRaiseStep;
            cap = share_w;
            clock = raised >= o.sm_clock_max_mhz ? 0.0 : std::round(raised);
            guard = "; latency at risk: raised";
        }
        s.cap_w = cap;
        s.locked_mhz = clock;
        s.predicted_itl_s = best->itl_p90_s;
        s.predicted_ttft_s = best->ttft_p90_s;
        d.cap_w = cap;
        d.locked_clock_mhz = clock;
        d.reason =
            fmt::format(
                "twin: {:.2f} req/s, {:.0f} in / {:.0f} out tokens, {} running, {} waiting; {} "
                "over "
                "{:.0f} s: {} violations, {:.3f} tok/J (twin latency x{:.2f} ITL, x{:.2f} TTFT)",
                s.rate_rps, s.input_tokens, out_tokens, g.running, g.waiting,
                best->cap_w < share_w   ? fmt::format("cap {:.0f} W, clock free", best->cap_w)
                : best->clock_mhz > 0.0 ? fmt::format("clock {:.0f} MHz", best->clock_mhz)
                                        : std::string("clock free"),
                m_settings.horizon_s, best->violations, best->tokens_per_joule, s.itl_correction,
                s.ttft_correction) +
            guard;
        return d;
    }

    /// The twin's requests: the running ones prefilled (one prompt token) with half the mean
    /// output left, the waiting ones whole, then Poisson arrivals over the horizon.
    [[nodiscard]] std::vector<workload::Request> twin_requests(const GroupObservation& g,
                                                               const GroupState& s,
                                                               double out_tokens) const {
        std::vector<workload::Request> requests;
        const int input = std::max(1, static_cast<int>(std::lround(s.input_tokens)));
        const int output = std::max(1, static_cast<int>(std::lround(out_tokens)));
        for (int r = 0; r < g.running; ++r) {
            requests.push_back({0, 0.0, 1, std::max(1, output / 2)});
        }
        for (int w = 0; w < g.waiting; ++w) {
            requests.push_back({0, 0.0, input, output});
        }
        if (s.rate_rps > 0.0) {
            std::mt19937_64 rng(kTwinSeed);
            std::exponential_distribution<double> gap(s.rate_rps * m_settings.demand_margin);
            for (double t = gap(rng); t < m_settings.horizon_s; t += gap(rng)) {
                requests.push_back({0, t, input, output});
            }
        }
        for (std::size_t i = 0; i < requests.size(); ++i) {
            requests[i].id = i;
        }
        return requests;
    }

    [[nodiscard]] Outcome simulate(const sim::Simulator& base, double cap_w, int batch_cap,
                                   double clock_mhz, const sim::SloTargets& targets) const {
        Outcome out;
        out.cap_w = cap_w;
        out.clock_mhz = clock_mhz;
        sim::Simulator twin = base.clone();
        twin.set_power_cap(0, cap_w);
        twin.set_batch_cap(0, batch_cap);
        twin.set_locked_clock(0, clock_mhz);
        twin.run_until(m_settings.horizon_s);
        for (const sim::RequestTiming& f : twin.finished_requests()) {
            out.violations += f.meets(targets) ? 0U : 1U;
        }
        out.itl_p90_s = twin.latency(0, sim::LatencyKind::kItl).quantile(0.9);
        out.ttft_p90_s = twin.latency(0, sim::LatencyKind::kTtft).quantile(0.9);
        // Requests still waiting at the end are late by then, almost surely.
        const sim::ReplicaObservation end = twin.observe(0);
        out.violations += static_cast<std::uint64_t>(end.waiting);
        out.tokens_per_joule = end.energy_j > 0.0 ? end.output_tokens / end.energy_j : 0.0;
        return out;
    }

    sim::NodeConfig m_node;
    sim::SloTargets m_slo;
    TwinSettings m_settings;
    std::vector<GroupState> m_state;
};

}  // namespace

std::unique_ptr<Policy> make_twin_policy(sim::NodeConfig node, sim::SloTargets slo,
                                         TwinSettings settings) {
    return std::make_unique<TwinPolicy>(std::move(node), slo, settings);
}

}  // namespace pals::control
