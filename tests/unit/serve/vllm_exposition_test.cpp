// The /metrics text of sim-serve: vLLM's format, read back by PALS's own vLLM parser.
#include "serve/vllm_exposition.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "pals/engine/vllm/vllm_metrics.hpp"

namespace pals::serve {
namespace {

TEST(VllmExpositionTest, FormatsFloatsAsPrometheusClient) {
    EXPECT_EQ(format_prometheus_float(3.0), "3.0");
    EXPECT_EQ(format_prometheus_float(0.42), "0.42");
    EXPECT_EQ(format_prometheus_float(1.5e-05), "1.5e-05");
    EXPECT_EQ(format_prometheus_float(2560.0), "2560.0");
    EXPECT_EQ(format_prometheus_float(std::numeric_limits<double>::infinity()), "+Inf");
    EXPECT_EQ(format_prometheus_float(std::nan("")), "NaN");
}

TEST(VllmExpositionTest, EscapesLabelValues) {
    EXPECT_EQ(escape_label_value(R"(a"b\c)"), R"(a\"b\\c)");
    EXPECT_EQ(escape_label_value("a\nb"), "a\\nb");
}

TEST(VllmExpositionTest, ParsesWithTheVllmReaderPerEngine) {
    std::vector<ReplicaMetrics> replicas(2);
    replicas[0].running = 3;
    replicas[0].waiting = 1;
    replicas[0].kv_cache_usage = 0.5;
    replicas[0].prompt_tokens = 100;
    replicas[0].generation_tokens = 40;
    replicas[0].finished_length = 2;
    replicas[0].finished_abort = 1;
    replicas[0].ttft_s.observe(0.03);
    replicas[0].itl_s.observe(0.012, 10);
    replicas[0].e2e_s.observe(0.7);
    replicas[0].tpot_s.observe(0.012);
    replicas[1].running = 1;
    replicas[1].generation_tokens = 5;
    replicas[1].kv_cache_usage = 0.1;
    replicas[1].batch_cap = 8;
    const std::string text = render_vllm_metrics("org/m", replicas);
    EXPECT_NE(text.find("vllm:num_requests_running{engine=\"1\",model_name=\"org/m\"} 1.0\n"),
              std::string::npos);
    EXPECT_NE(text.find("le=\"2560.0\""), std::string::npos);
    EXPECT_NE(text.find("pals_sim_batch_cap{engine=\"1\",model_name=\"org/m\"} 8.0"),
              std::string::npos);

    auto all = engine::vllm::snapshot_from_text(text, {"org/m", ""}, Seconds{0.0});
    ASSERT_TRUE(all.is_ok()) << all.status().message();
    EXPECT_EQ(all->running, 4);
    EXPECT_EQ(all->waiting, 1);
    EXPECT_DOUBLE_EQ(all->kv_cache_usage, 0.3);  // the mean over engines
    EXPECT_DOUBLE_EQ(all->generation_tokens, 45.0);
    EXPECT_DOUBLE_EQ(all->requests_finished, 3.0);  // length + abort
    EXPECT_DOUBLE_EQ(all->itl_s.count, 10.0);
    EXPECT_EQ(all->ttft_s.upper_bounds.size(), engine::vllm_ttft_buckets().size() + 1);
    EXPECT_EQ(all->e2e_s.upper_bounds.size(), engine::vllm_e2e_buckets().size() + 1);

    auto one = engine::vllm::snapshot_from_text(text, {"", "1"}, Seconds{0.0});
    ASSERT_TRUE(one.is_ok()) << one.status().message();
    EXPECT_EQ(one->running, 1);
    EXPECT_DOUBLE_EQ(one->generation_tokens, 5.0);
}

}  // namespace
}  // namespace pals::serve
