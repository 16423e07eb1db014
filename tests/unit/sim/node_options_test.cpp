// The node and SLO option tables: one set of defaults (NodeConfig's), one validation, errors
// that name the origin of the key at fault.
#include "pals/sim/node_options.hpp"

#include <gtest/gtest.h>

#include <string>

#include "status_assertions.hpp"

namespace pals::sim {
namespace {

const std::string kLlama =
    std::string(PALS_SHARED_DIR) + "/models/meta-llama__Llama-3.1-8B-Instruct.json";

OptionOrigins flag_origins() {
    OptionOrigins o;
    o.fallback = [](std::string_view key) {
        return option_flag(*find_option(node_options(), key));
    };
    return o;
}

TEST(NodeOptionsTest, DefaultsAreNodeConfigs) {
    const NodeConfig defaults;
    const NodeConfig built = NodeOptions{}.build({}, kLlama).value();
    EXPECT_EQ(built.engine.max_num_seqs, defaults.engine.max_num_seqs);
    EXPECT_EQ(built.engine.max_num_seqs, 1024);  // vLLM's default on H100-class GPUs
    EXPECT_EQ(built.engine.max_num_batched_tokens, defaults.engine.max_num_batched_tokens);
    EXPECT_EQ(built.engine.enable_chunked_prefill, defaults.engine.enable_chunked_prefill);
    EXPECT_EQ(built.engine.block_size, defaults.engine.block_size);
    EXPECT_EQ(built.parallel.tp, defaults.parallel.tp);
    EXPECT_EQ(built.replicas, defaults.replicas);
    EXPECT_EQ(built.gpu.name, "H100-SXM");
    EXPECT_EQ(built.model.name, "meta-llama__Llama-3.1-8B-Instruct");
}

TEST(NodeOptionsTest, ErrorsNameTheOriginOfTheKey) {
    NodeOptions o;
    o.gpu = "H900";
    EXPECT_STATUS(o.build(flag_origins(), kLlama), StatusCode::kInvalidArgument,
                  "--gpu: unknown GPU");
    o = {};
    o.tp = 64;
    o.replicas = 32;
    EXPECT_STATUS(o.build(flag_origins(), kLlama), StatusCode::kInvalidArgument,
                  "--replicas: tp x replicas must be at most 1024 GPUs");
    o = {};
    o.power_cap_w = 100;
    EXPECT_STATUS(o.build(flag_origins(), kLlama), StatusCode::kOutOfRange,
                  "--power-cap: 100 W is outside 200-700 W for H100-SXM");
    o = {};
    o.locked_clock_mhz = 5000;
    EXPECT_STATUS(o.build(flag_origins(), kLlama), StatusCode::kOutOfRange, "--locked-clock");
    o = {};
    o.max_num_seqs = 0;  // set past the reader: build() checks the range again
    EXPECT_STATUS(o.build(flag_origins(), kLlama), StatusCode::kOutOfRange,
                  "--max-num-seqs: must be 1-1000000 (got 0)");
    o = {};
    o.model = "/nonexistent/config.json";
    OptionOrigins given;
    given.given["model"] = "s.toml:2:1: node.model";
    EXPECT_STATUS(o.build(given, kLlama), StatusCode::kNotFound, "s.toml:2:1: node.model");
}

TEST(NodeOptionsTest, ValidateIsTheSimulatorsCheckToo) {
    NodeConfig node;
    EXPECT_OK(validate(node));
    node.engine.gpu_memory_utilization = 0.0;
    EXPECT_STATUS(validate(node), StatusCode::kInvalidArgument, "gpu_memory_utilization");
    auto sim = Simulator::create(node, {}, {});
    EXPECT_STATUS(sim, StatusCode::kInvalidArgument, "gpu_memory_utilization");
    EXPECT_STATUS(validate(SloTargets{.ttft_s = 1.0, .tpot_s = 0.0}), StatusCode::kInvalidArgument,
                  "SLO");
}

TEST(NodeOptionsTest, ActuatorsAreFlagsOnly) {
    EXPECT_FALSE(find_option(node_options(), "power_cap_w")->in_file);
    EXPECT_EQ(option_flag(*find_option(node_options(), "power_cap_w")), "--power-cap");
    EXPECT_EQ(option_env(*find_option(node_options(), "max_num_seqs")), "PALS_MAX_NUM_SEQS");
    EXPECT_EQ(option_flag(*find_option(slo_options(), "tpot_s")), "--slo-tpot");
}

}  // namespace
}  // namespace pals::sim
