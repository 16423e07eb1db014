#pragma once
/// @file cost_model.hpp
/// @brief What one engine step costs one GPU of a replica: FLOPs and HBM bytes per kernel
/// class, from the model's shape, the parallel layout and the batch (DESIGN.md 1.3).
///
/// A replica is `tp` GPUs. Attention, dense MLPs, shared experts and the LM head are
/// tensor-parallel over them. Routed experts are tensor-parallel too (ep == 1) or, with expert
/// parallelism (ep == tp, vLLM's --enable-expert-parallel), split whole across the GPUs; then
/// the busiest GPU sets the step time. MoE weight bytes per step follow the expected number of
/// distinct experts touched, D(n) = sum_i (1 - (1 - q_i)^n), with Zipf(s) expert popularity q.
///
/// Thread-safety: const methods are not thread-safe (a lazily filled cache); use one per thread.

#include <vector>

#include "pals/common/status.hpp"
#include "pals/model/model_spec.hpp"
#include "pals/sim/gpu_physics.hpp"

namespace pals::sim {

/// How a replica's model is laid out over its GPUs.
struct ParallelConfig {
    int tp = 1;                 ///< GPUs per replica (tensor-parallel degree of attention)
    int ep = 1;                 ///< 1: experts tensor-parallel; tp: experts expert-parallel
    double routing_skew = 0.0;  ///< Zipf exponent of expert popularity (0 = uniform)
};

/// The shape of one engine step over the whole replica.
struct StepShape {
    int decode_seqs = 0;               ///< sequences generating one token
    int prefill_tokens = 0;            ///< prompt tokens computed this step (all chunks)
    int logits = 0;                    ///< sequences whose last token is sampled (LM head rows)
    double decode_ctx_full = 0.0;      ///< sum over decode seqs of context length
    double decode_ctx_local = 0.0;     ///< same, each capped at the sliding window
    double prefill_pairs_full = 0.0;   ///< sum over prefill chunks of (query, key) pairs
    double prefill_pairs_local = 0.0;  ///< same, keys limited to the sliding window
    double prefill_ctx_full = 0.0;     ///< KV tokens read by prefill chunks (context + chunk)
    double prefill_ctx_local = 0.0;    ///< same, capped at the window

    [[nodiscard]] int tokens() const { return decode_seqs + prefill_tokens; }
};

/// Per-GPU costs of steps for one (model, GPU, layout).
class StepCostModel {
public:
    /// Validates the layout (tp >= 1, ep in {1, tp}, MoE experts divisible by ep).
    [[nodiscard]] static Result<StepCostModel> create(const model::ModelSpec& model,
                                                      const GpuSpec& gpu,
                                                      const ParallelConfig& parallel);

    /// The work of the busiest GPU for a step of this shape.
    [[nodiscard]] StepWork step_work(const StepShape& shape) const;

    /// Weight bytes held by one GPU (the largest share).
    [[nodiscard]] double weight_bytes_per_gpu() const { return m_weight_bytes_per_gpu; }
    /// KV-cache bytes one token occupies on one GPU.
    [[nodiscard]] double kv_bytes_per_token_per_gpu() const { return m_kv_bytes_per_token_per_gpu; }
    /// Expected distinct experts touched per MoE layer by n routed tokens (whole replica).
    [[nodiscard]] double distinct_experts(int tokens) const;
    [[nodiscard]] const ParallelConfig& parallel() const { return m_parallel; }

private:
    struct RoutingEntry {
        double distinct_busiest = -1.0;  ///< distinct experts on the busiest GPU (-1: not computed)
        double token_share_busiest = 0.0;  ///< share of routed tokens on the busiest GPU
        double distinct_total = 0.0;
    };
    StepCostModel() = default;
    const RoutingEntry& routing(int tokens) const;

    model::ModelSpec m_model;
    GpuSpec m_gpu;
    ParallelConfig m_parallel;
    std::vector<double> m_expert_popularity;  ///< q_i, sums to experts_per_token
    std::vector<int> m_expert_rank;           ///< GPU that holds expert i (EP)
    mutable std::vector<RoutingEntry> m_routing_cache;

    // Precomputed per-GPU constants.
    double m_dense_params_per_token = 0;  ///< GEMM weights every token multiplies (per GPU)
    double m_dense_weight_bytes = 0;      ///< bytes of those weights (per GPU)
    double m_lm_head_params = 0;          ///< per GPU
    double m_expert_bytes = 0;            ///< one expert's weight bytes on one GPU (TP share)
    double m_expert_params_gpu = 0;       ///< one expert's params on one GPU (TP share)
    double m_kv_bytes_per_token_per_gpu = 0;
    double m_kv_layer_bytes_per_gpu = 0;  ///< one token, one layer, one GPU
    double m_attn_flops_pair_gpu = 0;     ///< one (q, k) pair, one layer, one GPU
    double m_weight_bytes_per_gpu = 0;
    double m_allreduce_fixed_s = 0;
    double m_allreduce_s_per_token = 0;
    int m_full_layers = 0;
    int m_local_layers = 0;
};

}  // namespace pals::sim
