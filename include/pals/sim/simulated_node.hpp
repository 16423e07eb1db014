#pragma once
/// @file simulated_node.hpp
/// @brief The simulator behind the same interfaces as a real node: a power::GpuBackend for the
/// GPUs, one engine::ServingEngine per replica, and a Clock whose sleep_until() advances the
/// simulation. Profiler and controller code written against those interfaces runs unchanged on
/// it (DESIGN.md 1: "the controller, the profiler and the model do not know").
///
/// GPU g belongs to replica g / tp. Power limits set on the backend take effect on the
/// simulated GPUs at the next advance (a TP group runs at its lowest member's limit, as the
/// slowest GPU sets a synchronous step); what each GPU drew is recorded back into the backend
/// after every advance, so its energy counters and power readings follow the simulation.
///
/// Thread-safety: not thread-safe (the GPU backend alone is, for concurrent readers).

#include <memory>
#include <vector>

#include "pals/common/clock.hpp"
#include "pals/engine/serving_engine.hpp"
#include "pals/sim/simulated_gpu_backend.hpp"
#include "pals/sim/simulator.hpp"

namespace pals::sim {

class SimulatedNode {
public:
    /// Builds the simulator and a backend of replicas x tp GPUs.
    [[nodiscard]] static Result<std::unique_ptr<SimulatedNode>> create(
        const NodeConfig& node, std::vector<workload::Request> requests, SloTargets slo = {});
    ~SimulatedNode();
    SimulatedNode(const SimulatedNode&) = delete;
    SimulatedNode& operator=(const SimulatedNode&) = delete;

    /// Simulated time: now() is the simulation's; sleep_until(t) advances it to t.
    [[nodiscard]] Clock& clock();
    [[nodiscard]] SimulatedGpuBackend& gpus();
    [[nodiscard]] engine::ServingEngine& engine(int replica);
    [[nodiscard]] int replica_count() const;
    [[nodiscard]] Simulator& simulator();
    [[nodiscard]] const Simulator& simulator() const;

    /// Applies the backend's limits, runs the simulation to `t_s`, records GPU energy.
    void advance_to(double t_s);

private:
    class SimClock;
    class SimEngine;
    SimulatedNode(Simulator simulator, sim::GpuSpec gpu);

    Simulator m_simulator;
    SimulatedGpuBackend m_gpus;
    std::unique_ptr<SimClock> m_clock;
    std::vector<std::unique_ptr<SimEngine>> m_engines;
    std::vector<double> m_replica_energy_j;  ///< at the last advance
};

/// A Prometheus-style cumulative histogram of a simulator latency histogram.
[[nodiscard]] engine::CumulativeHistogram to_cumulative(const LatencyHistogram& histogram);

}  // namespace pals::sim
