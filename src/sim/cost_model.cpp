#include "pals/sim/cost_model.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "pals/common/hash.hpp"

namespace pals::sim {

namespace {

/// Bytes of one activation element moved by all-reduce (bf16 activations).
constexpr double kActivationBytes = 2.0;
/// All-reduces per layer: after attention and after the MLP / MoE block.
constexpr int kAllReducesPerLayer = 2;
/// Seed of the fixed expert-to-GPU permutation (popularity is unrelated to expert ids).
constexpr std::uint64_t kExpertPlacementSeed = 0x9E3779B97F4A7C15ULL;

/// Expected maximum of k independent standard normal variables (exact for k <= 8, Blom's
/// approximation beyond).
double expected_max_standard_normal(int k) {
    static constexpr double kTable[] = {0.0,    0.0,    0.5642, 0.8463, 1.0294,
                                        1.1630, 1.2672, 1.3522, 1.4236};
    if (k < static_cast<int>(std::size(kTable))) {
        return kTable[std::max(k, 0)];
    }
    return std::sqrt(2.0 * std::log(static_cast<double>(k))) -
           0.5 * std::log(std::log(static_cast<double>(k))) /
               std::sqrt(2.0 * std::log(static_cast<double>(k)));
}

std::vector<int> expert_placement(int experts, int ranks) {
    std::vector<int> order(static_cast<std::size_t>(experts));
    std::iota(order.begin(), order.end(), 0);
    std::uint64_t state = kExpertPlacementSeed;
    for (int i = experts - 1; i > 0; --i) {  // Fisher-Yates with a fixed splitmix64 stream
        state += kSplitmixGamma;
        const std::uint64_t z = mix64(state);
        const auto j = static_cast<int>(z % static_cast<std::uint64_t>(i + 1));
        std::swap(order[static_cast<std::size_t>(i)], order[static_cast<std::size_t>(j)]);
    }
    // Expert with popularity rank p sits at position order[p]; positions are split contiguously.
    const int per_rank = experts / ranks;
    std::vector<int> rank_of(static_cast<std::size_t>(experts));
    for (int p = 0; p < experts; ++p) {
        rank_of[static_cast<std::size_t>(p)] = order[static_cast<std::size_t>(p)] / per_rank;
    }
    return rank_of;
}

}  // namespace

Result<StepCostModel> StepCostModel::create(const model::ModelSpec& model, const GpuSpec& gpu,
                                            const ParallelConfig& parallel) {
    if (parallel.tp < 1) {
        return Status::invalid_argument("tp must be >= 1 (got " + std::to_string(parallel.tp) +
                                        ")");
    }
    if (parallel.ep != 1 && parallel.ep != parallel.tp) {
        return Status::invalid_argument(
            "ep must be 1 or equal to tp (vLLM's expert parallelism "
            "spans the tensor-parallel GPUs); got tp=" +
            std::to_string(parallel.tp) + " ep=" + std::to_string(parallel.ep));
    }
    if (parallel.ep > 1 && !model.is_moe()) {
        return Status::invalid_argument("ep > 1 needs an MoE model; " + model.name + " is dense");
    }
    if (parallel.ep > 1 && model.num_experts % parallel.ep != 0) {
        return Status::invalid_argument(
            "ep=" + std::to_string(parallel.ep) + " does not divide the " +
            std::to_string(model.num_experts) + " experts of " + model.name);
    }
    if (parallel.routing_skew < 0.0) {
        return Status::invalid_argument("routing skew must be >= 0");
    }
    StepCostModel m;
    m.m_model = model;
    m.m_gpu = gpu;
    m.m_parallel = parallel;
    const double tp = parallel.tp;

    m.m_local_layers = model.sliding_window > 0 ? model.num_sliding_layers : 0;
    m.m_full_layers = model.num_layers - m.m_local_layers;

    const double dense_params =
        model.num_layers * model.attn_params_per_layer +
        model.num_dense_layers * model.dense_ffn_params +
        model.num_moe_layers * (model.shared_expert_params + model.router_params);
    m.m_dense_params_per_token = dense_params / tp;
    m.m_lm_head_params = model.lm_head_params / tp;
    m.m_dense_weight_bytes =
        (dense_params * model.weight_bytes + model.lm_head_params * model.embedding_weight_bytes) /
        tp;

    const bool expert_parallel = parallel.ep > 1;
    m.m_expert_params_gpu = expert_parallel ? model.expert_params : model.expert_params / tp;
    m.m_expert_bytes = m.m_expert_params_gpu * model.expert_weight_bytes;
    const double expert_bytes_per_gpu = static_cast<double>(model.num_moe_layers) *
                                        model.num_experts * model.expert_params *
                                        model.expert_weight_bytes / tp;
    const double embedding_bytes = model.tie_word_embeddings
                                       ? 0.0
                                       : model.embedding_params * model.embedding_weight_bytes / tp;
    m.m_weight_bytes_per_gpu = m.m_dense_weight_bytes + embedding_bytes + expert_bytes_per_gpu;

    // KV heads are split across TP ranks, and replicated when tp exceeds them; MLA's latent
    // cache is replicated on every rank.
    double kv_shards = 1.0;
    if (model.attention == model::AttentionKind::kMultiHead) {
        kv_shards = std::min<double>(tp, std::max(1, model.num_kv_heads));
    }
    m.m_kv_layer_bytes_per_gpu =
        model.kv_elems_per_token_per_layer * model.kv_cache_bytes / kv_shards;
    m.m_kv_bytes_per_token_per_gpu = m.m_kv_layer_bytes_per_gpu * model.num_layers;
    m.m_attn_flops_pair_gpu = model.attn_flops_per_pair_per_layer / tp;

    if (parallel.tp > 1) {
        const double ring = 2.0 * (tp - 1.0) / tp;
        const double layers = model.num_layers * kAllReducesPerLayer;
        m.m_allreduce_fixed_s = layers * allreduce_latency_s(gpu, parallel.tp);
        m.m_allreduce_s_per_token =
            layers * ring * model.hidden_size * kActivationBytes / gpu.nvlink_bandwidth_bps;
    }

    if (model.is_moe()) {
        const int experts = model.num_experts;
        std::vector<double> weight(static_cast<std::size_t>(experts));
        double sum = 0.0;
        for (int i = 0; i < experts; ++i) {
            weight[static_cast<std::size_t>(i)] = std::pow(1.0 / (i + 1.0), parallel.routing_skew);
            sum += weight[static_cast<std::size_t>(i)];
        }
        m.m_expert_popularity.resize(static_cast<std::size_t>(experts));
        for (int i = 0; i < experts; ++i) {
            m.m_expert_popularity[static_cast<std::size_t>(i)] =
                std::min(1.0, weight[static_cast<std::size_t>(i)] / sum * model.experts_per_token);
        }
        m.m_expert_rank = expert_placement(experts, parallel.ep);
    }
    return m;
}

const StepCostModel::RoutingEntry& StepCostModel::routing(int tokens) const {
    const auto index = static_cast<std::size_t>(std::max(tokens, 0));
    if (index >= m_routing_cache.size()) {
        m_routing_cache.resize(std::max(index + 1, m_routing_cache.size() * 2));
    }
    RoutingEntry& entry = m_routing_cache[index];
    if (entry.distinct_busiest >= 0.0) {
        return entry;
    }
    // Per GPU, the distinct experts touched is a sum of independent Bernoulli variables and its
    // routed tokens are binomial. Each layer waits for its busiest GPU, so the step pays the
    // expected maximum over GPUs, taken as mean + sigma * (expected max of `ranks` standard
    // normals), never above what the GPU holds.
    const int ranks = m_parallel.ep;
    const std::size_t n_ranks = static_cast<std::size_t>(ranks);
    std::vector<double> mean(n_ranks, 0.0);
    std::vector<double> var(n_ranks, 0.0);
    std::vector<double> share(n_ranks, 0.0);
    std::vector<double> held(n_ranks, 0.0);
    const double n = static_cast<double>(tokens);
    double total = 0.0;
    for (std::size_t i = 0; i < m_expert_popularity.size(); ++i) {
        const double q = m_expert_popularity[i];
        const double touched = 1.0 - std::pow(1.0 - q, n);
        const auto r = static_cast<std::size_t>(m_expert_rank[i]);
        mean[r] += touched;
        var[r] += touched * (1.0 - touched);
        share[r] += q / m_model.experts_per_token;
        held[r] += 1.0;
        total += touched;
    }
    entry.distinct_total = total;
    const double spread = expected_max_standard_normal(ranks);
    const double assignments = n * m_model.experts_per_token;
    entry.distinct_busiest = 0.0;
    entry.token_share_busiest = ranks > 1 ? 0.0 : 1.0;
    for (std::size_t r = 0; r < n_ranks; ++r) {
        entry.distinct_busiest = std::max(entry.distinct_busiest,
                                          std::min(held[r], mean[r] + spread * std::sqrt(var[r])));
        if (ranks > 1 && assignments > 0.0) {
            const double p = share[r];
            const double busiest =
                assignments * p + spread * std::sqrt(assignments * p * (1.0 - p));
            entry.token_share_busiest =
                std::max(entry.token_share_busiest, std::min(1.0, busiest / assignments));
        }
    }
    return entry;
}

double StepCostModel::distinct_experts(int tokens) const {
    if (!m_model.is_moe()) {
        return 0.0;
    }
    return routing(tokens).distinct_total;
}

StepWork StepCostModel::step_work(const StepShape& shape) const {
    StepWork work;
    const double n = shape.tokens();
    if (n <= 0.0) {
        return work;
    }
    const GpuCalibration& cal = m_gpu.calibration;
    // Dense GEMMs: attention projections, dense MLPs, shared experts, router, LM head.
    work.add(2.0 * n * m_dense_params_per_token + 2.0 * shape.logits * m_lm_head_params,
             m_dense_weight_bytes);
    // Routed experts: weights of every distinct expert touched are streamed once.
    int expert_kernel = -1;
    KernelWork mean_expert;
    if (m_model.is_moe()) {
        const RoutingEntry& r = routing(shape.tokens());
        const double layers = m_model.num_moe_layers;
        const double assignments = n * m_model.experts_per_token;
        if (m_parallel.ep > 1) {
            work.add(2.0 * assignments * r.token_share_busiest * m_expert_params_gpu * layers,
                     layers * r.distinct_busiest * m_expert_bytes);
            expert_kernel = work.num_kernels - 1;
            const double ranks = m_parallel.ep;
            mean_expert = KernelWork{2.0 * assignments / ranks * m_expert_params_gpu * layers,
                                     layers * r.distinct_total / ranks * m_expert_bytes, 1.0};
        } else {
            work.add(2.0 * assignments * m_expert_params_gpu * layers,
                     layers * r.distinct_total * m_expert_bytes);
        }
    }
    // Attention kernels: FLOPs over (query, key) pairs, bytes of the KV cache read.
    const double pairs = (shape.decode_ctx_full + shape.prefill_pairs_full) * m_full_layers +
                         (shape.decode_ctx_local + shape.prefill_pairs_local) * m_local_layers;
    const double kv_tokens = (shape.decode_ctx_full + shape.prefill_ctx_full) * m_full_layers +
                             (shape.decode_ctx_local + shape.prefill_ctx_local) * m_local_layers;
    work.add(pairs * m_attn_flops_pair_gpu, kv_tokens * m_kv_layer_bytes_per_gpu,
             cal.attention_efficiency / cal.mem_efficiency);
    // Logits processing and sampling run over the whole vocabulary for each sampled sequence.
    work.scaled_busy_s = shape.logits * m_model.vocab_size * cal.sample_s_per_vocab;

    double moe_overhead = 0.0;
    if (m_model.is_moe()) {
        moe_overhead =
            m_model.num_moe_layers *
            (cal.moe_layer_overhead_s + 2.0 * cal.ep_layer_latency_s * std::log2(m_parallel.ep));
    }
    work.wait_s = m_model.num_layers * cal.layer_overhead_s + moe_overhead + m_allreduce_fixed_s +
                  m_allreduce_s_per_token * n;
    work.host_s = cal.step_overhead_s;
    if (expert_kernel >= 0) {
        // Roofline times at f_max on this GPU vs the replica's average GPU.
        const double flops_rate = cal.compute_efficiency * matmul_peak_flops(m_gpu, m_model.dtype);
        const double mem_rate = cal.mem_efficiency * m_gpu.hbm_bandwidth_bps;
        auto kernel_s = [&](const KernelWork& k) {
            return std::max(k.flops / flops_rate, k.bytes / (mem_rate * k.bandwidth_scale));
        };
        double busy = work.scaled_busy_s;
        for (int i = 0; i < work.num_kernels; ++i) {
            busy += kernel_s(work.kernels[static_cast<std::size_t>(i)]);
        }
        const double busiest_expert =
            kernel_s(work.kernels[static_cast<std::size_t>(expert_kernel)]);
        if (busy > 0.0) {
            work.mean_rank_busy_scale =
                std::clamp((busy - busiest_expert + kernel_s(mean_expert)) / busy, 0.0, 1.0);
        }
    }
    return work;
}

}  // namespace pals::sim
