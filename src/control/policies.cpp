#include "pals/control/policies.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>

namespace pals::control {

namespace {

/// ITL above this share of its SLO makes batch-only shrink the batch.
constexpr double kAtRisk = 0.9;

class DefaultPolicy final : public Policy {
public:
    [[nodiscard]] std::string_view name() const override { return "default"; }
    [[nodiscard]] bool honours_budget() const override { return false; }
    std::vector<GroupDecision> decide(const Observation& o) override {
        std::vector<GroupDecision> out;
        for (const GroupObservation& g : o.groups) {
            out.push_back(
                {o.cap_range.max_w, g.max_batch_cap, -1.0, "vLLM default: max cap, launch batch"});
        }
        return out;
    }
};

class CapOnlyPolicy final : public Policy {
public:
    [[nodiscard]] std::string_view name() const override { return "cap-only"; }
    std::vector<GroupDecision> decide(const Observation& o) override {
        std::vector<GroupDecision> out;
        const double cap = even_share_cap_w(o);
        for (const GroupObservation& g : o.groups) {
            out.push_back({cap, g.max_batch_cap, -1.0, "static cap = budget share"});
        }
        return out;
    }
};

class BatchOnlyPolicy final : public Policy {
public:
    [[nodiscard]] std::string_view name() const override { return "batch-only"; }
    std::vector<GroupDecision> decide(const Observation& o) override {
        m_batch.resize(o.groups.size(), 0.0);
        std::vector<GroupDecision> out;
        const double cap = even_share_cap_w(o);
        for (std::size_t i = 0; i < o.groups.size(); ++i) {
            const GroupObservation& g = o.groups[i];
            double& b = m_batch[i];
            if (b <= 0.0) {
                b = g.max_batch_cap;
            }
            std::string why = "hold";
            const bool itl_high = !std::isnan(g.itl_p90_s) && g.itl_p90_s > kAtRisk * o.slo_tpot_s;
            if (itl_high) {
                b = std::max(1.0, b * 0.75);  // multiplicative decrease on ITL risk
                why = "ITL at risk: shrink batch";
            } else if (g.waiting > 0 || g.running >= static_cast<int>(b)) {
                b = std::min<double>(g.max_batch_cap, b * 1.25 + 1.0);
                why = "queue: grow batch";
            }
            out.push_back({cap, static_cast<int>(b), -1.0, why});
        }
        return out;
    }

private:
    std::vector<double> m_batch;
};

class ClockOnlyPolicy final : public Policy {
public:
    [[nodiscard]] std::string_view name() const override { return "clock-only"; }
    std::vector<GroupDecision> decide(const Observation& o) override {
        m_trimmers.resize(o.groups.size());
        std::vector<GroupDecision> out;
        const double cap = even_share_cap_w(o);
        for (std::size_t i = 0; i < o.groups.size(); ++i) {
            std::string why;
            const double f = m_trimmers[i].update(o, o.groups[i], why);
            out.push_back({cap, o.groups[i].max_batch_cap, f, why});
        }
        return out;
    }

private:
    std::vector<ClockTrimmer> m_trimmers;
};

class FixedPolicy final : public Policy {
public:
    FixedPolicy(std::string name, double cap_w, int batch_cap, double locked_clock_mhz,
                int step_tokens)
        : m_name(std::move(name))
        , m_cap_w(cap_w)
        , m_batch_cap(batch_cap)
        , m_locked_clock_mhz(locked_clock_mhz)
        , m_step_tokens(step_tokens) {}
    [[nodiscard]] std::string_view name() const override { return m_name; }
    std::vector<GroupDecision> decide(const Observation& o) override {
        GroupDecision d;
        d.cap_w = m_cap_w;
        d.batch_cap = m_batch_cap;
        d.locked_clock_mhz = m_locked_clock_mhz > 0.0 ? m_locked_clock_mhz : -1.0;
        d.step_tokens = m_step_tokens;
        d.reason = fmt::format("fixed {:.0f} W, batch {}", m_cap_w, m_batch_cap);
        if (m_locked_clock_mhz > 0.0) {
            d.reason += fmt::format(", clock {:.0f} MHz", m_locked_clock_mhz);
        }
        if (m_step_tokens > 0) {
            d.reason += fmt::format(", {} tokens per step", m_step_tokens);
        }
        return std::vector<GroupDecision>(o.groups.size(), d);
    }

private:
    std::string m_name;
    double m_cap_w;
    int m_batch_cap;
    double m_locked_clock_mhz;
    int m_step_tokens;
};

/// What put latency at risk, for a reason: "ITL p90 98 ms, a queue of 5 growing".
std::string risk_signals(const GroupObservation& g, const LatencyRisk& risk) {
    std::vector<std::string> parts;
    if (risk.itl || risk.stall) {
        parts.push_back(
            fmt::format("ITL p90 {:.0f} ms{}", g.itl_p90_s * 1e3, risk.stall ? ", a stall" : ""));
    }
    if (risk.ttft) {
        parts.push_back(fmt::format("TTFT p90 {:.2f} s", g.ttft_p90_s));
    }
    if (risk.queue) {
        parts.push_back(fmt::format("a queue of {} growing", g.waiting));
    }
    return fmt::format("{}", fmt::join(parts, ", "));
}
}  // namespace

double ClockTrimmer::update(const Observation& o, const GroupObservation& g, std::string& why,
                            double reference_mhz, double floor_mhz, double in_force_mhz) {
    constexpr double kStepDown = 0.95;
    constexpr double kStepUp = 1.15;
    constexpr double kLowestShare = 0.3;  ///< of the highest clock
    const double reference =
        reference_mhz > 0.0 ? std::min(reference_mhz, o.sm_clock_max_mhz) : o.sm_clock_max_mhz;
    const double highest = o.sm_clock_max_mhz / reference;
    const double lowest = kLowestShare * o.sm_clock_max_mhz / reference;
    m_share = std::clamp(m_share, lowest, highest);
    const bool itl_ok =
        std::isnan(g.itl_p90_s) || g.itl_p90_s < m_bands.itl_comfortable * o.slo_tpot_s;
    const bool ttft_ok =
        std::isnan(g.ttft_p90_s) || g.ttft_p90_s < m_bands.ttft_comfortable * o.slo_ttft_s;
    const LatencyRisk risk = latency_risk(o, g, m_bands);
    m_raised = risk.any();
    m_floor_mhz *= m_bands.floor_decay;
    if (in_force_mhz != m_in_force_mhz) {
        // Written at the last period: in force since then.
        m_in_force_mhz = in_force_mhz;
        m_in_force_since_s = o.time_s - o.period_s;
    }
    // An ITL or TTFT alarm alone, this soon after a lock change, is the old lock's latency.
    const bool settling = !(risk.queue || risk.burst || risk.kv || risk.kv_full || risk.stall) &&
                          in_force_mhz > 0.0 &&
                          o.time_s - m_in_force_since_s < m_bands.raise_settle_s;
    if (m_raised) {
        m_share = std::max(m_share, std::min(highest, in_force_mhz / reference));  // 0: none
    }
    if (m_raised && settling) {
        why = fmt::format("latency at risk ({}), but the lock changed {:.0f} s ago: hold clock at",
                          risk_signals(g, risk), o.time_s - m_in_force_since_s);
    } else if (m_raised) {
        if (m_bands.floor_margin > 0.0 && (risk.itl || risk.ttft)) {
            m_floor_mhz = std::max(
                m_floor_mhz,
                std::min(o.sm_clock_max_mhz, reference * m_share * (1.0 + m_bands.floor_margin)));
        }
        m_share = risk.burst || risk.kv_full ? highest : std::min(highest, m_share * kStepUp);
        const std::string kv = fmt::format("KV cache {:.0f} % full", 100.0 * g.kv_cache_usage);
        why = risk.burst     ? fmt::format("burst (a queue of {} growing): clock up to", g.waiting)
              : risk.kv_full ? fmt::format("burst ({}): clock up to", kv)
              : risk.itl || risk.ttft || risk.queue || risk.stall
                  ? fmt::format("latency at risk ({}): clock up to", risk_signals(g, risk))
                  : kv + ": clock up to";
    } else if (itl_ok && ttft_ok && g.waiting <= g.waiting_previous) {
        // Both floors (learned, and the caller's) are at most the highest clock.
        const double floor_share = std::min(highest, std::max(m_floor_mhz, floor_mhz) / reference);
        m_share = std::max({lowest, floor_share, m_share * kStepDown});
        why = "latency slack: clock down to";
    } else {
        why = "hold clock at";
    }
    const double clock = std::round(reference * m_share);
    why += fmt::format(" {:.0f} MHz", clock);
    if (reference_mhz > 0.0) {
        why += fmt::format(" ({:.2f} x the model's {:.0f} MHz)", m_share, reference);
    }
    return clock;
}

LatencyRisk latency_risk(const Observation& o, const GroupObservation& g,
                         const ClockTrimmer::Bands& bands) {
    LatencyRisk r;
    r.itl = !std::isnan(g.itl_p90_s) && g.itl_p90_s > bands.itl_at_risk * o.slo_tpot_s &&
            (std::isnan(g.tpot_p90_s) || g.tpot_p90_s >= bands.itl_needs_tpot * o.slo_tpot_s);
    r.ttft = !std::isnan(g.ttft_p90_s) && g.ttft_p90_s > bands.ttft_at_risk * o.slo_ttft_s;
    const bool growing = g.waiting > g.waiting_previous;
    r.queue = growing && g.waiting >= bands.queue_alarm;
    r.burst = growing && bands.burst_queue > 0 && g.waiting >= bands.burst_queue;
    r.kv = bands.kv_at_risk > 0.0 && g.kv_cache_usage >= bands.kv_at_risk;
    r.kv_full = bands.kv_full > 0.0 && g.kv_cache_usage >= bands.kv_full;
    r.stall = bands.itl_stall > 0.0 && !std::isnan(g.itl_p90_s) &&
              g.itl_p90_s > bands.itl_stall * o.slo_tpot_s;
    return r;
}

double even_share_cap_w(const Observation& o) {
    int gpus = 0;
    for (const GroupObservation& g : o.groups) {
        gpus += g.gpus;
    }
    if (!std::isfinite(o.budget_w) || gpus == 0) {
        return o.cap_range.max_w;
    }
    return o.cap_range.clamp(o.budget_w / gpus);
}

std::unique_ptr<Policy> make_default_policy() {
    return std::make_unique<DefaultPolicy>();
}
std::unique_ptr<Policy> make_cap_only_policy() {
    return std::make_unique<CapOnlyPolicy>();
}
std::unique_ptr<Policy> make_batch_only_policy() {
    return std::make_unique<BatchOnlyPolicy>();
}
std::unique_ptr<Policy> make_clock_only_policy() {
    return std::make_unique<ClockOnlyPolicy>();
}
std::unique_ptr<Policy> make_fixed_policy(std::string name, double cap_w, int batch_cap,
                                          double locked_clock_mhz, int step_tokens) {
    return std::make_unique<FixedPolicy>(std::move(name), cap_w, batch_cap, locked_clock_mhz,
                                         step_tokens);
}

}  // namespace pals::control
