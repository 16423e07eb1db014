#include "pals/cluster/daemon_port.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace pals::cluster {

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
    return measured_demand_curve(r);
}

void DaemonNodePort::publish(std::shared_ptr<const control::ClusterSnapshot> snapshot) {
    m_store.publish_cluster(std::move(snapshot));
}

}  // namespace pals::cluster
