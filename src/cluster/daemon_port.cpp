#include "pals/cluster/daemon_port.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <thread>

namespace pals::cluster {

namespace {
/// Weight of the newest period in the smoothed power and throughput.
constexpr double kSmoothing = 0.4;
/// The recent peak throughput loses this share per period (halves in about 20 periods).
constexpr double kPeakDecay = 0.965;
}  // namespace

void DaemonNodePort::request_budget(double budget_w) {
    control::BudgetRequest request;
    request.steps.emplace_back(0.0, budget_w);
    m_store.request_budget(std::move(request));
}

double DaemonNodePort::budget_in_force_w() {
    const std::shared_ptr<const control::StateSnapshot> s = m_store.latest();
    if (!s) {
        return std::numeric_limits<double>::infinity();
    }
    double caps_w = 0.0;
    for (const control::GroupSnapshot& g : s->groups) {
        const double cap = std::isfinite(g.cap_w) ? g.cap_w : m_max_w;
        caps_w += cap * static_cast<double>(g.gpus.size());
    }
    return std::max(s->budget_w, caps_w);
}

void DaemonNodePort::wait_in_force(double budget_w, Seconds timeout) {
    constexpr auto kPoll = std::chrono::milliseconds(10);
    const auto until = std::chrono::steady_clock::now() +
                       std::chrono::duration_cast<std::chrono::steady_clock::duration>(timeout);
    while (budget_in_force_w() > budget_w && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(kPoll);
    }
}

std::vector<DemandPoint> model_demand_curve(const DemandModel& m,
                                            const std::vector<GroupDemand>& groups, double min_w,
                                            double max_w, int points) {
    std::vector<DemandPoint> curve;
    points = std::max(points, 2);
    int gpus = 0;
    double demand = 0.0;
    for (const GroupDemand& g : groups) {
        gpus += g.gpus;
        demand += g.demand_tok_s;
    }
    for (int k = 0; k < points; ++k) {
        const double w = min_w + (std::max(max_w, min_w) - min_w) * k / (points - 1);
        const double cap_w = gpus > 0 ? w / gpus : 0.0;
        double tok = 0.0;
        for (const GroupDemand& g : groups) {
            profile::Query q;
            q.demand_tok_s = g.demand_tok_s;
            q.max_itl_s = m.slo_tpot_s;
            q.max_power_cap_w = cap_w;
            const profile::QueryResult r = m.model->best_point(q, m.workload);
            const bool within_slo = r.point.itl_p90_s <= m.slo_tpot_s;
            tok += r.feasible
                       ? g.demand_tok_s
                       : std::min(g.demand_tok_s, within_slo ? r.point.throughput_tok_s : 0.0);
        }
        const double viol = demand > 0.0 ? std::clamp(1.0 - tok / demand, 0.0, 1.0) : 0.0;
        curve.push_back({w, tok, viol});
    }
    return curve;
}

std::vector<DemandPoint> DaemonNodePort::demand_curve() {
    const std::shared_ptr<const control::StateSnapshot> s = m_store.latest();
    if (m_model.model && s) {
        // Per group: its throughput smoothed over periods, more when it queues.
        m_group_tok_s.resize(s->groups.size(), 0.0);
        std::vector<GroupDemand> groups;
        for (std::size_t i = 0; i < s->groups.size(); ++i) {
            const control::GroupSnapshot& g = s->groups[i];
            m_group_tok_s[i] += kSmoothing * (g.generation_tok_s - m_group_tok_s[i]);
            double demand = m_group_tok_s[i];
            if (g.waiting > 0) {
                demand *=
                    kBoundDemandHeadroom + static_cast<double>(g.waiting) / std::max(1, g.running);
            }
            groups.push_back({static_cast<int>(g.gpus.size()), demand});
        }
        return model_demand_curve(m_model, groups, m_min_w, m_max_w);
    }
    NodeReading r;
    r.min_w = m_min_w;
    r.max_w = m_max_w;
    if (s) {
        r.power_w = s->power_w;
        for (const control::GroupSnapshot& g : s->groups) {
            r.tok_s += g.generation_tok_s;
            r.running += g.running;
            r.waiting += g.waiting;
            r.caps_w +=
                (std::isfinite(g.cap_w) ? g.cap_w : 0.0) * static_cast<double>(g.gpus.size());
        }
    }
    // Smoothed over a few periods (an allocation change moves one period's power and
    // throughput; the curve should not chase it).
    if (s && s->time_s != m_last_time_s) {
        m_last_time_s = s->time_s;
        if (!m_smoothed) {
            m_smoothed = r;
        } else {
            m_smoothed->power_w += kSmoothing * (r.power_w - m_smoothed->power_w);
            m_smoothed->tok_s += kSmoothing * (r.tok_s - m_smoothed->tok_s);
        }
        m_peak_tok_s = std::max(m_smoothed->tok_s, m_peak_tok_s * kPeakDecay);
    }
    r.recent_peak_tok_s = m_peak_tok_s;
    if (m_smoothed) {
        r.power_w = m_smoothed->power_w;
        r.tok_s = m_smoothed->tok_s;
    }
    return measured_demand_curve(r);
}

void DaemonNodePort::publish(const std::shared_ptr<const control::ClusterSnapshot>& snapshot) {
    m_store.publish_cluster(snapshot);
}

}  // namespace pals::cluster
