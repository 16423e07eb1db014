#include "pals/cluster/cluster_sim.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>

#include "pals/cluster/cluster_agent.hpp"
#include "pals/cluster/cluster_store.hpp"
#include "pals/model/model_spec.hpp"
#include "pals/sim/cost_model.hpp"
#include "pals/sim/gpu_physics.hpp"
#include "pals/sim/gpu_spec.hpp"
#include "pals/workload/workload.hpp"

namespace pals::cluster {

namespace {

/// Caps of the calibration grid (between the GPU's minimum and maximum limits).
constexpr int kCapPoints = 21;
/// Batch sizes of the calibration grid.
constexpr std::array<int, 9> kBatches = {1, 2, 4, 8, 16, 32, 64, 128, 256};
/// Points of a simulated node's demand curve.
constexpr int kCurvePoints = 8;

double wall_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// One node's throughput, step time and power over a grid of caps and batch sizes, from the
/// simulator's cost model and GPU physics (see the header).
class NodeModel {
public:
    static Result<NodeModel> calibrate(const ClusterSimConfig& c, double in_per_out, double mean_in,
                                       double mean_out) {
        NodeModel m;
        PALS_ASSIGN_OR_RETURN(const sim::GpuSpec gpu, sim::find_gpu_spec(c.gpu));
        PALS_ASSIGN_OR_RETURN(const model::ModelSpec spec, model::load_model_spec(c.model_config));
        PALS_ASSIGN_OR_RETURN(const sim::StepCostModel cost,
                              sim::StepCostModel::create(spec, gpu, {c.tp, 1, 0.0}));
        const sim::GpuPhysics physics(gpu);
        m.m_gpus = c.gpus_per_node;
        m.m_replicas = std::max(1, c.gpus_per_node / c.tp);
        m.m_idle_w = physics.idle_power_w();
        m.m_cap_min_w = gpu.power_limit_min_w;
        m.m_cap_max_w = gpu.power_limit_max_w;
        const double ctx = mean_in + 0.5 * mean_out;
        for (int k = 0; k < kCapPoints; ++k) {
            const double cap =
                m.m_cap_min_w + (m.m_cap_max_w - m.m_cap_min_w) * k / (kCapPoints - 1);
            m.m_caps.push_back(cap);
            for (const int b : kBatches) {
                sim::StepShape shape;
                shape.decode_seqs = b;
                shape.logits = b;
                shape.decode_ctx_full = b * ctx;
                shape.decode_ctx_local = shape.decode_ctx_full;
                // Prefill mixed in at the trace's ratio of prompt to output tokens (chunked
                // prefill in steady state).
                shape.prefill_tokens = static_cast<int>(std::lround(b * in_per_out));
                shape.prefill_pairs_full = shape.prefill_tokens * 0.5 * mean_in;
                shape.prefill_pairs_local = shape.prefill_pairs_full;
                shape.prefill_ctx_full = shape.prefill_tokens + mean_in;
                shape.prefill_ctx_local = shape.prefill_ctx_full;
                const sim::StepOutcome o = physics.run_step(cost.step_work(shape), cap);
                m.m_step_s.push_back(o.duration_s);
                m.m_power_w.push_back(o.power_w);
                m.m_tok_s.push_back(m.m_replicas * b / std::max(o.duration_s, 1e-9));
            }
        }
        return m;
    }

    [[nodiscard]] int gpus() const { return m_gpus; }
    [[nodiscard]] double min_w() const { return m_cap_min_w * m_gpus; }
    [[nodiscard]] double max_w() const { return m_cap_max_w * m_gpus; }

    /// What the node does at node budget `budget_w` when it wants to serve `want_tok_s`.
    struct Operation {
        double served_tok_s = 0.0;
        double power_w = 0.0;  ///< whole node
        double step_s = 0.0;   ///< time per output token
        double max_tok_s = 0.0;
    };
    [[nodiscard]] Operation operate(double budget_w, double want_tok_s) const {
        const double cap = std::clamp(budget_w / m_gpus, m_cap_min_w, m_cap_max_w);
        const double pos = (cap - m_cap_min_w) / (m_cap_max_w - m_cap_min_w) * (kCapPoints - 1);
        const auto k = std::min(static_cast<std::size_t>(pos), std::size_t{kCapPoints - 2});
        const double f = std::clamp(pos - static_cast<double>(k), 0.0, 1.0);
        const Operation a = at_cap(k, want_tok_s);
        const Operation b = at_cap(k + 1, want_tok_s);
        Operation o;
        o.max_tok_s = a.max_tok_s + f * (b.max_tok_s - a.max_tok_s);
        o.served_tok_s = std::min(want_tok_s, o.max_tok_s);
        o.power_w = std::min(a.power_w + f * (b.power_w - a.power_w), cap * m_gpus);
        o.step_s = a.step_s + f * (b.step_s - a.step_s);
        return o;
    }

    /// The least node budget whose throughput within the TPOT SLO reaches `tok_s` (its
    /// maximum when none does), on the calibration grid.
    [[nodiscard]] double budget_for(double tok_s, double tpot_s) const {
        for (int k = 0; k < kCapPoints; ++k) {
            const double w = m_caps[static_cast<std::size_t>(k)] * m_gpus;
            if (slo_tok_s(w, tpot_s) >= tok_s) {
                return w;
            }
        }
        return max_w();
    }

    /// The most tokens/s the node serves at `budget_w` with a step time (TPOT) within
    /// `tpot_s`: its largest batch that keeps to the SLO.
    [[nodiscard]] double slo_tok_s(double budget_w, double tpot_s) const {
        const double cap = std::clamp(budget_w / m_gpus, m_cap_min_w, m_cap_max_w);
        const double pos = (cap - m_cap_min_w) / (m_cap_max_w - m_cap_min_w) * (kCapPoints - 1);
        const auto k = std::min(static_cast<std::size_t>(pos), std::size_t{kCapPoints - 2});
        const double f = std::clamp(pos - static_cast<double>(k), 0.0, 1.0);
        auto at = [&](std::size_t kk) {
            const std::size_t nb = kBatches.size();
            double best = 0.0;
            for (std::size_t j = 0; j < nb; ++j) {
                if (m_step_s[kk * nb + j] <= tpot_s) {
                    best = std::max(best, m_tok_s[kk * nb + j]);
                }
            }
            return best;
        };
        const double a = at(k);
        return a + f * (at(k + 1) - a);
    }

private:
    [[nodiscard]] Operation at_cap(std::size_t k, double want) const {
        const std::size_t nb = kBatches.size();
        const double* t = &m_tok_s[k * nb];
        const double* p = &m_power_w[k * nb];
        const double* d = &m_step_s[k * nb];
        Operation o;
        o.max_tok_s = t[nb - 1];
        o.served_tok_s = std::min(want, o.max_tok_s);
        if (o.served_tok_s <= t[0]) {
            const double duty = t[0] > 0.0 ? o.served_tok_s / t[0] : 0.0;
            o.power_w = m_gpus * (m_idle_w + duty * (p[0] - m_idle_w));
            o.step_s = d[0];
            return o;
        }
        std::size_t j = 1;
        while (j < nb - 1 && t[j] < o.served_tok_s) {
            ++j;
        }
        const double g = std::clamp((o.served_tok_s - t[j - 1]) / (t[j] - t[j - 1]), 0.0, 1.0);
        o.power_w = m_gpus * (p[j - 1] + g * (p[j] - p[j - 1]));
        o.step_s = d[j - 1] + g * (d[j] - d[j - 1]);
        return o;
    }

    int m_gpus = 8;
    int m_replicas = 1;
    double m_idle_w = 0.0;
    double m_cap_min_w = 0.0;
    double m_cap_max_w = 0.0;
    std::vector<double> m_caps;
    std::vector<double> m_tok_s;  ///< [cap][batch], node
    std::vector<double> m_step_s;
    std::vector<double> m_power_w;  ///< per GPU
};

/// One simulated node's state over a run.
struct SimNode {
    double load_scale = 1.0;      ///< tokens/s per token/s of the base series
    std::size_t offset = 0;       ///< into the base series, s
    double budget_w = 0.0;        ///< node budget in force
    double backlog = 0.0;         ///< output tokens waiting
    double offered_window = 0.0;  ///< offered tokens since the demand was last estimated
    double window_s = 0.0;
    double window_peak_tok_s = 0.0;  ///< the highest controller estimate in the window
    double demand_tok_s = 0.0;       ///< estimated offered load (for its demand curve)
    double control_tok_s = 0.0;      ///< the node controller's smoothed demand estimate
};

/// Share of the newest step in the node controller's demand estimate.
constexpr double kControlSmoothing = 0.5;
/// The node controller covers its demand estimate with this headroom.
constexpr double kControlHeadroom = 1.5;

/// The node side of a ClusterAgent in the simulation: budgets are in force at once (the
/// daemon's 0.1 s is below a step); the demand curve comes from the node's own model.
class SimNodePort final : public NodePort {
public:
    SimNodePort(SimNode& node, const NodeModel& model, const ClusterSimConfig& config)
        : m_node(node), m_model(model), m_config(config) {}
    void request_budget(double budget_w) override { m_node.budget_w = budget_w; }
    double budget_in_force_w() override { return m_node.budget_w; }
    std::vector<DemandPoint> demand_curve() override {
        if (m_node.window_s > 0.0) {
            // What it must cover: the busiest moment of the last period (the node's controller
            // follows its load every step, within the node budget this sets).
            m_node.demand_tok_s = std::max(
                m_node.offered_window / m_node.window_s + m_node.backlog / m_config.period_s,
                kControlHeadroom * m_node.window_peak_tok_s);
            m_node.offered_window = 0.0;
            m_node.window_s = 0.0;
            m_node.window_peak_tok_s = 0.0;
        }
        const double want = m_node.demand_tok_s;
        std::vector<DemandPoint> curve;
        for (int i = 0; i < kCurvePoints; ++i) {
            const double w =
                m_model.min_w() + (m_model.max_w() - m_model.min_w()) * i / (kCurvePoints - 1);
            // Tokens/s it can serve within the TPOT SLO at this budget: the value of the watts.
            const double within = m_model.slo_tok_s(w, m_config.slo_tpot_s);
            const double tok = std::min(want, within);
            const double viol = want > 0.0 ? std::max(0.0, 1.0 - within / want) : 0.0;
            curve.push_back({w, tok, viol});
        }
        return curve;
    }

private:
    SimNode& m_node;
    const NodeModel& m_model;
    const ClusterSimConfig& m_config;
};

/// Output tokens arriving in each second of the trace (wrapped to `duration_s`).
struct BaseLoad {
    std::vector<double> tok_s;
    double mean = 0.0;
    double in_per_out = 1.0;
    double mean_in = 0.0;
    double mean_out = 0.0;
};

Result<BaseLoad> base_load(const ClusterSimConfig& c) {
    PALS_ASSIGN_OR_RETURN(const std::vector<workload::Request> requests,
                          workload::load_azure_trace(c.trace));
    if (requests.empty()) {
        return Status::invalid_argument(c.trace + ": no request");
    }
    BaseLoad b;
    double t0 = requests.front().arrival_s;
    double span = std::max(1.0, requests.back().arrival_s - t0);
    const auto seconds = static_cast<std::size_t>(std::ceil(span));
    b.tok_s.assign(seconds, 0.0);
    double in = 0.0;
    double out = 0.0;
    for (const workload::Request& r : requests) {
        const auto s = std::min(seconds - 1, static_cast<std::size_t>(r.arrival_s - t0));
        b.tok_s[s] += r.output_tokens;
        in += r.input_tokens;
        out += r.output_tokens;
    }
    b.mean = out / static_cast<double>(seconds);
    b.in_per_out = out > 0.0 ? in / out : 1.0;
    b.mean_in = in / static_cast<double>(requests.size());
    b.mean_out = out / static_cast<double>(requests.size());
    return b;
}

/// Budgets in proportion to `weights`, each within [lo, hi], summing to `budget_w` (or every
/// node at hi).
std::vector<double> proportional(const std::vector<double>& weights, double lo, double hi,
                                 double budget_w) {
    const std::size_t n = weights.size();
    std::vector<double> w(n, lo);
    std::vector<bool> full(n, false);
    for (int pass = 0; pass < 8; ++pass) {
        double rest = budget_w;
        double weight = 0.0;
        for (std::size_t i = 0; i < n; ++i) {
            rest -= full[i] ? hi : lo;
            weight += full[i] ? 0.0 : weights[i];
        }
        bool changed = false;
        for (std::size_t i = 0; i < n; ++i) {
            if (full[i]) {
                w[i] = hi;
                continue;
            }
            w[i] = lo + (weight > 0.0 ? std::max(0.0, rest) * weights[i] / weight : 0.0);
            if (w[i] > hi) {
                full[i] = true;
                changed = true;
            }
        }
        if (!changed) {
            break;
        }
    }
    for (double& x : w) {
        x = std::clamp(std::floor(x * 1000.0) / 1000.0, lo, hi);
    }
    return w;
}

class Run {
public:
    Run(const ClusterSimConfig& c, const NodeModel& model, const BaseLoad& base, double budget_w,
        const std::vector<double>& scales, const std::vector<std::size_t>& offsets)
        : m_c(c), m_model(model), m_base(base), m_budget_w(budget_w) {
        m_nodes.resize(static_cast<std::size_t>(c.nodes));
        for (std::size_t i = 0; i < m_nodes.size(); ++i) {
            m_nodes[i].load_scale = scales[i];
            m_nodes[i].offset = offsets[i];
            m_nodes[i].budget_w = model.min_w();
        }
    }

    [[nodiscard]] double offered(std::size_t i, double t) const {
        const std::size_t n = m_base.tok_s.size();
        const auto s = (static_cast<std::size_t>(t) + m_nodes[i].offset) % n;
        return m_nodes[i].load_scale * m_base.tok_s[s];
    }

    /// One step of every node at the budgets in force.
    void step(double t, ClusterSimPolicyResult& r, bool enforce_budget) {
        const double dt = m_c.step_s;
        double power = 0.0;
        double budgets = 0.0;
        for (std::size_t i = 0; i < m_nodes.size(); ++i) {
            SimNode& n = m_nodes[i];
            const double lambda = offered(i, t);
            const double want = lambda + n.backlog / dt;
            // The node's own controller: the lowest cap that serves its demand within the SLO.
            n.control_tok_s += kControlSmoothing * (want - n.control_tok_s);
            n.window_peak_tok_s = std::max(n.window_peak_tok_s, n.control_tok_s);
            const double cap_w = std::min(
                n.budget_w, m_model.budget_for(kControlHeadroom * n.control_tok_s, m_c.slo_tpot_s));
            const NodeModel::Operation o = m_model.operate(cap_w, want);
            const double offered_tokens = lambda * dt;
            const double delay_s = o.max_tok_s > 0.0 ? n.backlog / o.max_tok_s : 1e9;
            if (offered_tokens > 0.0 && (delay_s > m_c.slo_ttft_s || o.step_s > m_c.slo_tpot_s)) {
                m_violating += offered_tokens;
            }
            n.backlog = std::max(0.0, n.backlog + offered_tokens - o.served_tok_s * dt);
            n.offered_window += offered_tokens;
            n.window_s += dt;
            r.offered_tokens += offered_tokens;
            r.served_tokens += o.served_tok_s * dt;
            r.energy_j += o.power_w * dt;
            power += o.power_w;
            budgets += n.budget_w;
        }
        r.max_power_w = std::max(r.max_power_w, power);
        if (enforce_budget) {
            r.max_caps_over_budget_w = std::max(r.max_caps_over_budget_w, budgets - m_budget_w);
        }
    }

    void finish(ClusterSimPolicyResult& r) const {
        r.tokens_per_j = r.energy_j > 0.0 ? r.served_tokens / r.energy_j : 0.0;
        r.qos_violation_rate = r.offered_tokens > 0.0 ? m_violating / r.offered_tokens : 0.0;
        for (const SimNode& n : m_nodes) {
            r.backlog_tokens += n.backlog;
        }
    }

    std::vector<SimNode>& nodes() { return m_nodes; }

private:
    const ClusterSimConfig& m_c;
    const NodeModel& m_model;
    const BaseLoad& m_base;
    double m_budget_w;
    std::vector<SimNode> m_nodes;
    double m_violating = 0.0;
};

ClusterSimPolicyResult run_fixed(const std::string& name, Run& run, const ClusterSimConfig& c,
                                 const std::vector<double>& budgets, bool enforce) {
    const auto t0 = std::chrono::steady_clock::now();
    ClusterSimPolicyResult r;
    r.policy = name;
    for (std::size_t i = 0; i < run.nodes().size(); ++i) {
        run.nodes()[i].budget_w = budgets[i];
    }
    for (double t = 0.0; t < c.duration_s; t += c.step_s) {
        run.step(t, r, enforce);
    }
    run.finish(r);
    r.wall_s = wall_since(t0);
    return r;
}

ClusterSimPolicyResult run_pals(Run& run, const ClusterSimConfig& c, const NodeModel& model,
                                double budget_w) {
    const auto t0 = std::chrono::steady_clock::now();
    ClusterSimPolicyResult r;
    r.policy = "pals-cluster";
    ManualClock clock;
    InMemoryClusterStore store(clock);
    std::vector<std::unique_ptr<SimNodePort>> ports;
    std::vector<std::unique_ptr<ClusterAgent>> agents;
    for (std::size_t i = 0; i < run.nodes().size(); ++i) {
        ports.push_back(std::make_unique<SimNodePort>(run.nodes()[i], model, c));
        AgentOptions o;
        o.cluster = "sim";
        o.node = fmt::format("node{:04}", i);
        o.period = Seconds(c.period_s);
        o.poll = Seconds(c.period_s / 2.0);
        o.lease_ttl_s = static_cast<std::int64_t>(std::ceil(3.0 * c.period_s));
        o.floor_w = model.min_w();
        o.max_w = model.max_w();
        o.spare_margin = c.spare_margin;
        agents.push_back(std::make_unique<ClusterAgent>(store, clock, *ports.back(), o));
    }
    if (Status s = agents.front()->set_cluster_budget(budget_w); !s.is_ok()) {
        r.policy += " (" + s.message() + ")";
        return r;
    }
    const double poll_s = c.period_s / 2.0;
    double next_poll = 0.0;
    double round_total_s = 0.0;
    for (double t = 0.0; t < c.duration_s; t += c.step_s) {
        if (t >= next_poll) {
            for (const auto& agent : agents) {
                const std::uint64_t rounds = agent->snapshot().rounds_total;
                agent->step();
                if (agent->snapshot().rounds_total != rounds) {
                    ++r.rounds;
                    round_total_s += agent->snapshot().last_round_s;
                    r.round_max_s = std::max(r.round_max_s, agent->snapshot().last_round_s);
                }
            }
            next_poll += poll_s;
        }
        run.step(t, r, true);
        clock.advance(Seconds(c.step_s));
    }
    run.finish(r);
    r.round_mean_s = r.rounds > 0 ? round_total_s / static_cast<double>(r.rounds) : 0.0;
    r.store_writes = store.writes_total();
    r.wall_s = wall_since(t0);
    return r;
}

}  // namespace

Result<ClusterSimReport> run_cluster_sim(const ClusterSimConfig& c) {
    if (c.nodes < 1 || c.gpus_per_node < 1 || c.tp < 1 || c.gpus_per_node % c.tp != 0) {
        return Status::invalid_argument("cluster: nodes >= 1, and gpus_per_node a multiple of tp");
    }
    if (!(c.duration_s > 0.0) || !(c.step_s > 0.0) || !(c.period_s >= c.step_s)) {
        return Status::invalid_argument("cluster: duration_s > 0 and period_s >= step_s > 0");
    }
    ClusterSimReport report;
    report.config = c;
    const auto t_cal = std::chrono::steady_clock::now();
    PALS_ASSIGN_OR_RETURN(const BaseLoad base, base_load(c));
    PALS_ASSIGN_OR_RETURN(const NodeModel model,
                          NodeModel::calibrate(c, base.in_per_out, base.mean_in, base.mean_out));
    report.calibration_s = wall_since(t_cal);
    report.node_min_w = model.min_w();
    report.node_max_w = model.max_w();
    report.node_max_tok_s = model.operate(model.max_w(), 1e12).max_tok_s;
    report.budget_w = c.budget_share * model.max_w() * c.nodes;
    if (report.budget_w < model.min_w() * c.nodes) {
        return Status::invalid_argument(
            fmt::format("cluster: budget_share {:g} is below the nodes' minimum ({:g})",
                        c.budget_share, model.min_w() / model.max_w()));
    }

    // Per-node load: lognormal skew (mean 1) and a random offset into the trace.
    std::mt19937_64 rng(c.seed);
    std::lognormal_distribution<double> skew(0.0, c.load_skew_sigma);
    std::vector<double> scales(static_cast<std::size_t>(c.nodes));
    for (double& s : scales) {
        s = skew(rng);
    }
    const double mean_scale = std::accumulate(scales.begin(), scales.end(), 0.0) / c.nodes;
    const double to_tok_s = c.mean_utilization * report.node_max_tok_s / base.mean;
    for (double& s : scales) {
        s *= to_tok_s / mean_scale;
    }
    std::uniform_int_distribution<std::size_t> offset(0, base.tok_s.size() - 1);
    std::vector<std::size_t> offsets(static_cast<std::size_t>(c.nodes));
    for (std::size_t& o : offsets) {
        o = offset(rng);
    }

    for (const std::string& policy : c.policies) {
        Run run(c, model, base, report.budget_w, scales, offsets);
        const std::size_t n = static_cast<std::size_t>(c.nodes);
        if (policy == "pals-cluster") {
            report.results.push_back(run_pals(run, c, model, report.budget_w));
        } else if (policy == "even") {
            report.results.push_back(
                run_fixed(policy, run, c, std::vector<double>(n, report.budget_w / c.nodes), true));
        } else if (policy == "static") {
            // Each node's mean load over the run, known in hindsight.
            std::vector<double> mean_load(n, 0.0);
            for (std::size_t i = 0; i < n; ++i) {
                for (double t = 0.0; t < c.duration_s; t += c.step_s) {
                    mean_load[i] += run.offered(i, t);
                }
            }
            report.results.push_back(run_fixed(
                policy, run, c,
                proportional(mean_load, model.min_w(), model.max_w(), report.budget_w), true));
        } else if (policy == "uncapped") {
            report.results.push_back(
                run_fixed(policy, run, c, std::vector<double>(n, model.max_w()), false));
        } else {
            return Status::invalid_argument("cluster: unknown policy '" + policy +
                                            "' (known: pals-cluster, even, static, uncapped)");
        }
    }
    return report;
}

std::string cluster_sim_table(const ClusterSimReport& r) {
    const ClusterSimConfig& c = r.config;
    std::string out = fmt::format(
        "cluster: {} nodes x {} {} ({} TP{}), {:.0f} s of traffic, budget {:.0f} kW "
        "({:.0f} % of {:.0f} kW), load skew sigma {:g}, mean utilization {:.0f} %\n"
        "node: {:.0f}-{:.0f} W, {:.0f} tok/s at its maximum; calibration {:.2f} s\n\n",
        c.nodes, c.gpus_per_node, c.gpu, std::filesystem::path(c.model_config).stem().string(),
        c.tp, c.duration_s, r.budget_w / 1e3, 100.0 * c.budget_share, r.node_max_w * c.nodes / 1e3,
        c.load_skew_sigma, 100.0 * c.mean_utilization, r.node_min_w, r.node_max_w, r.node_max_tok_s,
        r.calibration_s);
    out +=
        fmt::format("{:<14}{:>10}{:>10}{:>13}{:>13}{:>11}{:>12}{:>10}{:>9}\n", "policy", "tok/J",
                    "vs even", "QoS viol %", "served %", "max kW", "round ms", "rounds", "wall s");
    const ClusterSimPolicyResult* even = nullptr;
    for (const ClusterSimPolicyResult& p : r.results) {
        if (p.policy == "even") {
            even = &p;
        }
    }
    for (const ClusterSimPolicyResult& p : r.results) {
        out += fmt::format(
            "{:<14}{:>10.3f}{:>10}{:>13.2f}{:>13.2f}{:>11.1f}{:>12}{:>10}{:>9.2f}\n", p.policy,
            p.tokens_per_j,
            even != nullptr && even->tokens_per_j > 0.0
                ? fmt::format("{:+.1f}%", 100.0 * (p.tokens_per_j / even->tokens_per_j - 1.0))
                : std::string("-"),
            100.0 * p.qos_violation_rate,
            p.offered_tokens > 0.0 ? 100.0 * p.served_tokens / p.offered_tokens : 0.0,
            p.max_power_w / 1e3,
            p.rounds > 0 ? fmt::format("{:.2f}", 1e3 * p.round_mean_s) : std::string("-"), p.rounds,
            p.wall_s);
    }
    return out;
}

std::string cluster_sim_json(const ClusterSimReport& r) {
    using nlohmann::json;
    json results = json::array();
    for (const ClusterSimPolicyResult& p : r.results) {
        results.push_back({{"policy", p.policy},
                           {"offered_tokens", p.offered_tokens},
                           {"served_tokens", p.served_tokens},
                           {"energy_j", p.energy_j},
                           {"tokens_per_j", p.tokens_per_j},
                           {"qos_violation_rate", p.qos_violation_rate},
                           {"max_power_w", p.max_power_w},
                           {"max_caps_over_budget_w", p.max_caps_over_budget_w},
                           {"backlog_tokens", p.backlog_tokens},
                           {"rounds", p.rounds},
                           {"round_mean_s", p.round_mean_s},
                           {"round_max_s", p.round_max_s},
                           {"store_writes", p.store_writes},
                           {"wall_s", p.wall_s}});
    }
    const ClusterSimConfig& c = r.config;
    return json{{"nodes", c.nodes},
                {"gpus_per_node", c.gpus_per_node},
                {"gpu", c.gpu},
                {"model_config", c.model_config},
                {"tp", c.tp},
                {"trace", c.trace},
                {"duration_s", c.duration_s},
                {"budget_share", c.budget_share},
                {"budget_w", r.budget_w},
                {"mean_utilization", c.mean_utilization},
                {"load_skew_sigma", c.load_skew_sigma},
                {"period_s", c.period_s},
                {"spare_margin", c.spare_margin},
                {"step_s", c.step_s},
                {"node_min_w", r.node_min_w},
                {"node_max_w", r.node_max_w},
                {"node_max_tok_s", r.node_max_tok_s},
                {"calibration_s", r.calibration_s},
                {"results", results}}
        .dump(2);
}

}  // namespace pals::cluster
