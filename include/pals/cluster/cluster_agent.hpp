#pragma once
/// @file cluster_agent.hpp
/// @brief One node's part in a cluster power budget (docs/cluster.md): membership, demand,
/// the node budget it holds, and — on the one node that wins the election — the coordinator
/// that divides the cluster budget.
///
/// Keys, under `/pals/<cluster>/`:
///   budget            the cluster budget, W (text; absent: no cluster budget)
///   leader            the coordinator's node name, under its lease (txn: created only if absent)
///   nodes/<node>      the node's floor, W, without a lease: written at every join and kept
///                     after the node is gone, so a node the coordinator cannot see still has
///                     its floor reserved (it may be partitioned, not dead)
///   members/<node>    JSON under the node's lease, every period: its demand curve, minimum,
///                     maximum, the node budget in force and the allocation it acknowledges
///   alloc/<node>      JSON without a lease, written by the coordinator in fenced transactions:
///                     {"watts", "bound_w", "lease"} (valid only for that lease of the node)
///
/// Safety (the sum of node budgets in force never exceeds the cluster budget):
///   - a node raises its budget only to an allocation written for its current lease; it
///     acknowledges allocation A (its mod revision) once its budget in force is <= A;
///   - the coordinator counts each node at `bound_w` (the most it may hold: the largest
///     allocation not yet acknowledged, or its reported budget in force) until it acknowledges,
///     then at its allocation; reserved floors of nodes not seen count too;
///   - it writes falls at once, raises only within what the counted sum leaves, in a transaction
///     that also fails if the budget or any reservation changed since its read;
///   - every write is fenced: it succeeds only while this node's leader key exists (compare on
///     its create revision), so a deposed coordinator writes nothing;
///   - a node whose lease was last renewed at R (the time the keepalive was sent) holds its
///     allocation until R + ttl/3, decays linearly to its floor by R + 2 ttl/3 (fallback,
///     reported degraded), before etcd can expire the lease (>= R + ttl) and the coordinator
///     re-allocate its share.
///
/// Thread-safety: step() and run() on one thread; set_cluster_budget() from any thread.

#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pals/cluster/allocator.hpp"
#include "pals/cluster/cluster_store.hpp"
#include "pals/common/clock.hpp"
#include "pals/common/status.hpp"
#include "pals/control/state.hpp"

namespace pals::cluster {

/// The agent's settings.
struct AgentOptions {
    std::string cluster = "default";
    std::string node;
    std::int64_t lease_ttl_s = 10;
    Seconds period{1.0};   ///< demand published every period
    Seconds poll{0.5};     ///< allocations read, acknowledged and (coordinator) computed this often
    double floor_w = 0.0;  ///< node floor, >= the GPUs' minimum
    double max_w = 0.0;    ///< sum of the GPUs' maximum limits
    /// Coordinator: AllocateOptions::spare_margin.
    double spare_margin = AllocateOptions{}.spare_margin;
};

/// What the agent needs from its node: the daemon (DaemonNodePort) or a simulated node.
class NodePort {
public:
    virtual ~NodePort() = default;
    /// Asks the node to hold this node budget, W (through the daemon's budget path).
    virtual void request_budget(double budget_w) = 0;
    /// The node budget in force: the most the node's power limits may sum to now, W (its caps
    /// lowered under it); +inf when unknown.
    [[nodiscard]] virtual double budget_in_force_w() = 0;
    /// Waits (at most `timeout`) until the budget in force is at or below `budget_w`, so that a
    /// fall is acknowledged in the same step; default: does not wait.
    virtual void wait_in_force(double /*budget_w*/, Seconds /*timeout*/) {}
    /// Its demand curve now (ascending power).
    [[nodiscard]] virtual std::vector<DemandPoint> demand_curve() = 0;
    /// The state the agent publishes (for the API); default: dropped.
    virtual void publish(const std::shared_ptr<const control::ClusterSnapshot>& /*snapshot*/) {}
};

/// The keys of one cluster.
struct ClusterKeys {
    explicit ClusterKeys(const std::string& cluster);
    std::string root;
    std::string budget;
    std::string leader;
    std::string nodes;    ///< prefix
    std::string members;  ///< prefix
    std::string alloc;    ///< prefix
};

class ClusterAgent {
public:
    /// `store` and `port` are not owned and must outlive the agent; `clock` too.
    ClusterAgent(ClusterStore& store, Clock& clock, NodePort& port, AgentOptions options);

    /// One iteration: lease, allocation, node budget, acknowledgement, demand, and a coordinator
    /// round when this node leads. Never throws; store errors are counted and retried.
    void step();
    /// step() every `poll` until `stop`; then leave() if the node's budget in force is at its
    /// floor (the caller lowered it), else lets the lease expire.
    void run(const std::atomic<bool>& stop);
    /// Revokes the lease (the member and leader keys go at once; the reservation stays). Call
    /// only once the node holds its floor.
    void leave();

    /// Writes the cluster budget key (any node may; PUT /v1/cluster/budget). `watts` > 0, or
    /// nullopt to delete it (no cluster budget).
    [[nodiscard]] Status set_cluster_budget(std::optional<double> watts);

    /// The node budget the agent asks of its node now (W).
    [[nodiscard]] double node_budget_w() const { return m_requested_w; }
    [[nodiscard]] bool coordinator() const { return m_leader_rev != 0; }
    [[nodiscard]] bool fallback() const { return m_fallback; }
    [[nodiscard]] LeaseId lease() const { return m_lease; }
    [[nodiscard]] const control::ClusterSnapshot& snapshot() const { return m_snap; }
    [[nodiscard]] const AgentOptions& options() const { return m_options; }

private:
    void join();
    void keep_alive();
    void read_allocation();
    [[nodiscard]] double target_budget_w(Seconds now);
    void publish_member(double in_force_w);
    void campaign();
    void coordinate();
    void note_error(const Status& s, const char* what);
    void note_ok();
    void publish_snapshot(double in_force_w);

    ClusterStore& m_store;
    Clock& m_clock;
    NodePort& m_port;
    AgentOptions m_options;
    ClusterKeys m_keys;

    LeaseId m_lease = 0;
    Seconds m_renewed_at{-1e9};  ///< when the last successful keepalive/grant was sent
    Seconds m_next_keepalive{0.0};
    Seconds m_next_publish{0.0};
    double m_alloc_w = std::numeric_limits<double>::quiet_NaN();  ///< for m_lease
    std::int64_t m_alloc_rev = 0;
    std::int64_t m_acked_rev = 0;  ///< published acknowledgement
    double m_published_in_force_w = -1.0;
    double m_requested_w = 0.0;
    bool m_fallback = false;
    std::int64_t m_leader_rev = 0;  ///< create revision of our leader key (0: not leading)
    Seconds m_leading_since{0.0};
    std::string m_leader;
    Seconds m_next_campaign{0.0};
    control::ClusterSnapshot m_snap;
};

}  // namespace pals::cluster
