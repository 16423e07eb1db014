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

std::vector<DemandPoint> DaemonNodePort::demand_curve() {
    const std::shared_ptr<const control::StateSnapshot> s = m_store.latest();
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
