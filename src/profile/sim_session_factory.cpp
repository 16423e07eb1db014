#include "pals/profile/sim_session_factory.hpp"

#include <algorithm>
#include <cmath>

#include "pals/sim/cost_model.hpp"
#include "pals/sim/gpu_physics.hpp"
#include "pals/sim/simulated_node.hpp"

namespace pals::profile {

namespace {

/// Requests offered beyond the decode-rate bound (the bound ignores prefill, which only slows
/// the engine down, so this margin is for the bound's other approximations).
constexpr double kRequestSafetyFactor = 1.5;
/// Each retry of an unsaturated point offers this many times more requests.
constexpr int kRetryGrowth = 4;
/// Upper bound on one closed loop (memory: about 100 bytes per request in the simulator).
constexpr double kMaxRequests = 5e6;

/// A fresh simulated node; the profiler sees only its interfaces.
class SimSession final : public ProfileSession {
public:
    explicit SimSession(std::unique_ptr<sim::SimulatedNode> node) : m_node(std::move(node)) {}
    [[nodiscard]] Clock& clock() override { return m_node->clock(); }
    [[nodiscard]] power::GpuBackend& gpus() override { return m_node->gpus(); }
    [[nodiscard]] engine::ServingEngine& engine() override { return m_node->engine(0); }

private:
    std::unique_ptr<sim::SimulatedNode> m_node;
};

}  // namespace

Result<std::unique_ptr<SimSessionFactory>> SimSessionFactory::create(sim::NodeConfig node,
                                                                     MeasureSettings measure,
                                                                     int max_batch_cap) {
    node.replicas = 1;
    node.engine.max_num_seqs = std::max(node.engine.max_num_seqs, max_batch_cap);
    // Validate the layout once (the model fits, EP divides the experts) rather than per point.
    PALS_RETURN_IF_ERROR(sim::Simulator::create(node, {}).status());
    ModelShape shape =
        model_shape_of(node.model, node.gpu.name, node.parallel.tp, node.parallel.ep);
    return std::unique_ptr<SimSessionFactory>(
        new SimSessionFactory(std::move(node), measure, std::move(shape)));
}

SimSessionFactory::SimSessionFactory(sim::NodeConfig node, MeasureSettings measure,
                                     ModelShape shape)
    : m_node(std::move(node)), m_measure(measure), m_shape(std::move(shape)) {}

int SimSessionFactory::requests_needed(const WorkloadMix& mix, const SweepPoint& point) const {
    const int batch = std::max(1, point.batch_cap);
    const double out_tokens = std::max(1.0, mix.mean_output_tokens());
    const double context = mix.mean_input_tokens() + out_tokens / 2.0;
    // The fastest a pure-decode step of `batch` sequences can be: at the maximum cap.
    double step_s = 1e-3;
    Result<sim::StepCostModel> cost =
        sim::StepCostModel::create(m_node.model, m_node.gpu, m_node.parallel);
    if (cost.is_ok()) {
        sim::StepShape shape;
        shape.decode_seqs = batch;
        shape.logits = batch;
        shape.decode_ctx_full = batch * context;
        const double window = m_node.model.sliding_window;
        shape.decode_ctx_local = window > 0 ? batch * std::min(context, window) : 0.0;
        const sim::GpuPhysics physics(m_node.gpu, m_node.model.dtype);
        step_s = std::max(
            1e-4,
            physics.run_step(cost->step_work(shape), m_node.gpu.power_limit_max_w).duration_s);
    }
    const double horizon_s = (m_measure.warmup + m_measure.window).count();
    const double requests =
        batch + kRequestSafetyFactor * batch * horizon_s / (step_s * out_tokens) + batch;
    return static_cast<int>(std::min(kMaxRequests, std::ceil(requests)));
}

Result<std::unique_ptr<ProfileSession>> SimSessionFactory::open(const WorkloadMix& mix,
                                                                const SweepPoint& point,
                                                                int attempt) {
    double n = requests_needed(mix, point);
    for (int i = 0; i < attempt; ++i) {
        n *= kRetryGrowth;
    }
    n = std::min(n, kMaxRequests);
    PALS_ASSIGN_OR_RETURN(
        std::unique_ptr<sim::SimulatedNode> node,
        sim::SimulatedNode::create(m_node,
                                   mix.closed_loop_requests(static_cast<int>(n), point.batch_cap)));
    return std::unique_ptr<ProfileSession>(std::make_unique<SimSession>(std::move(node)));
}

}  // namespace pals::profile
