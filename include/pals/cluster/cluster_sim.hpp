#pragma once
/// @file cluster_sim.hpp
/// @brief A simulated cluster under one power budget (`pals evaluate --cluster-nodes N`,
/// docs/cluster.md): N nodes, each with its own slice of a trace and a load skew, divided by
///   - pals-cluster: one ClusterAgent per node over an InMemoryClusterStore — the election,
///     demand curves, water-filling allocator and safe falls-before-raises of `pals run`;
///   - even: the cluster budget split evenly;
///   - static: per-node budgets fixed for the whole run in proportion to each node's mean load
///     (known in hindsight: the best a planner could do without feedback);
///   - uncapped: every node at its maximum (no budget; the reference for tokens/J and QoS).
///
/// Every node runs the same node-level controller in every policy, as `pals run` with policy
/// pals would: each step it picks the lowest cap whose throughput within the TPOT SLO covers its
/// estimated demand (with 50 % headroom), never above its node budget. The policies differ only
/// in how the cluster budget is divided.
///
/// The node model is cheaper than the discrete-event simulator (1,000 nodes x 1 h must run in
/// under a minute on 2 cores): a fluid model per node, steps of `step_s`, calibrated once from
/// the simulator's own physics — StepCostModel (the model's FLOPs and bytes per step, prefill
/// mixed in at the trace's input/output ratio) and GpuPhysics (cap -> clock -> step time and
/// power) — over a grid of batch sizes and caps. Each step a node serves its arrivals plus its
/// backlog up to what its cap allows, at the smallest batch that keeps up; its power is that
/// batch's step power (idle when it has nothing to do); requests (as tokens) arriving while its
/// queueing delay exceeds the TTFT SLO, or served at a step time above the TPOT SLO, count as
/// QoS violations. Batching, KV-cache limits and per-request latency tails are not modelled.
///
/// Thread-safety: pure functions (each run owns its state).

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "pals/common/status.hpp"

namespace pals::cluster {

struct ClusterSimConfig {
    int nodes = 100;
    int gpus_per_node = 8;
    std::string gpu = "H100-SXM";
    std::string model_config;  ///< config.json path of the served model
    int tp = 8;                ///< GPUs per replica (gpus_per_node / tp replicas per node)
    std::string trace;         ///< Azure CSV trace: arrivals and lengths
    double duration_s = 3600.0;
    /// Cluster budget as a share of the nodes' maximum (sum of every GPU's maximum limit).
    double budget_share = 0.4;
    /// Mean offered load over the cluster, as a share of a node's throughput at its maximum.
    double mean_utilization = 0.3;
    /// Per-node load multipliers are lognormal with this sigma (normalised to mean 1).
    double load_skew_sigma = 0.6;
    double slo_ttft_s = 1.0;
    double slo_tpot_s = 0.1;
    double step_s = 1.0;     ///< node model step
    double period_s = 10.0;  ///< pals-cluster: demand published / allocations read this often
    /// pals-cluster: AllocateOptions::spare_margin (infinity: the whole budget handed out).
    double spare_margin = std::numeric_limits<double>::infinity();
    std::uint64_t seed = 1;
    std::vector<std::string> policies = {"pals-cluster", "even", "static", "uncapped"};
};

/// One division policy over the run.
struct ClusterSimPolicyResult {
    std::string policy;
    double offered_tokens = 0.0;
    double served_tokens = 0.0;
    double energy_j = 0.0;
    double tokens_per_j = 0.0;
    double qos_violation_rate = 0.0;      ///< share of offered tokens that missed an SLO
    double max_power_w = 0.0;             ///< cluster power, worst step
    double max_caps_over_budget_w = 0.0;  ///< worst (sum of node budgets in force - budget), >= 0
    double backlog_tokens = 0.0;          ///< left unserved at the end
    std::uint64_t rounds = 0;             ///< allocation rounds (pals-cluster)
    double round_mean_s = 0.0;            ///< wall time of one round (coordinator)
    double round_max_s = 0.0;
    std::uint64_t store_writes = 0;  ///< writes to the in-process store
    double wall_s = 0.0;             ///< wall time of this policy's run
};

struct ClusterSimReport {
    ClusterSimConfig config;
    double budget_w = 0.0;
    double node_min_w = 0.0;
    double node_max_w = 0.0;
    double node_max_tok_s = 0.0;  ///< a node's throughput at its maximum (calibration)
    double calibration_s = 0.0;   ///< wall time of the calibration
    std::vector<ClusterSimPolicyResult> results;
};

/// Runs every policy of `config.policies` on the same nodes, loads and budget.
[[nodiscard]] Result<ClusterSimReport> run_cluster_sim(const ClusterSimConfig& config);

/// A table for people.
[[nodiscard]] std::string cluster_sim_table(const ClusterSimReport& report);
/// The report as JSON.
[[nodiscard]] std::string cluster_sim_json(const ClusterSimReport& report);

}  // namespace pals::cluster
