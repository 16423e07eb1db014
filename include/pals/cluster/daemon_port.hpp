#pragma once
/// @file daemon_port.hpp
/// @brief The cluster agent's view of a `pals run` daemon (docs/cluster.md): node budgets go in
/// through the daemon's own budget path (StateStore::request_budget, the path PUT /v1/budget
/// takes, so the daemon's per-node safety holds), and what is in force and what the node needs
/// come out of the snapshots the daemon publishes.
///
/// Thread-safety: called from the agent's thread; StateStore is thread-safe.

#include <memory>
#include <optional>
#include <vector>

#include "pals/cluster/cluster_agent.hpp"
#include "pals/control/state.hpp"

namespace pals::cluster {

class DaemonNodePort final : public NodePort {
public:
    /// @param min_w sum of the GPUs' minimum limits; @param max_w sum of their maximum limits.
    DaemonNodePort(control::StateStore& store, double min_w, double max_w)
        : m_store(store), m_min_w(min_w), m_max_w(max_w) {}

    void request_budget(double budget_w) override;
    /// max(the daemon's budget, the sum of the caps it reports): the caps may sit above a budget
    /// only while a lower is pending.
    [[nodiscard]] double budget_in_force_w() override;
    /// Polls the daemon's snapshots every 10 ms.
    void wait_in_force(double budget_w, Seconds timeout) override;
    /// measured_demand_curve() over the snapshots (power and tokens/s smoothed over a few
    /// periods; queue and caps the newest).
    [[nodiscard]] std::vector<DemandPoint> demand_curve() override;
    void publish(const std::shared_ptr<const control::ClusterSnapshot>& snapshot) override;

private:
    control::StateStore& m_store;
    double m_min_w;
    double m_max_w;
    std::optional<NodeReading> m_smoothed;  ///< power and tokens/s, smoothed over periods
    double m_last_time_s = -1.0;            ///< the snapshot last folded in
    double m_peak_tok_s = 0.0;              ///< NodeReading::recent_peak_tok_s
};

}  // namespace pals::cluster
