#pragma once
/// @file state.hpp
/// @brief What the daemon's control thread publishes (for the HTTP API, a layer above), and the
/// commands the API posts back (llama.cpp's server model, STYLE.md 3.7): the control thread owns
/// the backends; HTTP workers read an immutable snapshot and queue budget changes.
///
/// Thread-safety: StateStore is thread-safe; StateSnapshot is immutable once published.

#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace pals::control {

/// One GPU group as the API reports it.
struct GroupSnapshot {
    int index = 0;
    std::vector<int> gpus;
    double cap_w = 0.0;  ///< per GPU
    int batch_cap = 0;
    double power_w = 0.0;  ///< all GPUs of the group, last period
    double generation_tok_s = 0.0;
    int running = 0;
    int waiting = 0;
    double locked_clock_mhz = 0.0;  ///< the SM clock lock the policy holds (0: not locked)
    /// The batch cap PALS asked the engine to apply at the last reading of the engine (0: none
    /// asked yet: the engine runs at its launch max_num_seqs); with batch_cap_applied, the pair
    /// the check compares. After a change it trails batch_cap (this period's decision) by one
    /// period.
    int batch_cap_requested = 0;
    int batch_cap_applied = -1;  ///< what the engine acknowledged at that reading (-1: unknown)
    /// engine::to_string(check_batch_cap()) of the last reading: "ok", "mismatch", "missing",
    /// "stale" or "unchecked".
    std::string batch_cap_ack = "unchecked";
    int engine_max_num_seqs = 0;  ///< the engine's launch max_num_seqs, acknowledged (0: unknown)
    /// Over the loop's latency window: the share of requests above the TTFT SLO (of those that
    /// started) and above the TPOT SLO (of those that finished); NaN when none, or not
    /// controlled. Their sum is the violation rate to expect if the window's conditions hold.
    double ttft_miss_share = std::numeric_limits<double>::quiet_NaN();
    double tpot_miss_share = std::numeric_limits<double>::quiet_NaN();
    double kv_cache_usage = 0.0;  ///< 0..1, the engine's gauge at the last reading
    /// The per-step token budget in force (the launch max_num_batched_tokens unless PALS set
    /// one); 0: the engine has none PALS can set.
    int step_tokens = 0;
    int step_tokens_applied = -1;  ///< what the engine acknowledged (-1: unknown)
    /// The engine's launch max_num_batched_tokens, acknowledged (0: unknown).
    int engine_max_num_batched_tokens = 0;
};

/// The state after one control period.
struct StateSnapshot {
    double time_s = 0.0;
    /// The wall-clock time (Unix seconds) at which time_s was reached, to show the budget steps
    /// (kept in the daemon's clock, seconds since start) as dates and as times from now.
    double wall_time_unix_s = 0.0;
    std::string policy;
    bool degraded = false;
    double budget_w = 0.0;  ///< +inf: no budget
    /// The least budget the GPUs can hold: the sum of their minimum power limits, W (0: unknown).
    double budget_min_w = 0.0;
    /// False while budget_w < budget_min_w: every cap is at its minimum and the node may draw
    /// more than the budget (best effort; /healthz reports "degraded").
    bool budget_feasible = true;
    std::vector<std::pair<double, double>> budget_steps;  ///< (t_s, W) of the schedule in force
    double power_w = 0.0;                                 ///< node total, last period
    double energy_j = 0.0;                                ///< cumulative, all GPUs
    double generation_tokens = 0.0;                       ///< cumulative
    double time_over_budget_s = 0.0;  ///< cumulative: published periods drawing over budget
    std::vector<GroupSnapshot> groups;
    std::vector<double> gpu_power_w;   ///< per GPU index
    std::vector<double> gpu_energy_j;  ///< per GPU index, cumulative
    std::string last_decision;         ///< the policy's reason for the last change
    std::uint64_t decisions_total = 0;
    std::uint64_t cap_changes_total = 0;
    std::uint64_t batch_changes_total = 0;
    std::uint64_t step_tokens_changes_total = 0;  ///< per-step token budget writes
    std::uint64_t errors_total = 0;
    std::uint64_t budget_updates_total = 0;
    /// Times a group's engine did not acknowledge the batch cap for batch_cap_fault_periods
    /// periods (each one put the daemon in degraded mode).
    std::uint64_t batch_cap_faults_total = 0;
};

/// One node's share as the coordinator last divided the cluster budget (docs/cluster.md).
struct ClusterShare {
    std::string node;
    double allocation_w = 0.0;  ///< written to etcd
    double in_force_w = 0.0;    ///< the node budget the node reports in force
    double min_w = 0.0;         ///< its minimum (or floor)
    double demand_tok_s = 0.0;  ///< its curve at the allocation
    bool acknowledged = false;  ///< the node acknowledged its newest allocation
};

/// What the cluster agent of `pals run` publishes (docs/cluster.md), when [cluster] is set.
struct ClusterSnapshot {
    std::string cluster;
    std::string node;
    std::string store;         ///< where it connects ("etcd http://...")
    bool connected = false;    ///< the last call to etcd succeeded
    bool member = false;       ///< holds a lease and its member key
    bool coordinator = false;  ///< this node allocates the cluster budget now
    bool fallback = false;     ///< etcd lost for long enough: the node budget decays to its floor
    std::string leader;        ///< the coordinator's node name ("" = unknown)
    double cluster_budget_w = 0.0;  ///< +inf: none set
    double allocation_w = 0.0;      ///< this node's newest allocation (NaN: none yet)
    double node_budget_w = 0.0;     ///< the node budget requested from the daemon
    double in_force_w = 0.0;        ///< the node budget the daemon has in force
    double floor_w = 0.0;           ///< the safe floor (>= the GPUs' minimum)
    double max_w = 0.0;             ///< sum of the GPUs' maximum limits
    double since_contact_s = 0.0;   ///< since the lease was last renewed
    double lease_ttl_s = 0.0;
    std::uint64_t elections_won_total = 0;
    std::uint64_t leader_changes_total = 0;
    std::uint64_t rounds_total = 0;  ///< allocation rounds run as coordinator
    std::uint64_t allocation_writes_total = 0;
    std::uint64_t allocations_applied_total = 0;  ///< new allocations this node applied
    std::uint64_t fallbacks_total = 0;
    std::uint64_t rejoins_total = 0;
    std::uint64_t etcd_errors_total = 0;
    double last_round_s = 0.0;  ///< duration of the last allocation round (coordinator)
    int members = 0;            ///< members seen by the coordinator
    double allocated_w = 0.0;   ///< sum of the allocations (coordinator)
    double reserved_w = 0.0;    ///< floors held for nodes not seen (coordinator)
    double marginal_tok_per_j = 0.0;
    std::vector<ClusterShare> shares;  ///< coordinator only
    std::string last_error;
};

/// A budget change requested through the API: steps (t_s relative to now, W); one step at
/// t = 0 is a plain value; no steps clears the budget (`{"watts": null}`).
struct BudgetRequest {
    std::vector<std::pair<double, double>> steps;
};

class StateStore {
public:
    void publish(std::shared_ptr<const StateSnapshot> snapshot) {
        std::lock_guard<std::mutex> lock(m_mutex);
        m_snapshot = std::move(snapshot);
    }
    [[nodiscard]] std::shared_ptr<const StateSnapshot> latest() const {
        std::lock_guard<std::mutex> lock(m_mutex);
        return m_snapshot;
    }
    /// Queues a budget change for the control thread (the newest one wins).
    void request_budget(BudgetRequest request) {
        std::lock_guard<std::mutex> lock(m_mutex);
        m_budget = std::move(request);
    }
    /// The least budget the GPUs can hold (sum of their minimum power limits), W; 0 while unknown.
    /// PUT /v1/budget refuses (409) a step below it.
    void set_budget_min_w(double watts) {
        std::lock_guard<std::mutex> lock(m_mutex);
        m_budget_min_w = watts;
    }
    [[nodiscard]] double budget_min_w() const {
        std::lock_guard<std::mutex> lock(m_mutex);
        return m_budget_min_w;
    }
    /// The cluster agent's state (nullptr: not a cluster member, or nothing published yet).
    void publish_cluster(std::shared_ptr<const ClusterSnapshot> snapshot) {
        std::lock_guard<std::mutex> lock(m_mutex);
        m_cluster = std::move(snapshot);
    }
    [[nodiscard]] std::shared_ptr<const ClusterSnapshot> cluster() const {
        std::lock_guard<std::mutex> lock(m_mutex);
        return m_cluster;
    }
    /// Takes the queued budget change, if any.
    [[nodiscard]] std::optional<BudgetRequest> take_budget() {
        std::lock_guard<std::mutex> lock(m_mutex);
        std::optional<BudgetRequest> out = std::move(m_budget);
        m_budget.reset();
        return out;
    }

private:
    mutable std::mutex m_mutex;
    std::shared_ptr<const StateSnapshot> m_snapshot;
    std::optional<BudgetRequest> m_budget;
    double m_budget_min_w = 0.0;
    std::shared_ptr<const ClusterSnapshot> m_cluster;
};

}  // namespace pals::control
