#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <vector>

#include "pals/api/http_server.hpp"

namespace pals::api {

namespace {

std::string number(double v) {
    if (std::isnan(v)) {
        return "NaN";
    }
    if (std::isinf(v)) {
        return v > 0 ? "+Inf" : "-Inf";
    }
    return fmt::format("{}", v);
}

class Exposition {
public:
    void family(const char* name, const char* type, const char* help) {
        m_out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    }
    void sample(const std::string& name, const std::string& labels, double value) {
        m_out += labels.empty() ? fmt::format("{} {}\n", name, number(value))
                                : fmt::format("{}{{{}}} {}\n", name, labels, number(value));
    }
    /// A family of one unlabelled sample.
    void scalar(const char* name, const char* type, const char* help, double value) {
        family(name, type, help);
        sample(name, "", value);
    }
    /// A family with one sample per group (label group="INDEX"); `value` returns NaN for a
    /// group that has none (left out).
    template <typename Value>
    void per_group(const char* name, const char* help, const std::vector<GroupSnapshot>& groups,
                   Value value) {
        family(name, "gauge", help);
        for (const GroupSnapshot& g : groups) {
            if (const double v = value(g); !std::isnan(v)) {
                sample(name, fmt::format("group=\"{}\"", g.index), v);
            }
        }
    }
    /// A family with one sample per GPU (label gpu="INDEX").
    void per_gpu(const char* name, const char* type, const char* help,
                 const std::vector<double>& values) {
        family(name, type, help);
        for (std::size_t g = 0; g < values.size(); ++g) {
            sample(name, fmt::format("gpu=\"{}\"", g), values[g]);
        }
    }
    [[nodiscard]] std::string str() && { return std::move(m_out); }

private:
    std::string m_out;
};

}  // namespace

std::string render_metrics(const StateSnapshot& s) {
    constexpr double kNone = std::numeric_limits<double>::quiet_NaN();
    Exposition e;
    e.per_gpu("pals_gpu_power_watts", "gauge", "GPU board power over the last control period.",
              s.gpu_power_w);
    e.per_gpu("pals_gpu_energy_joules_total", "counter", "GPU energy since the daemon started.",
              s.gpu_energy_j);
    e.per_group("pals_group_power_cap_watts", "Power cap per GPU of each GPU group.", s.groups,
                [](const GroupSnapshot& g) { return g.cap_w; });
    e.per_group("pals_group_batch_cap", "Batch cap (max running sequences) of each GPU group.",
                s.groups, [](const GroupSnapshot& g) { return static_cast<double>(g.batch_cap); });
    e.per_group("pals_group_batch_cap_requested",
                "Batch cap PALS asked each group's engine to apply at its last reading (0: none "
                "asked: its launch max_num_seqs).",
                s.groups,
                [](const GroupSnapshot& g) { return static_cast<double>(g.batch_cap_requested); });
    e.per_group(
        "pals_group_batch_cap_applied",
        "Batch cap each group's engine acknowledges it applies (absent: no acknowledgement).",
        s.groups, [&](const GroupSnapshot& g) {
            return g.batch_cap_applied >= 0 ? static_cast<double>(g.batch_cap_applied) : kNone;
        });
    e.per_group("pals_group_batch_cap_mismatch",
                "1 while a group's engine does not acknowledge the batch cap requested "
                "(mismatch, missing or stale acknowledgement).",
                s.groups, [](const GroupSnapshot& g) {
                    const bool bad = g.batch_cap_ack == "mismatch" ||
                                     g.batch_cap_ack == "missing" || g.batch_cap_ack == "stale";
                    return bad ? 1.0 : 0.0;
                });
    e.per_group("pals_group_engine_max_num_seqs",
                "Launch max_num_seqs each group's engine acknowledges (absent: unknown).", s.groups,
                [&](const GroupSnapshot& g) {
                    return g.engine_max_num_seqs > 0 ? static_cast<double>(g.engine_max_num_seqs)
                                                     : kNone;
                });
    e.per_group("pals_group_step_tokens",
                "Per-step token budget in force for each GPU group (the tokens one engine step "
                "may schedule; absent: the engine has none PALS can set).",
                s.groups, [&](const GroupSnapshot& g) {
                    return g.step_tokens > 0 ? static_cast<double>(g.step_tokens) : kNone;
                });
    e.per_group("pals_group_step_tokens_applied",
                "Per-step token budget each group's engine acknowledges it applies (absent: no "
                "acknowledgement).",
                s.groups, [&](const GroupSnapshot& g) {
                    return g.step_tokens_applied >= 0 ? static_cast<double>(g.step_tokens_applied)
                                                      : kNone;
                });
    e.per_group("pals_group_locked_clock_mhz",
                "SM clock lock the policy holds on each group's GPUs (0: not locked).", s.groups,
                [](const GroupSnapshot& g) { return g.locked_clock_mhz; });
    e.per_group("pals_group_ttft_slo_miss_ratio",
                "Share of the requests started in the latency window whose TTFT is above the "
                "SLO (absent: none started).",
                s.groups, [](const GroupSnapshot& g) { return g.ttft_miss_share; });
    e.per_group("pals_group_tpot_slo_miss_ratio",
                "Share of the requests finished in the latency window whose TPOT is above the "
                "SLO (absent: none finished).",
                s.groups, [](const GroupSnapshot& g) { return g.tpot_miss_share; });
    e.per_group("pals_group_power_watts", "Power of all GPUs of each group over the last period.",
                s.groups, [](const GroupSnapshot& g) { return g.power_w; });
    e.scalar("pals_node_power_watts", "gauge",
             "Power of all GPUs of the node over the last period.", s.power_w);
    e.scalar("pals_power_budget_watts", "gauge", "Node power budget in force (+Inf: none).",
             s.budget_w);
    e.scalar("pals_power_budget_min_watts", "gauge",
             "Least budget the GPUs can hold: the sum of their minimum power limits (0: unknown).",
             s.budget_min_w);
    e.scalar("pals_budget_feasible", "gauge",
             "1 when the budget in force is at least the GPUs' minimum (0: every cap at its "
             "minimum, best effort).",
             s.budget_feasible ? 1.0 : 0.0);
    e.scalar("pals_generation_tokens_total", "counter",
             "Output tokens served since the daemon started.", s.generation_tokens);
    e.scalar("pals_tokens_per_joule", "gauge",
             "Output tokens per joule of GPU energy since the daemon started.",
             s.energy_j > 0.0 ? s.generation_tokens / s.energy_j : 0.0);
    e.scalar("pals_decisions_total", "counter", "Control periods decided.",
             static_cast<double>(s.decisions_total));
    e.scalar("pals_power_limit_changes_total", "counter", "Power cap writes.",
             static_cast<double>(s.cap_changes_total));
    e.scalar("pals_batch_cap_changes_total", "counter", "Batch cap writes.",
             static_cast<double>(s.batch_changes_total));
    e.scalar("pals_step_tokens_changes_total", "counter", "Per-step token budget writes.",
             static_cast<double>(s.step_tokens_changes_total));
    e.scalar("pals_budget_updates_total", "counter", "Budget changes received through the API.",
             static_cast<double>(s.budget_updates_total));
    e.scalar("pals_batch_cap_faults_total", "counter",
             "Batch caps not acknowledged by an engine for batch_cap_fault_periods periods (each "
             "a degraded-mode fault).",
             static_cast<double>(s.batch_cap_faults_total));
    e.scalar("pals_errors_total", "counter", "Backend errors seen by the control loop.",
             static_cast<double>(s.errors_total));
    e.scalar("pals_degraded", "gauge",
             "1 when the controller stopped actuating after a backend failure.",
             s.degraded ? 1.0 : 0.0);
    return std::move(e).str();
}

std::string render_cluster_metrics(const ClusterSnapshot& c) {
    Exposition e;
    auto gauge = [&](const char* name, const char* help, double v) {
        e.scalar(name, "gauge", help, v);
    };
    auto counter = [&](const char* name, const char* help, std::uint64_t v) {
        e.scalar(name, "counter", help, static_cast<double>(v));
    };
    gauge("pals_cluster_member", "1 while this node holds its cluster lease.", c.member ? 1 : 0);
    gauge("pals_cluster_connected", "1 while the last call to etcd succeeded.",
          c.connected ? 1 : 0);
    gauge("pals_cluster_coordinator", "1 while this node is the cluster's coordinator.",
          c.coordinator ? 1 : 0);
    gauge("pals_cluster_fallback",
          "1 while etcd is out of reach long enough that the node budget decays to its floor.",
          c.fallback ? 1 : 0);
    gauge("pals_cluster_budget_watts", "Cluster budget (+Inf: none set).", c.cluster_budget_w);
    gauge("pals_cluster_allocation_watts",
          "This node's allocation from the coordinator (NaN: none yet).", c.allocation_w);
    gauge("pals_cluster_node_budget_watts",
          "Node budget the cluster agent asks of the daemon (the allocation, or less in fallback).",
          c.node_budget_w);
    gauge("pals_cluster_in_force_watts", "Node budget the daemon has in force.", c.in_force_w);
    gauge("pals_cluster_floor_watts", "Safe node budget held without etcd.", c.floor_w);
    gauge("pals_cluster_since_contact_seconds", "Time since the lease was last renewed.",
          c.since_contact_s);
    counter("pals_cluster_elections_won_total", "Coordinator elections this node won.",
            c.elections_won_total);
    counter("pals_cluster_leader_changes_total", "Changes of coordinator this node saw.",
            c.leader_changes_total);
    counter("pals_cluster_rounds_total", "Allocation rounds run as coordinator.", c.rounds_total);
    counter("pals_cluster_allocation_writes_total", "Allocations written as coordinator.",
            c.allocation_writes_total);
    counter("pals_cluster_allocations_applied_total", "New allocations this node applied.",
            c.allocations_applied_total);
    counter("pals_cluster_fallbacks_total", "Times this node fell back towards its floor.",
            c.fallbacks_total);
    counter("pals_cluster_rejoins_total", "Times this node joined again after losing its lease.",
            c.rejoins_total);
    counter("pals_cluster_etcd_errors_total", "Failed calls to etcd.", c.etcd_errors_total);
    if (c.coordinator) {
        gauge("pals_cluster_round_seconds", "Duration of the last allocation round.",
              c.last_round_s);
        gauge("pals_cluster_members", "Members the coordinator sees.", c.members);
        gauge("pals_cluster_allocated_watts", "Sum of the allocations (coordinator).",
              c.allocated_w);
        gauge("pals_cluster_reserved_watts",
              "Floors reserved for nodes the coordinator does not see (coordinator).",
              c.reserved_w);
        gauge("pals_cluster_marginal_tokens_per_joule",
              "Tokens/s per W at the water level of the last allocation (coordinator).",
              c.marginal_tok_per_j);
        e.family("pals_cluster_share_watts", "gauge", "Each member's allocation (coordinator).");
        for (const ClusterShare& sh : c.shares) {
            e.sample("pals_cluster_share_watts", fmt::format("node=\"{}\"", sh.node),
                     sh.allocation_w);
        }
        e.family("pals_cluster_share_in_force_watts", "gauge",
                 "Each member's node budget in force, as it reports it (coordinator).");
        for (const ClusterShare& sh : c.shares) {
            e.sample("pals_cluster_share_in_force_watts", fmt::format("node=\"{}\"", sh.node),
                     sh.in_force_w);
        }
    }
    return std::move(e).str();
}

}  // namespace pals::api
