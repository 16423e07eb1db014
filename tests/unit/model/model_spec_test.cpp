#include "pals/model/model_spec.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

namespace pals::model {
namespace {

using Json = nlohmann::json;

constexpr double kBillion = 1e9;
/// Published counts are rounded and leave out norms and biases; 4 % covers both.
constexpr double kParamTolerance = 0.04;

std::filesystem::path models_dir() {
    return std::filesystem::path(PALS_SHARED_DIR) / "models";
}

/// Loads a shared model config; fails the test (and returns an empty spec) when it does not load.
ModelSpec load_shared(const std::string& stem) {
    Result<ModelSpec> spec = load_model_spec(models_dir() / (stem + ".json"));
    EXPECT_TRUE(spec.is_ok()) << spec.status().message();
    return spec.is_ok() ? *spec : ModelSpec{};
}

ModelSpec parse_ok(const Json& config, std::optional<WeightDtype> dtype = std::nullopt) {
    Result<ModelSpec> spec = parse_model_spec(config.dump(), "model.json", dtype);
    EXPECT_TRUE(spec.is_ok()) << spec.status().message();
    return spec.is_ok() ? *spec : ModelSpec{};
}

/// Expects parsing to fail with kInvalidArgument and a message containing `substring`.
void expect_parse_error(const std::string& text, const std::string& substring) {
    Result<ModelSpec> spec = parse_model_spec(text, "model.json");
    ASSERT_FALSE(spec.is_ok()) << "expected an error containing: " << substring;
    EXPECT_EQ(spec.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(spec.status().message().find(substring), std::string::npos)
        << spec.status().message();
}

void expect_near_rel(double actual, double expected, double tolerance, const std::string& what) {
    EXPECT_NEAR(actual / expected, 1.0, tolerance)
        << what << ": got " << actual / kBillion << "B, expected " << expected / kBillion << "B";
}

Json llama_8b_config() {
    return Json{{"architectures", {"LlamaForCausalLM"}},
                {"model_type", "llama"},
                {"hidden_size", 4096},
                {"intermediate_size", 14336},
                {"num_hidden_layers", 32},
                {"num_attention_heads", 32},
                {"num_key_value_heads", 8},
                {"vocab_size", 128256},
                {"max_position_embeddings", 131072},
                {"torch_dtype", "bfloat16"},
                {"tie_word_embeddings", false}};
}

/// openai/gpt-oss-20b, as its config.json describes it.
Json gpt_oss_20b_config() {
    Json layer_types = Json::array();
    for (int i = 0; i < 24; ++i) {
        layer_types.push_back(i % 2 == 0 ? "sliding_attention" : "full_attention");
    }
    return Json{{"architectures", {"GptOssForCausalLM"}},
                {"model_type", "gpt_oss"},
                {"hidden_size", 2880},
                {"intermediate_size", 2880},
                {"num_hidden_layers", 24},
                {"num_attention_heads", 64},
                {"num_key_value_heads", 8},
                {"head_dim", 64},
                {"vocab_size", 201088},
                {"max_position_embeddings", 131072},
                {"num_local_experts", 32},
                {"num_experts_per_tok", 4},
                {"experts_per_token", 4},
                {"sliding_window", 128},
                {"layer_types", layer_types},
                {"tie_word_embeddings", false},
                {"torch_dtype", "bfloat16"},
                {"quantization_config",
                 {{"quant_method", "mxfp4"},
                  {"modules_to_not_convert",
                   {"model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens",
                    "lm_head"}}}}};
}

/// google/gemma-2-9b: no tie_word_embeddings (HF default: tied), float32 checkpoint.
Json gemma2_9b_config() {
    return Json{{"architectures", {"Gemma2ForCausalLM"}},
                {"model_type", "gemma2"},
                {"hidden_size", 3584},
                {"intermediate_size", 14336},
                {"num_hidden_layers", 42},
                {"num_attention_heads", 16},
                {"num_key_value_heads", 8},
                {"head_dim", 256},
                {"vocab_size", 256000},
                {"max_position_embeddings", 8192},
                {"sliding_window", 4096},
                {"query_pre_attn_scalar", 256},
                {"torch_dtype", "float32"}};
}

/// google/gemma-3-27b-it: the language model sits under text_config.
Json gemma3_27b_config() {
    return Json{{"architectures", {"Gemma3ForConditionalGeneration"}},
                {"model_type", "gemma3"},
                {"torch_dtype", "bfloat16"},
                {"text_config",
                 {{"model_type", "gemma3_text"},
                  {"hidden_size", 5376},
                  {"intermediate_size", 21504},
                  {"num_hidden_layers", 62},
                  {"num_attention_heads", 32},
                  {"num_key_value_heads", 16},
                  {"head_dim", 128},
                  {"vocab_size", 262208},
                  {"max_position_embeddings", 131072},
                  {"query_pre_attn_scalar", 168},
                  {"sliding_window", 1024},
                  {"sliding_window_pattern", 6}}}};
}

/// deepseek-ai/DeepSeek-V3 (MLA with query compression, FP8 checkpoint).
Json deepseek_v3_config() {
    return Json{{"architectures", {"DeepseekV3ForCausalLM"}},
                {"model_type", "deepseek_v3"},
                {"hidden_size", 7168},
                {"intermediate_size", 18432},
                {"moe_intermediate_size", 2048},
                {"num_hidden_layers", 61},
                {"num_nextn_predict_layers", 1},
                {"num_attention_heads", 128},
                {"num_key_value_heads", 128},
                {"n_routed_experts", 256},
                {"n_shared_experts", 1},
                {"num_experts_per_tok", 8},
                {"first_k_dense_replace", 3},
                {"moe_layer_freq", 1},
                {"q_lora_rank", 1536},
                {"kv_lora_rank", 512},
                {"qk_rope_head_dim", 64},
                {"qk_nope_head_dim", 128},
                {"v_head_dim", 128},
                {"vocab_size", 129280},
                {"max_position_embeddings", 163840},
                {"tie_word_embeddings", false},
                {"torch_dtype", "bfloat16"},
                {"quantization_config",
                 {{"quant_method", "fp8"},
                  {"activation_scheme", "dynamic"},
                  {"fmt", "e4m3"},
                  {"weight_block_size", {128, 128}}}}};
}

struct Published {
    double total;
    double active;
    /// The vendor's active count includes the input embedding table; ours never does (it is a
    /// lookup, not a matmul), so the test adds it back before comparing.
    bool active_includes_embedding;
};

/// Vendor figures (shared/models/README.md). Llama 4 Scout's 109B includes its vision encoder.
const std::map<std::string, Published>& published_counts() {
    static const std::map<std::string, Published> kCounts = {
        {"meta-llama__Llama-3.1-8B-Instruct", {8.0e9, 0, true}},
        {"meta-llama__Llama-3.1-70B-Instruct", {70.6e9, 0, true}},
        {"Qwen__Qwen3-32B", {32.8e9, 0, true}},
        {"Qwen__Qwen3-30B-A3B-Instruct-2507", {30.5e9, 3.3e9, true}},
        {"mistralai__Mixtral-8x7B-Instruct-v0.1", {46.7e9, 12.9e9, true}},
        {"mistralai__Mixtral-8x22B-Instruct-v0.1", {141e9, 39e9, true}},
        {"deepseek-ai__DeepSeek-V2-Lite", {15.7e9, 2.4e9, false}},
        {"Qwen__Qwen1.5-MoE-A2.7B", {14.3e9, 2.7e9, true}},
        {"meta-llama__Llama-4-Scout-17B-16E-Instruct", {109e9, 17e9, true}},
    };
    return kCounts;
}

TEST(ModelSpecTest, EverySharedModelMatchesPublishedParamCounts) {
    std::set<std::string> seen;
    for (const auto& entry : std::filesystem::directory_iterator(models_dir())) {
        if (entry.path().extension() != ".json") {
            continue;
        }
        const std::string stem = entry.path().stem().string();
        SCOPED_TRACE(stem);
        Result<ModelSpec> spec = load_model_spec(entry.path());
        ASSERT_TRUE(spec.is_ok()) << spec.status().message();
        EXPECT_EQ(spec->name, stem);
        auto it = published_counts().find(stem);
        ASSERT_NE(it, published_counts().end()) << "add the published counts of " << stem;
        seen.insert(stem);
        const Published& p = it->second;
        expect_near_rel(spec->total_params(), p.total, kParamTolerance, "total");
        if (spec->is_moe()) {
            const double active = spec->active_params() +
                                  (p.active_includes_embedding ? spec->embedding_params : 0.0);
            expect_near_rel(active, p.active, kParamTolerance, "active");
            EXPECT_LT(spec->active_params(), spec->total_params());
        } else {
            // Dense: every weight but the input embedding is used for each token.
            EXPECT_DOUBLE_EQ(spec->active_params(), spec->total_params() - spec->embedding_params);
        }
        EXPECT_EQ(spec->dtype, WeightDtype::kBf16);
        EXPECT_DOUBLE_EQ(spec->weight_bytes_total(), 2.0 * spec->total_params());
    }
    EXPECT_EQ(seen.size(), published_counts().size());
}

TEST(ModelSpecTest, Llama31_8bShape) {
    const ModelSpec s = load_shared("meta-llama__Llama-3.1-8B-Instruct");
    EXPECT_EQ(s.architecture, "LlamaForCausalLM");
    EXPECT_EQ(s.model_type, "llama");
    EXPECT_EQ(s.num_layers, 32);
    EXPECT_EQ(s.head_dim, 128);  // hidden / heads: the config has no head_dim
    EXPECT_EQ(s.num_kv_heads, 8);
    EXPECT_EQ(s.max_position_embeddings, 131072);
    EXPECT_EQ(s.attention, AttentionKind::kMultiHead);
    EXPECT_FALSE(s.is_moe());
    EXPECT_EQ(s.num_dense_layers, 32);
    EXPECT_DOUBLE_EQ(s.dense_ffn_params, 3.0 * 4096 * 14336);
    EXPECT_DOUBLE_EQ(s.attn_params_per_layer, 2.0 * 4096 * 4096 + 2.0 * 4096 * 1024);
    EXPECT_DOUBLE_EQ(s.kv_bytes_per_token(), 131072.0);
    EXPECT_DOUBLE_EQ(s.attn_flops_per_pair_per_layer, 2.0 * 32 * (128 + 128));
    EXPECT_EQ(s.sliding_window, 0);
    EXPECT_EQ(s.num_sliding_layers, 0);
    EXPECT_FALSE(s.tie_word_embeddings);
    EXPECT_DOUBLE_EQ(s.lm_head_params, 128256.0 * 4096);
}

TEST(ModelSpecTest, KvBytesPerToken) {
    EXPECT_DOUBLE_EQ(load_shared("Qwen__Qwen3-30B-A3B-Instruct-2507").kv_bytes_per_token(),
                     98304.0);
    EXPECT_DOUBLE_EQ(load_shared("meta-llama__Llama-3.1-70B-Instruct").kv_bytes_per_token(),
                     80.0 * 2 * 8 * 128 * 2);
    EXPECT_DOUBLE_EQ(load_shared("deepseek-ai__DeepSeek-V2-Lite").kv_bytes_per_token(),
                     27.0 * 576 * 2);
}

TEST(ModelSpecTest, Qwen3MoeNonEmbeddingCountMatchesModelCard) {
    const ModelSpec s = load_shared("Qwen__Qwen3-30B-A3B-Instruct-2507");
    EXPECT_EQ(s.num_moe_layers, 48);
    EXPECT_EQ(s.num_dense_layers, 0);
    EXPECT_EQ(s.num_experts, 128);
    EXPECT_EQ(s.experts_per_token, 8);
    EXPECT_DOUBLE_EQ(s.expert_params, 3.0 * 2048 * 768);
    EXPECT_DOUBLE_EQ(s.shared_expert_params, 0.0);
    // The model card's "non-embedding" count leaves out both embedding and lm_head: 29.9B.
    expect_near_rel(s.total_params() - s.embedding_params - s.lm_head_params, 29.9e9, 0.01,
                    "non-embedding");
}

TEST(ModelSpecTest, Qwen2MoeHasSharedExpert) {
    const ModelSpec s = load_shared("Qwen__Qwen1.5-MoE-A2.7B");
    EXPECT_EQ(s.num_moe_layers, 24);
    EXPECT_EQ(s.num_experts, 60);
    EXPECT_EQ(s.experts_per_token, 4);
    EXPECT_DOUBLE_EQ(s.shared_expert_params, 3.0 * 2048 * 5632);
    EXPECT_DOUBLE_EQ(s.router_params, 2048.0 * 60 + 2048.0);  // router plus shared_expert_gate
    EXPECT_EQ(s.num_sliding_layers, 0);                       // use_sliding_window is false
}

TEST(ModelSpecTest, QwenMoeSparseStepAndMlpOnlyLayers) {
    Json config = Json::parse(R"({
        "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe",
        "hidden_size": 2048, "intermediate_size": 6144, "num_hidden_layers": 8,
        "num_attention_heads": 32, "num_key_value_heads": 4, "head_dim": 128,
        "vocab_size": 151936, "num_experts": 128, "num_experts_per_tok": 8,
        "moe_intermediate_size": 768, "decoder_sparse_step": 2, "mlp_only_layers": [3]})");
    const ModelSpec s = parse_ok(config);
    // MoE where (layer + 1) % 2 == 0: layers 1, 3, 5, 7; layer 3 is listed as dense.
    EXPECT_EQ(s.num_moe_layers, 3);
    EXPECT_EQ(s.num_dense_layers, 5);
    EXPECT_DOUBLE_EQ(s.dense_ffn_params, 3.0 * 2048 * 6144);
}

TEST(ModelSpecTest, DeepseekV2LiteUsesLatentAttention) {
    const ModelSpec s = load_shared("deepseek-ai__DeepSeek-V2-Lite");
    EXPECT_EQ(s.attention, AttentionKind::kLatent);
    EXPECT_DOUBLE_EQ(s.kv_elems_per_token_per_layer, 576.0);
    EXPECT_DOUBLE_EQ(s.attn_flops_per_pair_per_layer, 2.0 * 16 * (576 + 512));
    EXPECT_EQ(s.num_dense_layers, 1);
    EXPECT_EQ(s.num_moe_layers, 26);
    EXPECT_EQ(s.num_experts, 64);
    EXPECT_EQ(s.experts_per_token, 6);
    EXPECT_DOUBLE_EQ(s.dense_ffn_params, 3.0 * 2048 * 10944);
    EXPECT_DOUBLE_EQ(s.shared_expert_params, 2 * 3.0 * 2048 * 1408);
    // q_lora_rank is null: q is a plain projection to 16 heads of 192.
    const double attn = 2048.0 * 16 * 192 + 2048.0 * 576 + 512.0 * 16 * 256 + 16.0 * 128 * 2048;
    EXPECT_DOUBLE_EQ(s.attn_params_per_layer, attn);
}

TEST(ModelSpecTest, DeepseekV3WithQueryCompressionAndFp8) {
    const ModelSpec s = parse_ok(deepseek_v3_config());
    EXPECT_EQ(s.num_dense_layers, 3);
    EXPECT_EQ(s.num_moe_layers, 58);
    EXPECT_EQ(s.dtype, WeightDtype::kFp8);
    EXPECT_DOUBLE_EQ(s.weight_bytes, 1.0);
    EXPECT_DOUBLE_EQ(s.expert_weight_bytes, 1.0);
    EXPECT_DOUBLE_EQ(s.kv_cache_bytes, 2.0);
    // Published: 671B total, 37B active (without the 14B multi-token-prediction module).
    expect_near_rel(s.total_params(), 671e9, kParamTolerance, "total");
    expect_near_rel(s.active_params(), 37e9, kParamTolerance, "active");
    EXPECT_DOUBLE_EQ(s.weight_bytes_total(),
                     s.total_params() + s.embedding_params + s.lm_head_params);
}

TEST(ModelSpecTest, Llama4ScoutChunkedAttentionAndSharedExpert) {
    const ModelSpec s = load_shared("meta-llama__Llama-4-Scout-17B-16E-Instruct");
    EXPECT_EQ(s.architecture, "Llama4ForConditionalGeneration");
    EXPECT_EQ(s.model_type, "llama4_text");
    EXPECT_EQ(s.num_moe_layers, 48);  // interleave_moe_layer_step 1
    EXPECT_EQ(s.num_dense_layers, 0);
    EXPECT_EQ(s.num_experts, 16);
    EXPECT_EQ(s.experts_per_token, 1);
    EXPECT_DOUBLE_EQ(s.shared_expert_params, 3.0 * 5120 * 8192);
    // Three of every four layers use RoPE and chunked attention; every fourth is global.
    EXPECT_EQ(s.sliding_window, 8192);
    EXPECT_EQ(s.num_sliding_layers, 36);
    EXPECT_FALSE(s.tie_word_embeddings);
    expect_near_rel(s.total_params(), 108e9, 0.02, "text-only total");
}

TEST(ModelSpecTest, Llama4MaverickInterleavesDenseLayers) {
    Json config = Json::parse(R"({
        "architectures": ["Llama4ForConditionalGeneration"], "model_type": "llama4",
        "text_config": {"model_type": "llama4_text", "hidden_size": 5120,
            "intermediate_size": 8192, "intermediate_size_mlp": 16384,
            "num_hidden_layers": 48, "num_attention_heads": 40, "num_key_value_heads": 8,
            "head_dim": 128, "vocab_size": 202048, "num_local_experts": 128,
            "num_experts_per_tok": 1, "interleave_moe_layer_step": 2,
            "attention_chunk_size": 8192, "torch_dtype": "bfloat16"}})");
    const ModelSpec s = parse_ok(config);
    EXPECT_EQ(s.num_moe_layers, 24);
    EXPECT_EQ(s.num_dense_layers, 24);
    EXPECT_DOUBLE_EQ(s.dense_ffn_params, 3.0 * 5120 * 16384);
    // Published: 400B total, 17B active (input embedding included).
    expect_near_rel(s.total_params(), 400e9, kParamTolerance, "total");
    expect_near_rel(s.active_params() + s.embedding_params, 17e9, kParamTolerance, "active");
}

TEST(ModelSpecTest, GptOss20bMxfp4Experts) {
    const ModelSpec s = parse_ok(gpt_oss_20b_config());
    EXPECT_EQ(s.architecture, "GptOssForCausalLM");
    EXPECT_EQ(s.num_moe_layers, 24);
    EXPECT_EQ(s.num_experts, 32);
    EXPECT_EQ(s.experts_per_token, 4);
    EXPECT_EQ(s.head_dim, 64);
    EXPECT_EQ(s.sliding_window, 128);
    EXPECT_EQ(s.num_sliding_layers, 12);
    EXPECT_EQ(s.dtype, WeightDtype::kBf16);
    EXPECT_DOUBLE_EQ(s.weight_bytes, 2.0);
    EXPECT_DOUBLE_EQ(s.expert_weight_bytes, 4.25 / 8.0);
    expect_near_rel(s.total_params(), 20.9e9, kParamTolerance, "total");
    expect_near_rel(s.active_params(), 3.6e9, kParamTolerance, "active");
    // The checkpoint is 12.8 GiB.
    expect_near_rel(s.weight_bytes_total(), 12.8 * 1024 * 1024 * 1024, 0.05, "weight bytes");
    EXPECT_DOUBLE_EQ(s.kv_bytes_per_token(), 24.0 * 2 * 8 * 64 * 2);
}

TEST(ModelSpecTest, GptOssAcceptsExpertsPerTokenAlone) {
    Json config = gpt_oss_20b_config();
    config.erase("num_experts_per_tok");
    EXPECT_EQ(parse_ok(config).experts_per_token, 4);
}

TEST(ModelSpecTest, Gemma2AlternatesLocalAndGlobalLayers) {
    const ModelSpec s = parse_ok(gemma2_9b_config());
    EXPECT_EQ(s.num_layers, 42);
    EXPECT_EQ(s.sliding_window, 4096);
    EXPECT_EQ(s.num_sliding_layers, 21);
    EXPECT_EQ(s.head_dim, 256);  // not hidden / heads (224)
    EXPECT_TRUE(s.tie_word_embeddings);
    EXPECT_EQ(s.dtype, WeightDtype::kBf16);                 // float32 checkpoint, served in 16 bits
    EXPECT_DOUBLE_EQ(s.total_params(), s.active_params());  // tied: embedding counted once
    EXPECT_DOUBLE_EQ(s.kv_bytes_per_token(), 42.0 * 2 * 8 * 256 * 2);
}

TEST(ModelSpecTest, Gemma3NestedTextConfigAndSlidingPattern) {
    const ModelSpec s = parse_ok(gemma3_27b_config());
    EXPECT_EQ(s.architecture, "Gemma3ForConditionalGeneration");
    EXPECT_EQ(s.model_type, "gemma3_text");
    EXPECT_EQ(s.num_layers, 62);
    EXPECT_EQ(s.sliding_window, 1024);
    EXPECT_EQ(s.num_sliding_layers, 52);  // 5 local : 1 global
    EXPECT_TRUE(s.tie_word_embeddings);
    EXPECT_EQ(s.head_dim, 128);
}

TEST(ModelSpecTest, Gemma3LayerTypesOverridePattern) {
    Json config = gemma3_27b_config();
    Json layer_types = Json::array();
    for (int i = 0; i < 62; ++i) {
        layer_types.push_back(i % 4 == 3 ? "full_attention" : "sliding_attention");
    }
    config["text_config"]["layer_types"] = layer_types;
    EXPECT_EQ(parse_ok(config).num_sliding_layers, 47);
}

TEST(ModelSpecTest, MistralSlidingWindowCoversEveryLayer) {
    Json config = llama_8b_config();
    config["architectures"] = {"MistralForCausalLM"};
    config["model_type"] = "mistral";
    config["sliding_window"] = 4096;
    const ModelSpec s = parse_ok(config);
    EXPECT_EQ(s.sliding_window, 4096);
    EXPECT_EQ(s.num_sliding_layers, 32);
}

TEST(ModelSpecTest, Fp8QuantizationConfig) {
    Json config = llama_8b_config();
    config["quantization_config"] = {{"quant_method", "fp8"}, {"activation_scheme", "dynamic"}};
    const ModelSpec s = parse_ok(config);
    EXPECT_EQ(s.dtype, WeightDtype::kFp8);
    EXPECT_DOUBLE_EQ(s.weight_bytes, 1.0);
    EXPECT_DOUBLE_EQ(s.kv_cache_bytes, 2.0);
    // vLLM keeps the embedding table and lm_head in 16 bits under every quantization method.
    EXPECT_DOUBLE_EQ(s.embedding_weight_bytes, 2.0);
    EXPECT_DOUBLE_EQ(s.weight_bytes_total(),
                     s.total_params() + s.embedding_params + s.lm_head_params);

    config["quantization_config"] = {{"quant_method", "fbgemm_fp8"}};
    EXPECT_EQ(parse_ok(config).dtype, WeightDtype::kFp8);
}

TEST(ModelSpecTest, CompressedTensorsEightBitIsFp8) {
    Json config = llama_8b_config();
    config["quantization_config"] = Json::parse(R"({
        "quant_method": "compressed-tensors",
        "config_groups": {"group_0": {"targets": ["Linear"],
            "weights": {"num_bits": 8, "type": "float", "strategy": "channel"}}}})");
    // Weight-only FP8 (no input_activations): 1 byte per weight, 16-bit matmuls.
    ModelSpec spec = parse_ok(config);
    EXPECT_EQ(spec.dtype, WeightDtype::kBf16);
    EXPECT_DOUBLE_EQ(spec.weight_bytes, 1.0);

    config["quantization_config"]["config_groups"]["group_0"]["input_activations"] =
        Json::parse(R"({"num_bits": 8, "type": "float", "strategy": "token", "dynamic": true})");
    spec = parse_ok(config);
    EXPECT_EQ(spec.dtype, WeightDtype::kFp8);
    EXPECT_DOUBLE_EQ(spec.weight_bytes, 1.0);
    EXPECT_DOUBLE_EQ(spec.expert_weight_bytes, 1.0);
}

/// The compressed-tensors schemes llm-compressor writes (W8A8 INT8, W8A16, W4A16, NVFP4A16).
TEST(ModelSpecTest, CompressedTensorsSchemes) {
    Json config = llama_8b_config();
    auto scheme = [&](const std::string& group_json) {
        config["quantization_config"] = Json::parse(
            R"({"quant_method": "compressed-tensors", "format": "pack-quantized",
                "ignore": ["lm_head"], "config_groups": {"group_0": )" +
            group_json + "}}");
        return parse_ok(config);
    };
    ModelSpec s = scheme(R"({"targets": ["Linear"],
        "weights": {"num_bits": 8, "type": "int", "symmetric": true, "strategy": "channel"},
        "input_activations": {"num_bits": 8, "type": "int", "symmetric": true, "dynamic": true,
                              "strategy": "token"}})");
    EXPECT_EQ(s.dtype, WeightDtype::kInt8);
    EXPECT_DOUBLE_EQ(s.weight_bytes, 1.0);

    s = scheme(R"({"targets": ["Linear"],
        "weights": {"num_bits": 8, "type": "int", "symmetric": true, "strategy": "channel"},
        "input_activations": null})");
    EXPECT_EQ(s.dtype, WeightDtype::kBf16);
    EXPECT_DOUBLE_EQ(s.weight_bytes, 1.0);

    // W4A16, groups of 128 with a 16-bit scale each: 4 + 16/128 bits per weight.
    s = scheme(R"({"targets": ["Linear"],
        "weights": {"num_bits": 4, "type": "int", "symmetric": true, "strategy": "group",
                    "group_size": 128}})");
    EXPECT_EQ(s.dtype, WeightDtype::kBf16);
    EXPECT_DOUBLE_EQ(s.weight_bytes, 4.125 / 8.0);
    EXPECT_DOUBLE_EQ(s.embedding_weight_bytes, 2.0);
    // About 5.7 GB for Llama-3.1-8B: 6.98 B linear weights at 0.516 B plus 1.05 B embeddings at 2.
    expect_near_rel(s.weight_bytes_total(), 5.7e9, 0.02, "llama-8b w4a16 bytes");

    // Asymmetric groups add a 4-bit zero point per group.
    s = scheme(R"({"weights": {"num_bits": 4, "type": "int", "symmetric": false,
                               "strategy": "group", "group_size": 128}})");
    EXPECT_DOUBLE_EQ(s.weight_bytes, (4.0 + 20.0 / 128.0) / 8.0);

    // NVFP4 weights with FP8 scales per 16, activations in 16 bits.
    s = scheme(R"({"weights": {"num_bits": 4, "type": "float", "strategy": "tensor_group",
                               "group_size": 16}})");
    EXPECT_DOUBLE_EQ(s.weight_bytes, (4.0 + 8.0 / 16.0) / 8.0);

    // What cannot be modelled says so, naming the field.
    config["quantization_config"]["config_groups"]["group_0"]["input_activations"] =
        Json::parse(R"({"num_bits": 4, "type": "float"})");
    expect_parse_error(config.dump(),
                       "'quantization_config.config_groups.group_0.input_activations.num_bits'");
    config["quantization_config"]["config_groups"]["group_0"] =
        Json::parse(R"({"weights": {"num_bits": 3, "type": "float"}})");
    expect_parse_error(config.dump(), "3-bit float weights");
    config["quantization_config"]["config_groups"] = Json::parse(R"({
        "group_0": {"weights": {"num_bits": 8, "type": "float"}},
        "group_1": {"weights": {"num_bits": 4, "type": "int", "strategy": "group",
                                "group_size": 128}}})");
    expect_parse_error(config.dump(), "use different schemes");
    config["quantization_config"]["config_groups"] = Json::object();
    expect_parse_error(config.dump(), "'quantization_config.config_groups' must be a non-empty");
    config["quantization_config"]["config_groups"] =
        Json::parse(R"({"group_0": {"weights": {"type": "int"}}})");
    expect_parse_error(
        config.dump(),
        "missing field 'quantization_config.config_groups.group_0.weights.num_bits'");
}

TEST(ModelSpecTest, GptqAndAwqAreWeightOnly) {
    Json config = llama_8b_config();
    config["quantization_config"] = Json::parse(
        R"({"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": false,
            "sym": true, "damp_percent": 0.01})");
    ModelSpec s = parse_ok(config);
    EXPECT_EQ(s.dtype, WeightDtype::kBf16);
    EXPECT_DOUBLE_EQ(s.weight_bytes, (4.0 + 20.0 / 128.0) / 8.0);  // scale + packed zero per group

    config["quantization_config"] =
        Json::parse(R"({"quant_method": "gptq", "bits": 8, "group_size": -1})");
    EXPECT_DOUBLE_EQ(parse_ok(config).weight_bytes, 1.0);  // per channel

    config["quantization_config"] = Json::parse(
        R"({"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": true,
            "version": "gemm"})");
    EXPECT_DOUBLE_EQ(parse_ok(config).weight_bytes, (4.0 + 20.0 / 128.0) / 8.0);
    config["quantization_config"] = Json::parse(
        R"({"quant_method": "awq", "w_bit": 4, "q_group_size": 64, "zero_point": false})");
    EXPECT_DOUBLE_EQ(parse_ok(config).weight_bytes, (4.0 + 16.0 / 64.0) / 8.0);

    config["quantization_config"] = Json::parse(R"({"quant_method": "gptq", "bits": 16})");
    expect_parse_error(config.dump(), "'quantization_config.bits' is 16 (expected 2 to 8)");
    config["quantization_config"] = Json::parse(R"({"quant_method": "awq"})");
    expect_parse_error(config.dump(), "missing field 'quantization_config.bits'");
}

TEST(ModelSpecTest, ModelOptFp8AndRefusedNvfp4) {
    Json config = llama_8b_config();
    config["quantization_config"] = Json::parse(
        R"({"quant_method": "modelopt", "quant_algo": "FP8", "kv_cache_quant_algo": null})");
    EXPECT_EQ(parse_ok(config).dtype, WeightDtype::kFp8);
    config["quantization_config"] =
        Json::parse(R"({"quant_method": "modelopt", "quantization": {"quant_algo": "FP8"}})");
    EXPECT_EQ(parse_ok(config).dtype, WeightDtype::kFp8);
    config["quantization_config"] =
        Json::parse(R"({"quant_method": "modelopt", "quant_algo": "NVFP4", "group_size": 16})");
    expect_parse_error(config.dump(), "quant_algo 'NVFP4' is not supported");
    config["quantization_config"] = Json::parse(R"({"quant_method": "bitsandbytes"})");
    expect_parse_error(config.dump(), "quant_method 'bitsandbytes' is not supported");
}

TEST(ModelSpecTest, DtypeOverrideWins) {
    Result<ModelSpec> fp8 =
        load_model_spec(models_dir() / "meta-llama__Llama-3.1-8B-Instruct.json", WeightDtype::kFp8);
    ASSERT_TRUE(fp8.is_ok()) << fp8.status().message();
    EXPECT_EQ(fp8->dtype, WeightDtype::kFp8);
    EXPECT_DOUBLE_EQ(fp8->weight_bytes, 1.0);
    EXPECT_DOUBLE_EQ(fp8->weight_bytes_total(),
                     fp8->total_params() + fp8->embedding_params + fp8->lm_head_params);

    const ModelSpec gpt = parse_ok(gpt_oss_20b_config(), WeightDtype::kBf16);
    EXPECT_DOUBLE_EQ(gpt.expert_weight_bytes, 2.0);

    // An unsupported quantization is an error unless the caller says what to assume.
    Json hqq = llama_8b_config();
    hqq["quantization_config"] = {{"quant_method", "hqq"}, {"bits", 4}};
    expect_parse_error(hqq.dump(), "quant_method 'hqq' is not supported");
    EXPECT_EQ(parse_ok(hqq, WeightDtype::kFp8).dtype, WeightDtype::kFp8);
    EXPECT_EQ(parse_ok(hqq, WeightDtype::kInt8).dtype, WeightDtype::kInt8);
}

TEST(ModelSpecTest, ParsesWeightDtypeNames) {
    for (const char* name : {"bf16", "bfloat16", "fp16", "float16", "BF16"}) {
        Result<WeightDtype> d = parse_weight_dtype(name);
        ASSERT_TRUE(d.is_ok()) << name;
        EXPECT_EQ(*d, WeightDtype::kBf16) << name;
    }
    for (const char* name : {"fp8", "float8"}) {
        Result<WeightDtype> d = parse_weight_dtype(name);
        ASSERT_TRUE(d.is_ok()) << name;
        EXPECT_EQ(*d, WeightDtype::kFp8) << name;
    }
    for (const char* name : {"int8", "W8A8"}) {
        Result<WeightDtype> d = parse_weight_dtype(name);
        ASSERT_TRUE(d.is_ok()) << name;
        EXPECT_EQ(*d, WeightDtype::kInt8) << name;
    }
    Result<WeightDtype> bad = parse_weight_dtype("int4");
    ASSERT_FALSE(bad.is_ok());
    EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(bad.status().message().find("int4"), std::string::npos);
}

TEST(ModelSpecTest, FallsBackToModelType) {
    Json config = llama_8b_config();
    config.erase("architectures");
    const ModelSpec s = parse_ok(config);
    EXPECT_EQ(s.architecture, "LlamaForCausalLM");
    EXPECT_EQ(s.name, "model");  // the source's stem when there is no _name_or_path
}

TEST(ModelSpecTest, MissingFieldIsNamed) {
    Json config = llama_8b_config();
    config.erase("hidden_size");
    expect_parse_error(config.dump(), "model.json: missing field 'hidden_size'");

    Json nested = Json::parse(R"({"architectures": ["Llama4ForConditionalGeneration"],
        "text_config": {"hidden_size": 5120}})");
    expect_parse_error(nested.dump(), "model.json: missing field 'text_config.num_hidden_layers'");

    Json no_text = Json::parse(R"({"architectures": ["Gemma3ForConditionalGeneration"]})");
    expect_parse_error(no_text.dump(), "missing field 'text_config'");

    Json no_mla = deepseek_v3_config();
    no_mla.erase("kv_lora_rank");
    expect_parse_error(no_mla.dump(), "missing field 'kv_lora_rank'");
}

TEST(ModelSpecTest, WrongTypeIsNamed) {
    Json config = llama_8b_config();
    config["hidden_size"] = "4096";
    expect_parse_error(config.dump(), "model.json: field 'hidden_size' must be a positive integer");
    config["hidden_size"] = 0;
    expect_parse_error(config.dump(), "field 'hidden_size' must be a positive integer");
    config["hidden_size"] = -4096;
    expect_parse_error(config.dump(), "field 'hidden_size' must be a positive integer");
    config["hidden_size"] = 4096.5;
    expect_parse_error(config.dump(), "field 'hidden_size' must be a positive integer");

    Json tie = llama_8b_config();
    tie["tie_word_embeddings"] = "yes";
    expect_parse_error(tie.dump(), "field 'tie_word_embeddings' must be true or false");

    Json top_k = llama_8b_config();
    top_k["architectures"] = {"MixtralForCausalLM"};
    top_k["num_local_experts"] = 8;
    top_k["num_experts_per_tok"] = 9;
    expect_parse_error(top_k.dump(), "exceeds the number of experts");

    expect_parse_error("[1, 2, 3]", "expected a JSON object");
}

TEST(ModelSpecTest, MalformedJsonReportsPosition) {
    expect_parse_error(R"({"hidden_size": 4096,)",
                       "model.json: malformed JSON: [json.exception.parse_error.101]");
    expect_parse_error("", "model.json: malformed JSON");
    // ~200 KB of nesting: a bounded parse, not a stack overflow.
    expect_parse_error(
        R"({"hidden_size": )" + std::string(100000, '[') + std::string(100000, ']') + "}",
        "model.json: JSON nested deeper than");
}

TEST(ModelSpecTest, UnknownArchitectureListsSupportedOnes) {
    Json config = llama_8b_config();
    config["architectures"] = {"BloomForCausalLM"};
    expect_parse_error(config.dump(), "unsupported architecture 'BloomForCausalLM'");
    expect_parse_error(config.dump(), "LlamaForCausalLM");
    expect_parse_error(config.dump(), "Gemma3ForConditionalGeneration");
}

TEST(ModelSpecTest, Pythia69bAndGptJ6bMatchPublishedCounts) {
    const ModelSpec pythia = parse_ok(Json::parse(R"({"architectures": ["GPTNeoXForCausalLM"],
        "model_type": "gpt_neox", "hidden_size": 4096, "intermediate_size": 16384,
        "num_hidden_layers": 32, "num_attention_heads": 32, "vocab_size": 50432,
        "rotary_pct": 0.25, "use_parallel_residual": true, "tie_word_embeddings": false,
        "torch_dtype": "float16"})"));
    expect_near_rel(pythia.total_params(), 6.86e9, 0.01, "pythia-6.9b");
    EXPECT_DOUBLE_EQ(pythia.kv_bytes_per_token(), 32.0 * 2 * 4096 * 2);
    const ModelSpec gptj = parse_ok(Json::parse(R"({"architectures": ["GPTJForCausalLM"],
        "model_type": "gptj", "n_embd": 4096, "n_layer": 28, "n_head": 16, "rotary_dim": 64,
        "n_inner": null, "vocab_size": 50400, "tie_word_embeddings": false})"));
    expect_near_rel(gptj.total_params(), 6.05e9, 0.01, "gpt-j-6b");
    EXPECT_EQ(gptj.head_dim, 256);
    EXPECT_DOUBLE_EQ(gptj.kv_bytes_per_token(), 28.0 * 2 * 4096 * 2);
}

/// Falcon in both config generations: FalconConfig names (7B: multi_query; 40B/180B: the new
/// decoder architecture with num_kv_heads) and the first RefinedWeb names (n_layer, n_head,
/// n_head_kv). Counts from the layer shapes vLLM loads (7B: qkv 4544 -> 4672 = (71 + 2) x 64).
TEST(ModelSpecTest, FalconMultiQueryAndNewDecoder) {
    const ModelSpec f7 = parse_ok(Json::parse(R"({"architectures": ["FalconForCausalLM"],
        "model_type": "falcon", "hidden_size": 4544, "num_hidden_layers": 32,
        "num_attention_heads": 71, "multi_query": true, "new_decoder_architecture": false,
        "parallel_attn": true, "alibi": false, "bias": false, "vocab_size": 65024,
        "torch_dtype": "bfloat16"})"));
    EXPECT_EQ(f7.num_kv_heads, 1);
    EXPECT_EQ(f7.head_dim, 64);
    EXPECT_TRUE(f7.tie_word_embeddings);
    EXPECT_DOUBLE_EQ(f7.dense_ffn_params, 2.0 * 4544 * 4 * 4544);
    expect_near_rel(f7.total_params(), 6.92e9, 0.01, "falcon-7b");
    EXPECT_DOUBLE_EQ(f7.kv_bytes_per_token(), 32.0 * 2 * 64 * 2);

    const ModelSpec rw7 = parse_ok(Json::parse(R"({"architectures": ["RWForCausalLM"],
        "model_type": "RefinedWebModel", "hidden_size": 4544, "n_layer": 32, "n_head": 71,
        "multi_query": true, "vocab_size": 65024})"));
    EXPECT_DOUBLE_EQ(rw7.total_params(), f7.total_params());

    const ModelSpec f40 = parse_ok(Json::parse(R"({"architectures": ["FalconForCausalLM"],
        "model_type": "falcon", "hidden_size": 8192, "num_hidden_layers": 60,
        "num_attention_heads": 128, "num_kv_heads": 8, "new_decoder_architecture": true,
        "vocab_size": 65024})"));
    EXPECT_EQ(f40.num_kv_heads, 8);
    expect_near_rel(f40.total_params(), 41.3e9, 0.01, "falcon-40b");
    const ModelSpec rw40 = parse_ok(Json::parse(R"({"architectures": ["RWForCausalLM"],
        "model_type": "RefinedWeb", "hidden_size": 8192, "n_layer": 60, "n_head": 128,
        "n_head_kv": 8, "vocab_size": 65024})"));
    EXPECT_DOUBLE_EQ(rw40.total_params(), f40.total_params());

    const ModelSpec f180 = parse_ok(Json::parse(R"({"architectures": ["FalconForCausalLM"],
        "model_type": "falcon", "hidden_size": 14848, "num_hidden_layers": 80,
        "num_attention_heads": 232, "num_kv_heads": 8, "new_decoder_architecture": true,
        "vocab_size": 65024})"));
    expect_near_rel(f180.total_params(), 180e9, kParamTolerance, "falcon-180b");

    // Falcon 2 11B: an untied lm_head and the default 4 x hidden MLP.
    const ModelSpec f11 = parse_ok(Json::parse(R"({"architectures": ["FalconForCausalLM"],
        "model_type": "falcon", "hidden_size": 4096, "num_hidden_layers": 60,
        "num_attention_heads": 32, "num_kv_heads": 8, "new_decoder_architecture": true,
        "tie_word_embeddings": false, "vocab_size": 65024})"));
    expect_near_rel(f11.total_params(), 11.1e9, 0.01, "falcon2-11b");

    expect_parse_error(R"({"architectures": ["FalconForCausalLM"], "hidden_size": 4544,
                           "num_attention_heads": 71, "vocab_size": 65024})",
                       "missing field 'num_hidden_layers'");
}

/// Phi-3 and Phi-4 are Llama-shaped (fused gate/up and qkv do not change the counts); PhiMoE is
/// Mixtral-shaped. Published counts: Phi-3-mini 3.8B, Phi-3-medium 14B, Phi-4 14.7B, Phi-4-mini
/// 3.8B, Phi-3.5-MoE 41.9B total / 6.6B active (model cards).
TEST(ModelSpecTest, Phi3Phi4AndPhiMoe) {
    auto phi3 = [](int hidden, int inter, int layers, int heads, int kv, int vocab, bool tied) {
        return Json{{"architectures", {"Phi3ForCausalLM"}},
                    {"model_type", "phi3"},
                    {"hidden_size", hidden},
                    {"intermediate_size", inter},
                    {"num_hidden_layers", layers},
                    {"num_attention_heads", heads},
                    {"num_key_value_heads", kv},
                    {"vocab_size", vocab},
                    {"sliding_window", 2047},
                    {"tie_word_embeddings", tied},
                    {"torch_dtype", "bfloat16"}};
    };
    const ModelSpec mini = parse_ok(phi3(3072, 8192, 32, 32, 32, 32064, false));
    expect_near_rel(mini.total_params(), 3.82e9, 0.01, "phi-3-mini");
    EXPECT_EQ(mini.sliding_window, 0);  // vLLM serves Phi-3 with full attention on every layer
    expect_near_rel(parse_ok(phi3(5120, 17920, 40, 40, 10, 32064, false)).total_params(), 14e9,
                    0.01, "phi-3-medium");
    expect_near_rel(parse_ok(phi3(5120, 17920, 40, 40, 10, 100352, false)).total_params(), 14.7e9,
                    0.01, "phi-4");
    const ModelSpec mini4 = parse_ok(phi3(3072, 8192, 32, 24, 8, 200064, true));
    expect_near_rel(mini4.total_params(), 3.84e9, 0.01, "phi-4-mini");
    EXPECT_EQ(mini4.head_dim, 128);

    const ModelSpec moe = parse_ok(Json::parse(R"({"architectures": ["PhiMoEForCausalLM"],
        "model_type": "phimoe", "hidden_size": 4096, "intermediate_size": 6400,
        "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
        "num_local_experts": 16, "num_experts_per_tok": 2, "vocab_size": 32064,
        "sliding_window": 131072, "tie_word_embeddings": false})"));
    EXPECT_TRUE(moe.is_moe());
    expect_near_rel(moe.total_params(), 41.9e9, 0.01, "phi-3.5-moe total");
    expect_near_rel(moe.active_params() + moe.embedding_params, 6.6e9, 0.01, "phi-3.5-moe active");

    expect_parse_error(R"({"architectures": ["Phi3SmallForCausalLM"]})",
                       "unsupported architecture 'Phi3SmallForCausalLM'");
}

/// Gemma 3 at every size, as the checkpoints ship their configs: 270M and 1B are text-only
/// (gemma3_text); 4B, 12B and 27B nest the language model under text_config and leave out what
/// equals Gemma3TextConfig's defaults (the 4B even its head counts). Counts are the language
/// model only; the published 4B/12B/27B include a ~0.4B vision tower that is not served per
/// token. Published text counts: 268M, 1.0B, 3.88B, 11.8B, 27.0B.
TEST(ModelSpecTest, Gemma3EverySize) {
    const ModelSpec g270m = parse_ok(Json::parse(R"({"architectures": ["Gemma3ForCausalLM"],
        "model_type": "gemma3_text", "hidden_size": 640, "intermediate_size": 2048,
        "num_hidden_layers": 18, "num_attention_heads": 4, "num_key_value_heads": 1,
        "head_dim": 256, "vocab_size": 262144, "sliding_window": 512,
        "max_position_embeddings": 32768})"));
    expect_near_rel(g270m.total_params(), 0.268e9, 0.01, "gemma-3-270m");
    const ModelSpec g1 = parse_ok(Json::parse(R"({"architectures": ["Gemma3ForCausalLM"],
        "model_type": "gemma3_text", "hidden_size": 1152, "intermediate_size": 6912,
        "num_hidden_layers": 26, "num_attention_heads": 4, "num_key_value_heads": 1,
        "head_dim": 256, "vocab_size": 262144, "sliding_window": 512,
        "sliding_window_pattern": 6, "max_position_embeddings": 32768})"));
    expect_near_rel(g1.total_params(), 1.0e9, 0.01, "gemma-3-1b");
    EXPECT_EQ(g1.num_sliding_layers, 22);

    auto nested = [](const Json& text) {
        return Json{{"architectures", {"Gemma3ForConditionalGeneration"}},
                    {"model_type", "gemma3"},
                    {"torch_dtype", "bfloat16"},
                    {"text_config", text}};
    };
    const ModelSpec g4 = parse_ok(nested(Json::parse(R"({"model_type": "gemma3_text",
        "hidden_size": 2560, "intermediate_size": 10240, "num_hidden_layers": 34,
        "sliding_window": 1024, "rope_scaling": {"factor": 8.0, "rope_type": "linear"}})")));
    EXPECT_EQ(g4.num_attention_heads, 8);
    EXPECT_EQ(g4.num_kv_heads, 4);
    EXPECT_EQ(g4.head_dim, 256);
    EXPECT_EQ(g4.vocab_size, 262208);
    expect_near_rel(g4.total_params(), 3.88e9, 0.01, "gemma-3-4b text");
    const ModelSpec g12 = parse_ok(nested(Json::parse(R"({"model_type": "gemma3_text",
        "hidden_size": 3840, "intermediate_size": 15360, "num_hidden_layers": 48,
        "num_attention_heads": 16, "num_key_value_heads": 8, "sliding_window": 1024})")));
    expect_near_rel(g12.total_params(), 11.8e9, 0.01, "gemma-3-12b text");
    expect_near_rel(parse_ok(gemma3_27b_config()).total_params(), 27.0e9, 0.01, "gemma-3-27b text");

    // An empty text_config is Gemma3TextConfig's own default model.
    const ModelSpec defaults = parse_ok(nested(Json::object()));
    EXPECT_EQ(defaults.hidden_size, 2304);
    EXPECT_EQ(defaults.num_layers, 26);
}

TEST(ModelSpecTest, HybridStateSpaceModelsAreRefusedByName) {
    expect_parse_error(R"({"architectures": ["NemotronHForCausalLM"], "model_type": "nemotron_h",
                           "hybrid_override_pattern": "M-M-M*-"})",
                       "'NemotronHForCausalLM' has hybrid/state-space");
    expect_parse_error(R"({"architectures": ["JambaForCausalLM"]})", "per-token KV");
    expect_parse_error(R"({"model_type": "mamba"})", "'mamba' has hybrid/state-space");
}

TEST(ModelSpecTest, LoadErrorsNameThePath) {
    const std::filesystem::path missing = models_dir() / "no-such-model.json";
    Result<ModelSpec> spec = load_model_spec(missing);
    ASSERT_FALSE(spec.is_ok());
    EXPECT_EQ(spec.status().code(), StatusCode::kNotFound);
    EXPECT_NE(spec.status().message().find(missing.string()), std::string::npos);

    const std::filesystem::path bad =
        std::filesystem::path(testing::TempDir()) / "pals_model_spec_test_bad.json";
    {
        std::ofstream out(bad);
        out << R"({"architectures": ["LlamaForCausalLM"], "num_hidden_layers": 2})";
    }
    spec = load_model_spec(bad);
    std::filesystem::remove(bad);
    ASSERT_FALSE(spec.is_ok());
    EXPECT_EQ(spec.status().message().rfind(bad.string() + ": missing field", 0), 0u)
        << spec.status().message();
}

}  // namespace
}  // namespace pals::model
