#pragma once
/// @file sim_session_factory.hpp
/// @brief Profiling on the simulator: each point gets a fresh SimulatedNode (one replica, the
/// measured group) saturated by a closed loop of requests from the workload mix, long enough to
/// outlast warm-up + window. The profiler then drives it through the same interfaces as a live
/// node (SimulatedNode's clock, GPU backend and engine).
///
/// Thread-safety: not thread-safe.

#include <memory>
#include <string>

#include "pals/profile/profiler.hpp"
#include "pals/sim/simulator.hpp"

namespace pals::profile {

class SimSessionFactory final : public SessionFactory {
public:
    /// @param node     the node to simulate; `replicas` is forced to 1 (a profile describes one
    ///                 group) and engine.max_num_seqs raised to at least `max_batch_cap`.
    /// @param measure  warm-up and window, to size the closed loop.
    [[nodiscard]] static Result<std::unique_ptr<SimSessionFactory>> create(sim::NodeConfig node,
                                                                           MeasureSettings measure,
                                                                           int max_batch_cap);

    [[nodiscard]] std::string backend_name() const override { return "simulated"; }
    [[nodiscard]] ModelShape model_shape() const override { return m_shape; }
    [[nodiscard]] Result<std::unique_ptr<ProfileSession>> open(const WorkloadMix& mix,
                                                               const SweepPoint& point,
                                                               int attempt) override;
    /// Each retry offers 4x the requests of the previous one.
    [[nodiscard]] int max_attempts() const override { return 3; }

    /// Requests a closed loop needs for `point` to stay saturated through warm-up + window:
    /// an upper bound on the decode rate at the maximum cap (from the simulator's cost model)
    /// with a safety factor, plus the batch itself.
    [[nodiscard]] int requests_needed(const WorkloadMix& mix, const SweepPoint& point) const;

    [[nodiscard]] const sim::NodeConfig& node() const { return m_node; }

private:
    SimSessionFactory(sim::NodeConfig node, MeasureSettings measure, ModelShape shape);

    sim::NodeConfig m_node;
    MeasureSettings m_measure;
    ModelShape m_shape;
};

}  // namespace pals::profile
