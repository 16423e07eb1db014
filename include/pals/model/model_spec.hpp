#pragma once
/// @file model_spec.hpp
/// @brief The shape of a transformer model as the cost model needs it, read from a Hugging Face
/// `config.json` (dense, GQA, MoE, MLA, sliding window).
///
/// Counts are in parameters (weights) or elements; bytes come from the dtype fields. Everything
/// here is per replica of the whole model (not per GPU): the engine divides by TP/EP.

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "pals/common/status.hpp"

namespace pals::model {

/// Precision the tensor cores multiply the weights in. Weight-only quantization (W4A16, W8A16:
/// GPTQ, AWQ, compressed-tensors without activation quantization) dequantizes inside the kernel
/// and multiplies in 16 bits: kBf16, with fewer storage bytes (ModelSpec::weight_bytes).
enum class WeightDtype {
    kBf16,  ///< 16-bit activations (bf16/fp16), whatever the storage
    kFp8,   ///< FP8 weights and activations (W8A8-FP8)
    kInt8,  ///< INT8 weights and activations (W8A8-INT8)
};

/// Parses "bf16"/"bfloat16"/"fp16"/"float16" -> kBf16, "fp8"/"float8" -> kFp8 and
/// "int8"/"w8a8" -> kInt8 (as an override: 1 byte per weight for the 8-bit ones).
[[nodiscard]] Result<WeightDtype> parse_weight_dtype(std::string_view text);

/// How attention stores its KV cache.
enum class AttentionKind {
    kMultiHead,  ///< MHA, GQA and MQA: K and V per KV head
    kLatent,     ///< MLA (DeepSeek V2/V3): one compressed latent plus a RoPE key per token
};

/// A model's dimensions and parameter counts, by component.
struct ModelSpec {
    std::string name;          ///< short name (file stem or `_name_or_path`)
    std::string architecture;  ///< the first entry of `architectures`
    std::string model_type;    ///< `model_type` of the (text) config

    int num_layers = 0;
    int hidden_size = 0;
    int num_attention_heads = 0;
    int num_kv_heads = 0;  ///< 1 for MLA: one latent shared by all heads (replicated under TP)
    int head_dim = 0;      ///< MLA: qk_nope_head_dim + qk_rope_head_dim
    int vocab_size = 0;
    int max_position_embeddings = 0;  ///< 0 when the config does not say

    WeightDtype dtype = WeightDtype::kBf16;  ///< matmul precision (not the storage)
    double weight_bytes = 2.0;         ///< bytes per weight of attention and dense FFN layers,
                                       ///< group scales and zero points included
    double expert_weight_bytes = 2.0;  ///< bytes per weight of routed experts (MXFP4 differs)
    /// Bytes per weight of the embedding table and lm_head: vLLM keeps both in 16 bits under
    /// every quantization method it loads (they are not linear layers it quantizes).
    double embedding_weight_bytes = 2.0;
    double kv_cache_bytes = 2.0;  ///< bytes per KV-cache element (vLLM default: model dtype)

    // ---- attention ----
    AttentionKind attention = AttentionKind::kMultiHead;
    double attn_params_per_layer = 0;         ///< all attention projection weights of one layer
    double kv_elems_per_token_per_layer = 0;  ///< KV-cache elements one token adds to one layer
    /// FLOPs of the attention kernel for one (query token, cached token) pair in one layer:
    /// QK^T plus score x V, i.e. 2 * heads * (qk_dim + v_dim).
    double attn_flops_per_pair_per_layer = 0;
    int sliding_window = 0;      ///< tokens a local layer attends to; 0 when no layer is local
    int num_sliding_layers = 0;  ///< how many of num_layers use the window (the rest are global)

    // ---- feed-forward ----
    int num_dense_layers = 0;         ///< layers with a dense MLP
    double dense_ffn_params = 0;      ///< weights of one dense MLP
    int num_moe_layers = 0;           ///< layers with routed experts
    int num_experts = 0;              ///< routed experts per MoE layer
    int experts_per_token = 0;        ///< top-k
    double expert_params = 0;         ///< weights of one routed expert
    double shared_expert_params = 0;  ///< always-active weights per MoE layer (shared experts)
    double router_params = 0;         ///< gate weights per MoE layer

    // ---- embeddings ----
    double embedding_params = 0;  ///< input embedding table (read sparsely: not streamed per step)
    double lm_head_params = 0;    ///< output projection (streamed every step, even when tied)
    bool tie_word_embeddings = false;

    [[nodiscard]] bool is_moe() const { return num_moe_layers > 0 && num_experts > 0; }
    /// All parameters (embedding counted once when tied).
    [[nodiscard]] double total_params() const;
    /// Parameters used for one token: attention, dense FFN, shared and top-k experts, lm_head.
    [[nodiscard]] double active_params() const;
    /// Bytes of all weights held in GPU memory for one replica.
    [[nodiscard]] double weight_bytes_total() const;
    /// KV-cache bytes one token occupies over all layers (local layers included).
    [[nodiscard]] double kv_bytes_per_token() const;
};

/// Builds a ModelSpec from the text of a Hugging Face config.json. `source` names the file in
/// errors ("<source>: missing field 'hidden_size'"). `dtype` overrides the config's precision
/// (its `quantization_config` or `torch_dtype`).
[[nodiscard]] Result<ModelSpec> parse_model_spec(std::string_view json_text,
                                                 std::string_view source,
                                                 std::optional<WeightDtype> dtype = std::nullopt);

/// Reads and parses a config.json file; the model name is the file stem.
[[nodiscard]] Result<ModelSpec> load_model_spec(const std::filesystem::path& path,
                                                std::optional<WeightDtype> dtype = std::nullopt);

}  // namespace pals::model
