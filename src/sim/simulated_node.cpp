#include "pals/sim/simulated_node.hpp"

#include <algorithm>
#include <limits>

namespace pals::sim {

engine::CumulativeHistogram to_cumulative(const LatencyHistogram& histogram) {
    // Same bounds in every snapshot, so windows difference bucket by bucket.
    const auto& buckets = histogram.buckets();
    engine::CumulativeHistogram out;
    out.upper_bounds.reserve(buckets.size() + 1);
    out.cumulative_counts.reserve(buckets.size() + 1);
    double running = 0.0;
    for (std::size_t i = 0; i < buckets.size(); ++i) {
        running += static_cast<double>(buckets[i]);
        out.upper_bounds.push_back(LatencyHistogram::bucket_upper_bound(i));
        out.cumulative_counts.push_back(running);
    }
    out.upper_bounds.push_back(std::numeric_limits<double>::infinity());
    out.cumulative_counts.push_back(running);
    out.sum = histogram.sum();
    out.count = static_cast<double>(histogram.count());
    return out;
}

class SimulatedNode::SimClock final : public Clock {
public:
    explicit SimClock(SimulatedNode& node) : m_node(node) {}
    [[nodiscard]] Seconds now() const override { return Seconds{m_node.m_simulator.now()}; }
    void sleep_until(Seconds t) override { m_node.advance_to(t.count()); }

private:
    SimulatedNode& m_node;
};

class SimulatedNode::SimEngine final : public engine::ServingEngine {
public:
    SimEngine(SimulatedNode& node, int replica) : m_node(node), m_replica(replica) {}

    [[nodiscard]] std::string_view engine_name() const override { return "simulated"; }

    [[nodiscard]] Result<engine::EngineSnapshot> snapshot() override {
        const Simulator& sim = m_node.m_simulator;
        const ReplicaObservation o = sim.observe(m_replica);
        engine::EngineSnapshot s;
        s.time = Seconds{o.now_s};
        s.running = o.running;
        s.waiting = o.waiting;
        s.kv_cache_usage = o.kv_usage;
        s.batch_cap = o.batch_cap;
        s.step_tokens = o.step_tokens;
        s.prompt_tokens = o.prompt_tokens;
        s.generation_tokens = o.output_tokens;
        s.requests_finished = static_cast<double>(o.completed);
        s.preemptions = static_cast<double>(o.preemptions);
        s.ttft_s = to_cumulative(sim.latency(m_replica, LatencyKind::kTtft));
        s.itl_s = to_cumulative(sim.latency(m_replica, LatencyKind::kItl));
        s.tpot_s = to_cumulative(sim.latency(m_replica, LatencyKind::kTpot));
        s.e2e_s = to_cumulative(sim.latency(m_replica, LatencyKind::kE2e));
        return s;
    }

    [[nodiscard]] int max_batch_cap() const override {
        return m_node.m_simulator.node().engine.max_num_seqs;
    }

    [[nodiscard]] Status set_batch_cap(int batch_cap) override {
        m_node.m_simulator.set_batch_cap(m_replica, batch_cap);
        return Status::ok();
    }

    [[nodiscard]] int max_step_tokens() const override {
        return m_node.m_simulator.node().engine.max_num_batched_tokens;
    }

    [[nodiscard]] Status set_step_tokens(int tokens) override {
        m_node.m_simulator.set_step_tokens(m_replica, tokens);
        return Status::ok();
    }

    [[nodiscard]] std::vector<int> gpus() const override {
        const int tp = m_node.m_simulator.node().parallel.tp;
        std::vector<int> out;
        for (int g = 0; g < tp; ++g) {
            out.push_back(m_replica * tp + g);
        }
        return out;
    }

private:
    SimulatedNode& m_node;
    int m_replica;
};

Result<std::unique_ptr<SimulatedNode>> SimulatedNode::create(
    const NodeConfig& node, std::vector<workload::Request> requests, SloTargets slo) {
    GpuSpec gpu = node.gpu;
    PALS_ASSIGN_OR_RETURN(Simulator sim, Simulator::create(node, std::move(requests), slo));
    std::unique_ptr<SimulatedNode> out(new SimulatedNode(std::move(sim), std::move(gpu)));
    // Start the backend's limits at what the simulator was configured with.
    for (int r = 0; r < out->replica_count(); ++r) {
        const double cap = out->m_simulator.observe(r).power_cap_w;
        for (int g : out->m_engines[static_cast<std::size_t>(r)]->gpus()) {
            PALS_RETURN_IF_ERROR(out->m_gpus.set_power_limit(g, cap).status());
        }
    }
    return out;
}

SimulatedNode::SimulatedNode(Simulator simulator, sim::GpuSpec gpu)
    : m_simulator(std::move(simulator))
    , m_gpus(std::move(gpu), m_simulator.replica_count() * m_simulator.node().parallel.tp)
    , m_clock(std::make_unique<SimClock>(*this)) {
    for (int r = 0; r < m_simulator.replica_count(); ++r) {
        m_engines.push_back(std::make_unique<SimEngine>(*this, r));
        m_replica_energy_j.push_back(0.0);
    }
}

SimulatedNode::~SimulatedNode() = default;

Clock& SimulatedNode::clock() {
    return *m_clock;
}
SimulatedGpuBackend& SimulatedNode::gpus() {
    return m_gpus;
}
engine::ServingEngine& SimulatedNode::engine(int replica) {
    return *m_engines.at(static_cast<std::size_t>(replica));
}
int SimulatedNode::replica_count() const {
    return m_simulator.replica_count();
}
Simulator& SimulatedNode::simulator() {
    return m_simulator;
}
const Simulator& SimulatedNode::simulator() const {
    return m_simulator;
}

void SimulatedNode::advance_to(double t_s) {
    const double start = m_simulator.now();
    if (t_s <= start) {
        return;
    }
    for (int r = 0; r < replica_count(); ++r) {
        double cap = std::numeric_limits<double>::infinity();
        double locked = 0.0;
        for (int g : m_engines[static_cast<std::size_t>(r)]->gpus()) {
            if (Result<double> enforced = m_gpus.enforced_power_limit_w(g); enforced.is_ok()) {
                cap = std::min(cap, enforced.value());
            }
            if (auto lock = m_gpus.locked_sm_clocks(g); lock.is_ok() && lock.value()) {
                locked =
                    locked > 0.0 ? std::min(locked, lock.value()->max_mhz) : lock.value()->max_mhz;
            }
        }
        m_simulator.set_power_cap(r, cap);
        m_simulator.set_locked_clock(r, locked);
    }
    m_simulator.run_until(t_s);
    const double dt = m_simulator.now() - start;
    for (int r = 0; r < replica_count(); ++r) {
        const ReplicaObservation o = m_simulator.observe(r);
        const double energy = o.energy_j - m_replica_energy_j[static_cast<std::size_t>(r)];
        m_replica_energy_j[static_cast<std::size_t>(r)] = o.energy_j;
        const double power = energy / (dt * o.gpus);
        for (int g : m_engines[static_cast<std::size_t>(r)]->gpus()) {
            // Recording cannot fail here: indices and values come from the simulator itself.
            (void)m_gpus.record_interval(
                g, power, o.sm_clock_mhz > 0.0 ? o.sm_clock_mhz : m_gpus.spec().sm_clock_max_mhz,
                dt, throttle_reasons_of(o.clock_limits, o.busy));
        }
    }
}

}  // namespace pals::sim
