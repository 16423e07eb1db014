#include "pals/model/model_spec.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "pals/common/file_util.hpp"
#include "pals/common/json.hpp"
#include "pals/common/json_fields.hpp"

namespace pals::model {

namespace {

using Json = nlohmann::json;

constexpr double kSixteenBitBytes = 2.0;
constexpr double kEightBitBytes = 1.0;
/// MXFP4: 4-bit values plus one 8-bit shared exponent per block of 32 weights.
constexpr double kMxfp4Bytes = 4.25 / 8.0;
/// vLLM's default KV-cache dtype is the model's 16-bit activation dtype, also for FP8 weights.
constexpr double kKvCacheBytes = 2.0;
/// SwiGLU / GeGLU: gate, up and down projections.
constexpr double kGatedMlpMatrices = 3.0;

// Hugging Face defaults, used where a family's config.json routinely leaves a field out.
constexpr int kGemmaDefaultHeadDim = 256;
constexpr int kGemmaDefaultSlidingWindow = 4096;
constexpr int kLlama4DefaultNoRopeInterval = 4;
/// Plain (two-matrix) MLPs default to 4 x hidden (Falcon's ffn_hidden_size, GPT-J's n_inner).
constexpr int kPlainMlpWidthFactor = 4;

/// Gemma3TextConfig's defaults: Gemma 3 checkpoints (the 4B, 12B and 27B `text_config`) leave
/// out whatever equals them, even the head counts.
struct Gemma3TextDefaults {
    static constexpr int kHiddenSize = 2304;
    static constexpr int kIntermediateSize = 9216;
    static constexpr int kNumLayers = 26;
    static constexpr int kNumHeads = 8;
    static constexpr int kNumKvHeads = 4;
    static constexpr int kVocabSize = 262208;
    static constexpr int kMaxPositions = 131072;
    static constexpr int kSlidingPattern = 6;
};

/// How a family lays out its layers; decides which fields are read.
enum class Family {
    kDense,     ///< Llama, Mistral, Qwen2, Qwen3, Phi-3 / Phi-4 (gated MLP of intermediate_size)
    kMixtral,   ///< every layer MoE, experts of width intermediate_size (Mixtral, PhiMoE)
    kQwenMoe,   ///< Qwen2-MoE / Qwen3-MoE: decoder_sparse_step, mlp_only_layers
    kDeepseek,  ///< MLA attention, first_k_dense_replace, shared experts
    kLlama4,    ///< nested text_config, interleaved MoE with one shared expert, chunked attention
    kGptOss,    ///< MoE with MXFP4 experts, alternating sliding/full attention
    kGemma2,    ///< alternating local/global attention
    kGemma3,    ///< sliding_window_pattern local:global attention
    kGptNeoX,   ///< GPT-NeoX / Pythia: MHA, plain two-matrix GELU MLP, untied lm_head
    kGptJ,      ///< GPT-J: GPT-2 field names (n_embd, n_layer, n_head, n_inner), plain MLP
    kFalcon,    ///< Falcon / RefinedWeb: MQA or GQA (new decoder), plain GELU MLP, tied lm_head
};

struct ArchInfo {
    std::string_view architecture;
    std::string_view model_type;  ///< the top-level model_type, for configs without architectures
    Family family;
    bool nested_text_config;  ///< the language model's fields sit under `text_config`
};

constexpr std::array kArchitectures = {
    ArchInfo{"LlamaForCausalLM", "llama", Family::kDense, false},
    ArchInfo{"MistralForCausalLM", "mistral", Family::kDense, false},
    ArchInfo{"MixtralForCausalLM", "mixtral", Family::kMixtral, false},
    ArchInfo{"Qwen2ForCausalLM", "qwen2", Family::kDense, false},
    ArchInfo{"Qwen3ForCausalLM", "qwen3", Family::kDense, false},
    ArchInfo{"Qwen2MoeForCausalLM", "qwen2_moe", Family::kQwenMoe, false},
    ArchInfo{"Qwen3MoeForCausalLM", "qwen3_moe", Family::kQwenMoe, false},
    ArchInfo{"DeepseekV2ForCausalLM", "deepseek_v2", Family::kDeepseek, false},
    ArchInfo{"DeepseekV3ForCausalLM", "deepseek_v3", Family::kDeepseek, false},
    ArchInfo{"Llama4ForConditionalGeneration", "llama4", Family::kLlama4, true},
    ArchInfo{"Llama4ForCausalLM", "llama4_text", Family::kLlama4, false},
    ArchInfo{"GptOssForCausalLM", "gpt_oss", Family::kGptOss, false},
    ArchInfo{"Gemma2ForCausalLM", "gemma2", Family::kGemma2, false},
    ArchInfo{"Gemma3ForCausalLM", "gemma3_text", Family::kGemma3, false},
    ArchInfo{"Gemma3ForConditionalGeneration", "gemma3", Family::kGemma3, true},
    ArchInfo{"GPTNeoXForCausalLM", "gpt_neox", Family::kGptNeoX, false},
    ArchInfo{"GPTJForCausalLM", "gptj", Family::kGptJ, false},
    ArchInfo{"FalconForCausalLM", "falcon", Family::kFalcon, false},
    ArchInfo{"RWForCausalLM", "RefinedWebModel", Family::kFalcon,
             false},                                                  // Falcon-7B's first config
    ArchInfo{"RWForCausalLM", "RefinedWeb", Family::kFalcon, false},  // Falcon-40B's first config
    ArchInfo{"Phi3ForCausalLM", "phi3", Family::kDense, false},
    ArchInfo{"PhiMoEForCausalLM", "phimoe", Family::kMixtral, false},
};

std::string supported_architectures() {
    std::string out;
    for (std::size_t i = 0; i < kArchitectures.size(); ++i) {
        const std::string_view name = kArchitectures[i].architecture;
        if (i > 0 && kArchitectures[i - 1].architecture == name) {
            continue;  // one architecture name, several model_types
        }
        if (!out.empty()) {
            out += ", ";
        }
        out += name;
    }
    return out;
}

const ArchInfo* find_by_architecture(std::string_view name) {
    for (const ArchInfo& info : kArchitectures) {
        if (info.architecture == name) {
            return &info;
        }
    }
    return nullptr;
}

const ArchInfo* find_by_model_type(std::string_view model_type) {
    for (const ArchInfo& info : kArchitectures) {
        if (info.model_type == model_type) {
            return &info;
        }
    }
    return nullptr;
}

std::string to_lower(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

struct Precision {
    WeightDtype dtype = WeightDtype::kBf16;
    double weight_bytes = kSixteenBitBytes;
    double expert_weight_bytes = kSixteenBitBytes;
    double embedding_weight_bytes = kSixteenBitBytes;

    bool operator==(const Precision&) const = default;
};

/// Every linear layer (dense and expert) stored in `bytes` per weight; embeddings in 16 bits.
Precision stored_as(WeightDtype dtype, double bytes) {
    return {dtype, bytes, bytes, kSixteenBitBytes};
}

Precision precision_of(WeightDtype dtype) {
    return stored_as(dtype, dtype == WeightDtype::kBf16 ? kSixteenBitBytes : kEightBitBytes);
}

/// Bytes per weight of `bits`-bit weights quantized in groups of `group_size` (0: per channel or
/// per tensor, whose scales are negligible), each group with one scale of `scale_bytes` and, when
/// asymmetric, one `bits`-bit zero point.
double grouped_weight_bytes(int bits, int group_size, double scale_bytes, bool zero_point) {
    const double bytes = bits / 8.0;
    if (group_size <= 0) {
        return bytes;
    }
    return bytes + (scale_bytes + (zero_point ? bytes : 0.0)) / group_size;
}

/// One compressed-tensors scheme (`config_groups.<name>`): weights `num_bits`/`type`/`strategy`/
/// `group_size`/`symmetric`, and `input_activations` (absent: weight-only, 16-bit matmul).
Result<Precision> compressed_tensors_scheme(const Json& group, std::string_view source,
                                            const std::string& prefix) {
    if (!group.is_object()) {
        return Status::invalid_argument(
            fmt::format("{}: field '{}' must be an object", source, prefix));
    }
    JsonFields g(group, source, prefix + ".");
    const Json* weights = g.find("weights");
    if (weights == nullptr || !weights->is_object()) {
        return Status::invalid_argument(
            fmt::format("{}: field '{}.weights' must be an object", source, prefix));
    }
    JsonFields w(*weights, source, prefix + ".weights.");
    const int bits = w.require_int("num_bits");
    const std::string type = to_lower(w.optional_string("type").value_or("int"));
    const std::string strategy = to_lower(w.optional_string("strategy").value_or("tensor"));
    const int group_size = w.optional_int("group_size", 0, -1);
    const bool symmetric = w.optional_bool("symmetric", true);
    if (!w.ok()) {
        return w.status();
    }
    int act_bits = 16;
    std::string act_type;
    if (const Json* act = g.find("input_activations"); act != nullptr) {
        if (!act->is_object()) {
            return Status::invalid_argument(fmt::format(
                "{}: field '{}.input_activations' must be an object or null", source, prefix));
        }
        JsonFields a(*act, source, prefix + ".input_activations.");
        act_bits = a.require_int("num_bits");
        act_type = to_lower(a.optional_string("type").value_or("int"));
        if (!a.ok()) {
            return a.status();
        }
    }
    if (type != "int" && type != "float") {
        return Status::invalid_argument(fmt::format(
            "{}: field '{}.weights.type' is '{}' (expected int or float)", source, prefix, type));
    }
    const bool float_weights = type == "float";
    const bool bits_ok = float_weights ? (bits == 8 || bits == 4) : (bits >= 2 && bits <= 8);
    if (!bits_ok) {
        return Status::invalid_argument(fmt::format(
            "{}: {}-bit {} weights ('{}.weights.num_bits') are not supported (int: 2-8 bits, "
            "float: 4 or 8)",
            source, bits, type, prefix));
    }
    if (act_bits != 16 && act_bits != 8) {
        return Status::invalid_argument(fmt::format(
            "{}: {}-bit activations ('{}.input_activations.num_bits') are not supported: the cost "
            "model has 16-bit, FP8 and INT8 matmuls only (W4A4 / NVFP4 needs FP4 tensor cores)",
            source, act_bits, prefix));
    }
    WeightDtype matmul = WeightDtype::kBf16;
    if (act_bits == 8) {
        matmul = act_type == "float" ? WeightDtype::kFp8 : WeightDtype::kInt8;
    }
    const bool grouped = strategy == "group" || strategy == "tensor_group";
    // Int groups carry 16-bit scales; 4-bit float (NVFP4) groups carry FP8 scales.
    const double scale_bytes = float_weights ? kEightBitBytes : kSixteenBitBytes;
    return stored_as(matmul,
                     grouped_weight_bytes(bits, grouped ? group_size : 0, scale_bytes, !symmetric));
}

/// compressed-tensors (llm-compressor's format): every config group must use one scheme.
Result<Precision> compressed_tensors_precision(const Json& quant, std::string_view source,
                                               const std::string& field) {
    auto groups = quant.find("config_groups");
    if (groups == quant.end() || !groups->is_object() || groups->empty()) {
        return Status::invalid_argument(
            fmt::format("{}: field '{}.config_groups' must be a non-empty object", source, field));
    }
    std::optional<Precision> common;
    std::string first_group;
    for (const auto& item : groups->items()) {
        const std::string prefix = fmt::format("{}.config_groups.{}", field, item.key());
        PALS_ASSIGN_OR_RETURN(Precision p, compressed_tensors_scheme(item.value(), source, prefix));
        if (common && !(*common == p)) {
            return Status::invalid_argument(fmt::format(
                "{}: config groups '{}' and '{}' of '{}' use different schemes; mixed-precision "
                "checkpoints are not supported (pass a dtype override)",
                source, first_group, item.key(), field));
        }
        common = p;
        first_group = item.key();
    }
    return *common;
}

/// GPTQ and AWQ: `bits`-bit integer weights in groups of `group_size` (-1: per channel), each
/// group with a 16-bit scale and a packed zero point; the matmul runs in 16 bits.
Result<Precision> gptq_awq_precision(const Json& quant, std::string_view source,
                                     const std::string& field, bool awq) {
    JsonFields q(quant, source, field + ".");
    // AutoAWQ's own names (w_bit, q_group_size) also appear in shipped configs.
    const std::string_view bits_key = awq && !q.has("bits") && q.has("w_bit") ? "w_bit" : "bits";
    const std::string_view group_key =
        awq && !q.has("group_size") && q.has("q_group_size") ? "q_group_size" : "group_size";
    const int bits = q.require_int(bits_key);
    const int group_size = q.optional_int(group_key, 128, -1);
    const bool zero_point = awq ? q.optional_bool("zero_point", true) : true;
    if (!q.ok()) {
        return q.status();
    }
    if (bits < 2 || bits > 8) {
        return Status::invalid_argument(fmt::format("{}: field '{}.{}' is {} (expected 2 to 8)",
                                                    source, field, bits_key, bits));
    }
    return stored_as(WeightDtype::kBf16,
                     grouped_weight_bytes(bits, group_size, kSixteenBitBytes, zero_point));
}

/// NVIDIA ModelOpt: `quant_algo` at the top of the block or under `quantization`.
Result<Precision> modelopt_precision(const Json& quant, std::string_view source,
                                     const std::string& field) {
    const Json* holder = &quant;
    std::string where = field;
    if (auto nested = quant.find("quantization");
        nested != quant.end() && nested->is_object() && !quant.contains("quant_algo")) {
        holder = &*nested;
        where = field + ".quantization";
    }
    JsonFields q(*holder, source, where + ".");
    const std::optional<std::string> algo = q.optional_string("quant_algo");
    if (!q.ok()) {
        return q.status();
    }
    if (!algo) {
        return Status::invalid_argument(
            fmt::format("{}: missing field '{}.quant_algo'", source, where));
    }
    const std::string lower = to_lower(*algo);
    if (lower.rfind("fp8", 0) == 0) {
        return precision_of(WeightDtype::kFp8);
    }
    return Status::invalid_argument(fmt::format(
        "{}: {}.quant_algo '{}' is not supported (ModelOpt FP8 is; NVFP4 and W4A8 need FP4/mixed "
        "kernels the cost model does not have): pass a dtype override",
        source, where, *algo));
}

/// The weights' matmul precision and storage: `quantization_config` first, then
/// `torch_dtype`/`dtype`. Serving runs 16-bit models in 16 bits even when the checkpoint is
/// float32.
Result<Precision> read_precision(JsonFields& root, JsonFields& text, std::string_view source) {
    for (JsonFields* reader : {&root, &text}) {
        const Json* quant = reader->find("quantization_config");
        if (quant == nullptr) {
            continue;
        }
        const std::string field = reader->prefix() + "quantization_config";
        if (!quant->is_object()) {
            return Status::invalid_argument(
                fmt::format("{}: field '{}' must be an object", source, field));
        }
        auto method_it = quant->find("quant_method");
        if (method_it == quant->end() || !method_it->is_string()) {
            return Status::invalid_argument(
                fmt::format("{}: missing field '{}.quant_method'", source, field));
        }
        const std::string method = to_lower(method_it->get<std::string>());
        if (method == "fp8" || method == "fbgemm_fp8") {
            return precision_of(WeightDtype::kFp8);
        }
        if (method == "compressed-tensors" || method == "compressed_tensors") {
            return compressed_tensors_precision(*quant, source, field);
        }
        if (method == "gptq" || method == "awq") {
            return gptq_awq_precision(*quant, source, field, method == "awq");
        }
        if (method == "modelopt") {
            return modelopt_precision(*quant, source, field);
        }
        if (method == "mxfp4") {
            // gpt-oss: only the routed experts are MXFP4; attention, router and embeddings stay
            // bf16 (its `modules_to_not_convert`).
            Precision p = precision_of(WeightDtype::kBf16);
            p.expert_weight_bytes = kMxfp4Bytes;
            return p;
        }
        return Status::invalid_argument(fmt::format(
            "{}: {}.quant_method '{}' is not supported (supported: fp8, fbgemm_fp8, "
            "compressed-tensors, gptq, awq, modelopt FP8, mxfp4); pass a dtype override",
            source, field, method_it->get<std::string>()));
    }
    for (JsonFields* reader : {&root, &text}) {
        for (std::string_view key : {"torch_dtype", "dtype"}) {
            std::optional<std::string> name = reader->optional_string(key);
            if (!reader->ok()) {
                return reader->status();
            }
            if (!name) {
                continue;
            }
            const std::string lower = to_lower(*name);
            if (lower == "float32" || lower == "fp32") {
                return precision_of(WeightDtype::kBf16);
            }
            if (lower.rfind("float8", 0) == 0) {
                return precision_of(WeightDtype::kFp8);
            }
            Result<WeightDtype> parsed = parse_weight_dtype(lower);
            if (!parsed.is_ok() || *parsed == WeightDtype::kInt8) {
                return Status::invalid_argument(
                    fmt::format("{}: field '{}{}' has unsupported value '{}'", source,
                                reader->prefix(), key, *name));
            }
            return precision_of(*parsed);
        }
    }
    return Precision{};
}

/// Counts the local (sliding-window or chunked) layers named in `layer_types`.
int count_local_layer_types(JsonFields& r, int num_layers) {
    const std::vector<std::string> types = r.optional_strings("layer_types");
    if (types.size() != static_cast<std::size_t>(num_layers)) {
        r.fail(fmt::format("field '{}layer_types' has {} entries, expected num_hidden_layers = {}",
                           r.prefix(), types.size(), num_layers));
        return 0;
    }
    int local = 0;
    for (const std::string& type : types) {
        if (type == "sliding_attention" || type == "chunked_attention") {
            ++local;
        } else if (type != "full_attention") {
            r.fail(fmt::format("field '{}layer_types' has unknown entry '{}'", r.prefix(), type));
            return 0;
        }
    }
    return local;
}

/// Attention weights of one GQA/MHA layer: q and o are hidden x heads*head_dim, k and v are
/// hidden x kv_heads*head_dim. Biases and norms are left out (well under 0.1 % of any model).
double gqa_params(const ModelSpec& s) {
    const double hidden = s.hidden_size;
    const double q_width = static_cast<double>(s.num_attention_heads) * s.head_dim;
    const double kv_width = static_cast<double>(s.num_kv_heads) * s.head_dim;
    return hidden * q_width + 2.0 * hidden * kv_width + q_width * hidden;
}

double gated_mlp_params(int hidden, int width) {
    return kGatedMlpMatrices * static_cast<double>(hidden) * static_cast<double>(width);
}

/// Fills the MoE fields and checks top-k against the expert count.
void set_moe(JsonFields& r, ModelSpec& s, int num_moe_layers, int num_experts, int top_k,
             int expert_width) {
    if (r.ok() && top_k > num_experts) {
        r.fail(fmt::format("experts per token ({}) exceeds the number of experts ({})", top_k,
                           num_experts));
    }
    s.num_moe_layers = num_moe_layers;
    s.num_dense_layers = s.num_layers - num_moe_layers;
    s.num_experts = num_experts;
    s.experts_per_token = top_k;
    s.expert_params = gated_mlp_params(s.hidden_size, expert_width);
    s.router_params = static_cast<double>(s.hidden_size) * num_experts;
}

/// Qwen2-MoE / Qwen3-MoE: a layer is MoE unless listed in mlp_only_layers or skipped by
/// decoder_sparse_step (MoE when (layer + 1) % step == 0); dense layers use intermediate_size.
void read_qwen_moe(JsonFields& r, ModelSpec& s) {
    const int num_experts = r.require_int("num_experts");
    const int top_k = r.require_int("num_experts_per_tok");
    const int expert_width = r.require_int("moe_intermediate_size");
    const int dense_width = r.require_int("intermediate_size");
    const int step = r.optional_int("decoder_sparse_step", 1);
    const std::vector<int> mlp_only = r.optional_ints("mlp_only_layers");
    const int shared_width = r.optional_int("shared_expert_intermediate_size", 0, 0);
    if (!r.ok()) {
        return;
    }
    int moe_layers = 0;
    for (int layer = 0; layer < s.num_layers; ++layer) {
        const bool mlp_only_layer =
            std::find(mlp_only.begin(), mlp_only.end(), layer) != mlp_only.end();
        if (!mlp_only_layer && (layer + 1) % step == 0) {
            ++moe_layers;
        }
    }
    set_moe(r, s, moe_layers, num_experts, top_k, expert_width);
    s.dense_ffn_params = gated_mlp_params(s.hidden_size, dense_width);
    if (shared_width > 0) {
        s.shared_expert_params = gated_mlp_params(s.hidden_size, shared_width);
        // Qwen2-MoE scales the shared expert by sigmoid(hidden x 1): counted with the router.
        s.router_params += s.hidden_size;
    }
}

/// DeepSeek V2/V3: multi-head latent attention, the first `first_k_dense_replace` layers dense,
/// then MoE every `moe_layer_freq` layers with `n_shared_experts` always-on experts. The
/// multi-token-prediction layers (num_nextn_predict_layers) are not used for serving; ignored.
void read_deepseek(JsonFields& r, ModelSpec& s) {
    const int heads = s.num_attention_heads;
    const int q_lora_rank = r.optional_int("q_lora_rank", 0);
    const int kv_lora_rank = r.require_int("kv_lora_rank");
    const int rope_dim = r.require_int("qk_rope_head_dim");
    const int nope_dim = r.require_int("qk_nope_head_dim");
    const int v_dim = r.require_int("v_head_dim");
    const int dense_width = r.require_int("intermediate_size");
    const int num_experts = r.optional_int("n_routed_experts", 0);
    int top_k = 0;
    int expert_width = 0;
    int num_shared = 0;
    int first_dense = 0;
    int freq = 1;
    if (num_experts > 0) {
        top_k = r.require_int("num_experts_per_tok");
        expert_width = r.require_int("moe_intermediate_size");
        num_shared = r.optional_int("n_shared_experts", 0, 0);
        first_dense = r.optional_int("first_k_dense_replace", 0, 0);
        freq = r.optional_int("moe_layer_freq", 1);
    }
    if (!r.ok()) {
        return;
    }
    const double hidden = s.hidden_size;
    const double qk_dim = static_cast<double>(nope_dim) + rope_dim;
    const double q_params =
        q_lora_rank > 0 ? hidden * q_lora_rank + static_cast<double>(q_lora_rank) * heads * qk_dim
                        : hidden * heads * qk_dim;
    const double kv_a_params = hidden * (static_cast<double>(kv_lora_rank) + rope_dim);
    const double kv_b_params =
        static_cast<double>(kv_lora_rank) * heads * (static_cast<double>(nope_dim) + v_dim);
    const double o_params = static_cast<double>(heads) * v_dim * hidden;

    s.attention = AttentionKind::kLatent;
    s.head_dim = nope_dim + rope_dim;
    // The latent is shared by all heads, like a single KV head: replicated, never split by TP.
    s.num_kv_heads = 1;
    s.attn_params_per_layer = q_params + kv_a_params + kv_b_params + o_params;
    s.kv_elems_per_token_per_layer = static_cast<double>(kv_lora_rank) + rope_dim;
    // Decode runs MLA in the absorbed form: scores against the latent plus the RoPE key, and
    // values read straight from the latent.
    s.attn_flops_per_pair_per_layer =
        2.0 * heads * ((static_cast<double>(kv_lora_rank) + rope_dim) + kv_lora_rank);

    s.dense_ffn_params = gated_mlp_params(s.hidden_size, dense_width);
    if (num_experts == 0) {
        s.num_dense_layers = s.num_layers;
        return;
    }
    int moe_layers = 0;
    for (int layer = first_dense; layer < s.num_layers; ++layer) {
        if (layer % freq == 0) {
            ++moe_layers;
        }
    }
    set_moe(r, s, moe_layers, num_experts, top_k, expert_width);
    s.shared_expert_params = num_shared * gated_mlp_params(s.hidden_size, expert_width);
}

/// Llama 4: MoE on layers listed in `moe_layers`, else every `interleave_moe_layer_step`-th
/// layer ((layer + 1) % step == 0); each MoE layer adds one shared expert of the routed width
/// (`intermediate_size`), dense layers use `intermediate_size_mlp`.
void read_llama4(JsonFields& r, ModelSpec& s) {
    const int num_experts = r.require_int("num_local_experts");
    const int top_k = r.require_int("num_experts_per_tok");
    const int expert_width = r.require_int("intermediate_size");
    const int step = r.optional_int("interleave_moe_layer_step", 1);
    const std::vector<int> listed_moe_layers = r.optional_ints("moe_layers");
    const bool has_listed_moe_layers = r.has("moe_layers");
    int moe_layers = 0;
    if (has_listed_moe_layers) {
        moe_layers =
            static_cast<int>(std::count_if(listed_moe_layers.begin(), listed_moe_layers.end(),
                                           [&](int layer) { return layer < s.num_layers; }));
    } else {
        moe_layers = s.num_layers / step;
    }
    const int dense_width = moe_layers < s.num_layers ? r.require_int("intermediate_size_mlp") : 0;

    // Llama 4 attends in chunks of attention_chunk_size tokens on its RoPE layers and globally
    // on its NoPE layers. A chunked layer never holds more than attention_chunk_size tokens of
    // KV, so it is modelled as a sliding window of that size (vLLM sizes its cache the same
    // way). RoPE layers: `layer_types` if given, else `no_rope_layers` (1 = uses RoPE), else
    // every layer except each no_rope_layer_interval-th (HF's default when the list is empty).
    const int chunk = r.optional_int("attention_chunk_size", 0);
    const int interval = r.optional_int("no_rope_layer_interval", kLlama4DefaultNoRopeInterval);
    const std::vector<int> rope_flags = r.optional_ints("no_rope_layers");
    if (!r.ok()) {
        return;
    }
    set_moe(r, s, moe_layers, num_experts, top_k, expert_width);
    s.shared_expert_params = gated_mlp_params(s.hidden_size, expert_width);
    s.dense_ffn_params = dense_width > 0 ? gated_mlp_params(s.hidden_size, dense_width) : 0.0;
    if (chunk == 0) {
        return;
    }
    int rope_layers = 0;
    if (r.has("layer_types")) {
        rope_layers = count_local_layer_types(r, s.num_layers);
    } else if (!rope_flags.empty()) {
        if (rope_flags.size() != static_cast<std::size_t>(s.num_layers)) {
            r.fail(fmt::format("field '{}no_rope_layers' has {} entries, expected {}", r.prefix(),
                               rope_flags.size(), s.num_layers));
            return;
        }
        rope_layers = static_cast<int>(
            std::count_if(rope_flags.begin(), rope_flags.end(), [](int f) { return f != 0; }));
    } else {
        rope_layers = s.num_layers - s.num_layers / interval;
    }
    s.sliding_window = chunk;
    s.num_sliding_layers = rope_layers;
}

/// The sliding-window layout of the families that have one (Llama 4 sets its own).
void read_sliding_window(JsonFields& r, Family family, ModelSpec& s) {
    switch (family) {
        case Family::kDense:
        case Family::kMixtral:
        case Family::kQwenMoe: {
            const int window = r.optional_int("sliding_window", 0, 0);
            if (window == 0) {
                return;
            }
            const std::string type = s.model_type;
            if (type.rfind("qwen", 0) == 0) {
                // Qwen2/3 only slide when use_sliding_window is set, and then from layer
                // max_window_layers on.
                if (!r.optional_bool("use_sliding_window", false)) {
                    return;
                }
                const int first = r.optional_int("max_window_layers", s.num_layers, 0);
                s.sliding_window = window;
                s.num_sliding_layers = std::max(0, s.num_layers - first);
            } else if (type == "mistral" || type == "mixtral") {
                s.sliding_window = window;
                s.num_sliding_layers = s.num_layers;
            }
            return;
        }
        case Family::kGptOss: {
            const int window = r.optional_int("sliding_window", 0, 0);
            if (window == 0) {
                return;
            }
            s.sliding_window = window;
            if (r.has("layer_types")) {
                s.num_sliding_layers = count_local_layer_types(r, s.num_layers);
            } else {
                // gpt-oss alternates sliding (even layers) and full attention.
                s.num_sliding_layers = (s.num_layers + 1) / 2;
            }
            return;
        }
        case Family::kGemma2:
        case Family::kGemma3: {
            s.sliding_window = r.optional_int("sliding_window", kGemmaDefaultSlidingWindow);
            if (r.has("layer_types")) {
                s.num_sliding_layers = count_local_layer_types(r, s.num_layers);
                return;
            }
            // Gemma 2 alternates local and global layers; Gemma 3 has one global layer every
            // sliding_window_pattern layers (6: five local, one global). Both put the global
            // layer where (layer + 1) % pattern == 0.
            const int pattern =
                family == Family::kGemma2
                    ? 2
                    : r.optional_int("sliding_window_pattern", Gemma3TextDefaults::kSlidingPattern);
            s.num_sliding_layers = s.num_layers - s.num_layers / pattern;
            return;
        }
        case Family::kDeepseek:
        case Family::kLlama4:
        case Family::kGptNeoX:
        case Family::kGptJ:
        case Family::kFalcon:
            return;
    }
}

/// Falcon's KV heads: `num_kv_heads` (RefinedWeb: `n_head_kv`) under the new decoder
/// architecture (40B, 180B, Falcon 2), one shared head when `multi_query` (7B; FalconConfig's
/// default), else one per attention head.
int falcon_kv_heads(JsonFields& r, int heads) {
    if (r.has("n_head_kv")) {
        return r.require_int("n_head_kv");
    }
    if (r.optional_bool("new_decoder_architecture", false)) {
        return r.optional_int("num_kv_heads", heads);
    }
    return r.optional_bool("multi_query", true) ? 1 : heads;
}

/// Hybrid and state-space models keep a fixed-size recurrent state per sequence in their Mamba
/// layers instead of a KV cache that grows per token; the cost model has no term for that, so
/// these are refused by name rather than half-modelled as transformers.
bool is_state_space(std::string_view name) {
    const std::string lower = to_lower(name);
    for (std::string_view key :
         {"mamba", "jamba", "zamba", "nemotronh", "nemotron_h", "falconh1", "falcon_h1", "rwkv",
          "recurrentgemma", "bamba", "granitemoehybrid", "plamo2", "lfm2"}) {
        if (lower.find(key) != std::string::npos) {
            return true;
        }
    }
    return false;
}

Status state_space_error(std::string_view source, std::string_view name) {
    return Status::invalid_argument(fmt::format(
        "{}: architecture '{}' has hybrid/state-space (Mamba-style) layers, which are "
        "unsupported: they hold a fixed recurrent state per sequence instead of a per-token KV "
        "cache, and the cost model has no term for that state",
        source, name));
}

/// Finds the architecture from `architectures[0]`, else from `model_type`.
Result<const ArchInfo*> find_architecture(JsonFields& root, std::string_view source) {
    const std::vector<std::string> architectures = root.optional_strings("architectures");
    if (!root.ok()) {
        return root.status();
    }
    if (!architectures.empty()) {
        const ArchInfo* info = find_by_architecture(architectures.front());
        if (info == nullptr && is_state_space(architectures.front())) {
            return state_space_error(source, architectures.front());
        }
        if (info == nullptr) {
            return Status::invalid_argument(
                fmt::format("{}: unsupported architecture '{}' (supported: {})", source,
                            architectures.front(), supported_architectures()));
        }
        return info;
    }
    const std::optional<std::string> model_type = root.optional_string("model_type");
    if (!root.ok()) {
        return root.status();
    }
    if (!model_type) {
        return Status::invalid_argument(
            fmt::format("{}: missing field 'architectures' (and no 'model_type')", source));
    }
    const ArchInfo* info = find_by_model_type(*model_type);
    if (info == nullptr && is_state_space(*model_type)) {
        return state_space_error(source, *model_type);
    }
    if (info == nullptr) {
        return Status::invalid_argument(
            fmt::format("{}: unsupported model_type '{}' (supported architectures: {})", source,
                        *model_type, supported_architectures()));
    }
    return info;
}

Result<ModelSpec> build_spec(const Json& root_json, std::string_view source,
                             std::optional<WeightDtype> dtype_override) {
    if (!root_json.is_object()) {
        return Status::invalid_argument(fmt::format("{}: expected a JSON object", source));
    }
    JsonFields root(root_json, source, "");
    PALS_ASSIGN_OR_RETURN(const ArchInfo* arch, find_architecture(root, source));
    const ArchInfo& info = *arch;

    const Json* text_json = &root_json;
    std::string prefix;
    if (const Json* nested = root.find("text_config");
        nested != nullptr || info.nested_text_config) {
        if (nested == nullptr) {
            return Status::invalid_argument(fmt::format("{}: missing field 'text_config'", source));
        }
        if (!nested->is_object()) {
            return Status::invalid_argument(
                fmt::format("{}: field 'text_config' must be an object", source));
        }
        text_json = nested;
        prefix = "text_config.";
    }
    JsonFields r(*text_json, source, prefix);

    ModelSpec s;
    s.architecture = std::string(info.architecture);
    s.model_type =
        r.optional_string("model_type")
            .value_or(root.optional_string("model_type").value_or(std::string(info.model_type)));
    s.name = root.optional_string("_name_or_path")
                 .value_or(std::filesystem::path(std::string(source)).stem().string());

    const bool gemma = info.family == Family::kGemma2 || info.family == Family::kGemma3;
    const bool gemma3 = info.family == Family::kGemma3;
    const bool gptj = info.family == Family::kGptJ;
    const bool falcon = info.family == Family::kFalcon;
    // GPT-J writes GPT-2's names; Falcon's first (RefinedWeb) configs too, later ones HF's.
    const std::string_view layers_key =
        gptj || (falcon && !r.has("num_hidden_layers") && r.has("n_layer")) ? "n_layer"
                                                                            : "num_hidden_layers";
    const std::string_view heads_key =
        gptj || (falcon && !r.has("num_attention_heads") && r.has("n_head"))
            ? "n_head"
            : "num_attention_heads";
    if (gemma3) {
        using D = Gemma3TextDefaults;
        s.num_layers = r.optional_int("num_hidden_layers", D::kNumLayers);
        s.hidden_size = r.optional_int("hidden_size", D::kHiddenSize);
        s.num_attention_heads = r.optional_int("num_attention_heads", D::kNumHeads);
        s.num_kv_heads = r.optional_int("num_key_value_heads", D::kNumKvHeads);
        s.vocab_size = r.optional_int("vocab_size", D::kVocabSize);
        s.max_position_embeddings = r.optional_int("max_position_embeddings", D::kMaxPositions);
    } else {
        s.num_layers = r.require_int(layers_key);
        s.hidden_size = r.require_int(gptj ? "n_embd" : "hidden_size");
        s.num_attention_heads = r.require_int(heads_key);
        s.num_kv_heads = falcon ? falcon_kv_heads(r, s.num_attention_heads)
                                : r.optional_int("num_key_value_heads", s.num_attention_heads);
        s.vocab_size = r.require_int("vocab_size");
        s.max_position_embeddings = r.optional_int("max_position_embeddings", 0);
    }
    if (!r.ok()) {
        return r.status();
    }
    s.head_dim = r.optional_int(
        "head_dim", gemma ? kGemmaDefaultHeadDim : s.hidden_size / s.num_attention_heads);
    if (r.ok() && s.head_dim == 0) {
        r.fail(
            fmt::format("hidden_size ({}) is smaller than num_attention_heads ({}); set "
                        "head_dim",
                        s.hidden_size, s.num_attention_heads));
    }
    // Gemma and Falcon tie their embeddings unless told otherwise; the other families do not.
    const bool tie_default = gemma || falcon;
    s.tie_word_embeddings = root.optional_bool("tie_word_embeddings",
                                               r.optional_bool("tie_word_embeddings", tie_default));
    if (!root.ok()) {
        return root.status();
    }
    if (!r.ok()) {
        return r.status();
    }

    PALS_ASSIGN_OR_RETURN(Precision precision,
                          dtype_override ? Result<Precision>(precision_of(*dtype_override))
                                         : read_precision(root, r, source));
    s.dtype = precision.dtype;
    s.weight_bytes = precision.weight_bytes;
    s.expert_weight_bytes = precision.expert_weight_bytes;
    s.embedding_weight_bytes = precision.embedding_weight_bytes;
    s.kv_cache_bytes = kKvCacheBytes;

    // Standard (GQA/MHA) attention; DeepSeek replaces these in read_deepseek.
    s.attention = AttentionKind::kMultiHead;
    s.attn_params_per_layer = gqa_params(s);
    s.kv_elems_per_token_per_layer = 2.0 * s.num_kv_heads * s.head_dim;
    s.attn_flops_per_pair_per_layer = 2.0 * s.num_attention_heads * (2.0 * s.head_dim);

    switch (info.family) {
        case Family::kDense:
        case Family::kGemma2:
        case Family::kGemma3: {
            const int width =
                gemma3 ? r.optional_int("intermediate_size", Gemma3TextDefaults::kIntermediateSize)
                       : r.require_int("intermediate_size");
            s.num_dense_layers = s.num_layers;
            s.dense_ffn_params = gated_mlp_params(s.hidden_size, width);
            break;
        }
        case Family::kGptNeoX:
        case Family::kGptJ:
        case Family::kFalcon: {
            // Plain GELU MLP: up (hidden x width) and down (width x hidden), no gate.
            const int default_width = kPlainMlpWidthFactor * s.hidden_size;
            const int width = gptj     ? r.optional_int("n_inner", default_width)
                              : falcon ? r.optional_int("ffn_hidden_size", default_width)
                                       : r.require_int("intermediate_size");
            s.num_dense_layers = s.num_layers;
            s.dense_ffn_params = 2.0 * s.hidden_size * static_cast<double>(width);
            break;
        }
        case Family::kMixtral: {
            const int num_experts = r.require_int("num_local_experts");
            const int top_k = r.require_int("num_experts_per_tok");
            const int width = r.require_int("intermediate_size");
            if (r.ok()) {
                set_moe(r, s, s.num_layers, num_experts, top_k, width);
            }
            break;
        }
        case Family::kQwenMoe:
            read_qwen_moe(r, s);
            break;
        case Family::kDeepseek:
            read_deepseek(r, s);
            break;
        case Family::kLlama4:
            read_llama4(r, s);
            break;
        case Family::kGptOss: {
            const int num_experts = r.require_int("num_local_experts");
            const int top_k = r.has("num_experts_per_tok") ? r.require_int("num_experts_per_tok")
                                                           : r.require_int("experts_per_token");
            const int width = r.require_int("intermediate_size");
            if (r.ok()) {
                set_moe(r, s, s.num_layers, num_experts, top_k, width);
            }
            break;
        }
    }
    read_sliding_window(r, info.family, s);
    if (!r.ok()) {
        return r.status();
    }

    s.embedding_params = static_cast<double>(s.vocab_size) * s.hidden_size;
    s.lm_head_params = s.embedding_params;
    return s;
}

}  // namespace

Result<WeightDtype> parse_weight_dtype(std::string_view text) {
    const std::string lower = to_lower(text);
    if (lower == "bf16" || lower == "bfloat16" || lower == "fp16" || lower == "float16") {
        return WeightDtype::kBf16;
    }
    if (lower == "fp8" || lower == "float8") {
        return WeightDtype::kFp8;
    }
    if (lower == "int8" || lower == "w8a8") {
        return WeightDtype::kInt8;
    }
    return Status::invalid_argument(fmt::format(
        "unknown weight dtype '{}' (expected bf16, bfloat16, fp16, float16, fp8, float8, int8 or "
        "w8a8)",
        text));
}

double ModelSpec::total_params() const {
    const double per_moe_layer = num_experts * expert_params + shared_expert_params + router_params;
    return num_layers * attn_params_per_layer + num_dense_layers * dense_ffn_params +
           num_moe_layers * per_moe_layer + embedding_params +
           (tie_word_embeddings ? 0.0 : lm_head_params);
}

double ModelSpec::active_params() const {
    const double per_moe_layer =
        experts_per_token * expert_params + shared_expert_params + router_params;
    return num_layers * attn_params_per_layer + num_dense_layers * dense_ffn_params +
           num_moe_layers * per_moe_layer + lm_head_params;
}

double ModelSpec::weight_bytes_total() const {
    const double routed = static_cast<double>(num_moe_layers) * num_experts * expert_params;
    const double embeddings = embedding_params + (tie_word_embeddings ? 0.0 : lm_head_params);
    return (total_params() - routed - embeddings) * weight_bytes + routed * expert_weight_bytes +
           embeddings * embedding_weight_bytes;
}

double ModelSpec::kv_bytes_per_token() const {
    return num_layers * kv_elems_per_token_per_layer * kv_cache_bytes;
}

Result<ModelSpec> parse_model_spec(std::string_view json_text, std::string_view source,
                                   std::optional<WeightDtype> dtype) {
    PALS_ASSIGN_OR_RETURN(Json parsed, parse_json(json_text, source));
    const Json root = std::move(parsed);
    try {
        return build_spec(root, source, dtype);
    } catch (const std::exception& e) {
        // The readers check types before every get<>(), so this is a bug, not bad input.
        return Status::internal(
            fmt::format("{}: unexpected error reading model config: {}", source, e.what()));
    }
}

Result<ModelSpec> load_model_spec(const std::filesystem::path& path,
                                  std::optional<WeightDtype> dtype) {
    PALS_ASSIGN_OR_RETURN(std::string text, read_file(path));
    PALS_ASSIGN_OR_RETURN(ModelSpec spec, parse_model_spec(text, path.string(), dtype));
    spec.name = path.stem().string();
    return spec;
}

}  // namespace pals::model
