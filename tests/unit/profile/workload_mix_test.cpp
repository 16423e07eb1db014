#include "pals/profile/workload_mix.hpp"

#include <gtest/gtest.h>

#include "profile_test_helpers.hpp"

namespace pals::profile {
namespace {

TEST(WorkloadMixTest, DefaultMixIsUniformPromptsAnd256Outputs) {
    const WorkloadMix mix = default_workload_mix();
    EXPECT_EQ(mix.name, "default");
    EXPECT_DOUBLE_EQ(mix.mean_input_tokens(), (64.0 + 512.0) / 2.0);
    EXPECT_DOUBLE_EQ(mix.mean_output_tokens(), 256.0);
}

TEST(WorkloadMixTest, ParsesKeyValueSpecs) {
    auto mix = parse_workload_mix("short=in=128,out=uniform:10:20,seed=7");
    ASSERT_OK(mix);
    EXPECT_EQ(mix->name, "short");
    EXPECT_DOUBLE_EQ(mix->mean_input_tokens(), 128.0);
    EXPECT_DOUBLE_EQ(mix->mean_output_tokens(), 15.0);
    EXPECT_EQ(mix->seed, 7u);
    // Unset lengths keep the default mix's.
    auto only_out = parse_workload_mix("o=out=64");
    ASSERT_OK(only_out);
    EXPECT_DOUBLE_EQ(only_out->mean_input_tokens(), 288.0);
}

TEST(WorkloadMixTest, ParsesHistogramFilesAndTraces) {
    const std::string hist =
        std::string(PALS_SHARED_DIR) +
        "/calibration/mlenergy-v3/output_length_distributions.json#Qwen/Qwen3-32B";
    auto mix = parse_workload_mix("chat=in=uniform:64:512,out=" + hist);
    ASSERT_OK(mix);
    EXPECT_GT(mix->mean_output_tokens(), 100.0);

    const std::string trace =
        std::string(PALS_SHARED_DIR) + "/traces/AzureLLMInferenceTrace_code.csv";
    auto bare = parse_workload_mix("code=" + trace);
    ASSERT_OK(bare);
    EXPECT_GT(bare->lengths.size(), 1000u);
    auto keyed = parse_workload_mix("code=trace=" + trace);
    ASSERT_OK(keyed);
    EXPECT_EQ(keyed->lengths.size(), bare->lengths.size());
    // Lengths are taken in order and cycled.
    const auto requests = bare->closed_loop_requests(3, 0);
    EXPECT_EQ(requests[1].input_tokens, std::max(1, bare->lengths[1].input_tokens));
}

TEST(WorkloadMixTest, RejectsBadSpecsWithTheKey) {
    EXPECT_STATUS(parse_workload_mix("noequals"), StatusCode::kInvalidArgument,
                  "expected NAME=SPEC");
    EXPECT_STATUS(parse_workload_mix("bad name=in=5"), StatusCode::kInvalidArgument,
                  "name 'bad name'");
    EXPECT_STATUS(parse_workload_mix("a=in=5,colour=red"), StatusCode::kInvalidArgument,
                  "unknown key 'colour'");
    EXPECT_STATUS(parse_workload_mix("a=in=uniform:9:3"), StatusCode::kInvalidArgument, "in");
    EXPECT_STATUS(parse_workload_mix("a=in=5,"), StatusCode::kInvalidArgument, "empty item");
    EXPECT_STATUS(parse_workload_mix("a=seed=-1"), StatusCode::kInvalidArgument, "seed");
    EXPECT_STATUS(parse_workload_mix("a=/no/such/trace.csv"), StatusCode::kNotFound,
                  "/no/such/trace.csv");
}

TEST(WorkloadMixTest, ClosedLoopIsSeededAndStaggered) {
    const WorkloadMix mix = default_workload_mix();
    const auto a = mix.closed_loop_requests(200, 50);
    const auto b = mix.closed_loop_requests(200, 50);
    ASSERT_EQ(a.size(), 200u);
    for (std::size_t i = 0; i < a.size(); ++i) {
        EXPECT_EQ(a[i].input_tokens, b[i].input_tokens);
        EXPECT_EQ(a[i].output_tokens, b[i].output_tokens);
        EXPECT_EQ(a[i].arrival_s, 0.0);
        EXPECT_EQ(a[i].id, i);
    }
    // The first 50 start part-way through their 256 output tokens, spread over (0, 256].
    int shorter = 0;
    for (int i = 0; i < 50; ++i) {
        EXPECT_GE(a[static_cast<std::size_t>(i)].output_tokens, 1);
        EXPECT_LE(a[static_cast<std::size_t>(i)].output_tokens, 256);
        shorter += a[static_cast<std::size_t>(i)].output_tokens < 200 ? 1 : 0;
    }
    EXPECT_GT(shorter, 25);
    for (std::size_t i = 50; i < a.size(); ++i) {
        EXPECT_EQ(a[i].output_tokens, 256);
    }
}

}  // namespace
}  // namespace pals::profile
