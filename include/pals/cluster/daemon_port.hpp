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
#include <string>
#include <vector>

#include "pals/cluster/cluster_agent.hpp"
#include "pals/control/state.hpp"
#include "pals/profile/power_model.hpp"

namespace pals::cluster {

/// A fitted model of the node's groups (policy pals), for model-based demand curves.
struct DemandModel {
    std::shared_ptr<const profile::PowerModel> model;
    std::string workload;     ///< the model's workload mix ("" = its first)
    double slo_tpot_s = 0.1;  ///< p90 ITL bound of the model's queries
};

class DaemonNodePort final : public NodePort {
public:
    /// @param min_w sum of the GPUs' minimum limits; @param max_w sum of their maximum limits;
    /// @param model a fitted model of the groups: the demand curve asks it what each budget
    ///        serves within the SLO (none: measured_demand_curve()).
    DaemonNodePort(control::StateStore& store, double min_w, double max_w, DemandModel model = {})
        : m_store(store), m_min_w(min_w), m_max_w(max_w), m_model(std::move(model)) {}

    void request_budget(double budget_w) override;
    /// max(the daemon's budget, the sum of the caps it reports): the caps may sit above a budget
    /// only while a lower is pending.
    [[nodiscard]] double budget_in_force_w() override;
    /// Polls the daemon's snapshots every 10 ms.
    void wait_in_force(double budget_w, Seconds timeout) override;
    /// With a model: model_demand_curve() over each group's demand (tokens/s smoothed, scaled
    /// up when it queues); else measured_demand_curve() over the snapshots (power and tokens/s
    /// smoothed over a few periods; queue and caps the newest).
    [[nodiscard]] std::vector<DemandPoint> demand_curve() override;
    void publish(const std::shared_ptr<const control::ClusterSnapshot>& snapshot) override;

private:
    control::StateStore& m_store;
    double m_min_w;
    double m_max_w;
    DemandModel m_model;
    std::vector<double> m_group_tok_s;      ///< smoothed, per group (model curves)
    std::optional<NodeReading> m_smoothed;  ///< power and tokens/s, smoothed over periods
    double m_last_time_s = -1.0;            ///< the snapshot last folded in
    double m_peak_tok_s = 0.0;              ///< NodeReading::recent_peak_tok_s
};

/// One group as model_demand_curve() sees it.
struct GroupDemand {
    int gpus = 1;
    double demand_tok_s = 0.0;
};

/// A demand curve from a fitted model: at each node budget (split evenly over the GPUs, as a
/// cap per GPU), each group serves what the model's best point within the cap and the ITL bound
/// delivers, up to its demand; the violation rate is the share of the demand not served that
/// way. `points` points from min_w to max_w.
[[nodiscard]] std::vector<DemandPoint> model_demand_curve(const DemandModel& model,
                                                          const std::vector<GroupDemand>& groups,
                                                          double min_w, double max_w,
                                                          int points = 8);

}  // namespace pals::cluster
