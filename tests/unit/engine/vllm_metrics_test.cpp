#include "pals/engine/vllm/vllm_metrics.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "pals/common/file_util.hpp"

namespace pals::engine::vllm {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

std::string golden(const std::string& name) {
    auto text = read_file(std::string(PALS_SOURCE_DIR) + "/tests/data/vllm/" + name);
    EXPECT_TRUE(text.is_ok()) << text.status().message();
    return text.is_ok() ? *text : std::string{};
}

std::vector<double> with_inf(std::vector<double> b) {
    b.push_back(kInf);
    return b;
}

TEST(VllmMetricsTest, GoldenV011SnapshotHasExactValues) {
    auto snap = snapshot_from_text(golden("metrics_v0_11.txt"), {}, Seconds{12.5});
    ASSERT_TRUE(snap.is_ok()) << snap.status().message();
    const EngineSnapshot& s = *snap;
    EXPECT_DOUBLE_EQ(s.time.count(), 12.5);
    EXPECT_EQ(s.running, 7);
    EXPECT_EQ(s.waiting, 3);
    EXPECT_DOUBLE_EQ(s.kv_cache_usage, 0.4237);
    EXPECT_EQ(s.batch_cap, 0);
    EXPECT_DOUBLE_EQ(s.prompt_tokens, 152340.0);
    EXPECT_DOUBLE_EQ(s.generation_tokens, 48211.0);
    EXPECT_DOUBLE_EQ(s.requests_finished, 43.0);  // stop 40 + length 2 + abort 1
    EXPECT_DOUBLE_EQ(s.preemptions, 5.0);

    EXPECT_EQ(s.ttft_s.upper_bounds, with_inf(vllm_ttft_buckets()));
    EXPECT_EQ(s.itl_s.upper_bounds, with_inf(vllm_itl_buckets()));
    EXPECT_EQ(s.tpot_s.upper_bounds, with_inf(vllm_itl_buckets()));
    EXPECT_EQ(s.e2e_s.upper_bounds, with_inf(vllm_e2e_buckets()));

    EXPECT_DOUBLE_EQ(s.ttft_s.count, 43.0);
    EXPECT_DOUBLE_EQ(s.ttft_s.sum, 3.217);
    EXPECT_DOUBLE_EQ(s.ttft_s.cumulative_counts[4], 10.0);  // le=0.04
    EXPECT_DOUBLE_EQ(s.ttft_s.cumulative_counts.back(), 43.0);
    // p50: rank 21.5 in (0.06, 0.08] holding 20..30; p99: rank 42.57 in (0.5, 0.75] holding 42..43.
    EXPECT_NEAR(s.ttft_s.quantile(0.5), 0.06 + 0.02 * 1.5 / 10.0, 1e-12);
    EXPECT_NEAR(s.ttft_s.quantile(0.99), 0.5 + 0.25 * 0.57, 1e-9);

    EXPECT_DOUBLE_EQ(s.itl_s.count, 48168.0);
    EXPECT_DOUBLE_EQ(s.itl_s.sum, 1734.05);
    EXPECT_NEAR(s.itl_s.quantile(0.5), 0.025 + 0.025 * (24084.0 - 12000.0) / 28000.0, 1e-12);
    EXPECT_DOUBLE_EQ(s.tpot_s.count, 43.0);
    EXPECT_DOUBLE_EQ(s.tpot_s.sum, 1.6125);
    EXPECT_NEAR(s.tpot_s.quantile(0.5), 0.025 + 0.025 * (21.5 - 5.0) / 33.0, 1e-12);
    EXPECT_DOUBLE_EQ(s.e2e_s.count, 43.0);
    EXPECT_DOUBLE_EQ(s.e2e_s.sum, 122.4);
    EXPECT_NEAR(s.e2e_s.quantile(0.9), 5.0 + 5.0 * (38.7 - 38.0) / 5.0, 1e-9);  // in (5, 10]
    EXPECT_NEAR(s.e2e_s.mean(), 122.4 / 43.0, 1e-12);
}

TEST(VllmMetricsTest, OldNamesAndTwoEnginesAreSummedInMultiprocessOrder) {
    auto snap = snapshot_from_text(golden("metrics_old_names.txt"), {}, Seconds{1.0});
    ASSERT_TRUE(snap.is_ok()) << snap.status().message();
    const EngineSnapshot& s = *snap;
    EXPECT_EQ(s.running, 9);
    EXPECT_EQ(s.waiting, 2);
    EXPECT_NEAR(s.kv_cache_usage, 0.30, 1e-12);  // mean of the two engines' caches
    EXPECT_DOUBLE_EQ(s.prompt_tokens, 4000.0);
    EXPECT_DOUBLE_EQ(s.generation_tokens, 1200.0);
    EXPECT_DOUBLE_EQ(s.requests_finished, 23.0);
    EXPECT_DOUBLE_EQ(s.preemptions, 1.0);
    // TTFT summed bucket by bucket: <=0.04: 1, <=0.06: 7, <=0.08: 17, <=0.1: 23.
    EXPECT_DOUBLE_EQ(s.ttft_s.count, 23.0);
    EXPECT_NEAR(s.ttft_s.sum, 0.682 + 0.901, 1e-12);
    EXPECT_DOUBLE_EQ(s.ttft_s.cumulative_counts[5], 7.0);
    EXPECT_NEAR(s.ttft_s.quantile(0.5), 0.06 + 0.02 * (11.5 - 7.0) / 10.0, 1e-12);
    // The old ITL name is used; no per-request TPOT on this server: an empty histogram.
    EXPECT_DOUBLE_EQ(s.itl_s.count, 489.0 + 688.0);
    EXPECT_DOUBLE_EQ(s.tpot_s.count, 0.0);
    EXPECT_EQ(s.tpot_s.upper_bounds, with_inf(vllm_itl_buckets()));
    EXPECT_DOUBLE_EQ(s.e2e_s.count, 23.0);
    EXPECT_NEAR(s.e2e_s.sum, 40.75, 1e-12);
}

TEST(VllmMetricsTest, FiltersOneEngineOrModel) {
    const std::string text = golden("metrics_old_names.txt");
    auto e1 = snapshot_from_text(text, {"", "1"}, Seconds{0.0});
    ASSERT_TRUE(e1.is_ok()) << e1.status().message();
    EXPECT_EQ(e1->running, 5);
    EXPECT_DOUBLE_EQ(e1->kv_cache_usage, 0.35);
    EXPECT_DOUBLE_EQ(e1->prompt_tokens, 3000.0);
    EXPECT_DOUBLE_EQ(e1->ttft_s.count, 12.0);
    auto model = snapshot_from_text(text, {"Qwen/Qwen2.5-7B-Instruct", ""}, Seconds{0.0});
    ASSERT_TRUE(model.is_ok());
    EXPECT_EQ(model->running, 9);
    auto other = snapshot_from_text(text, {"other-model", ""}, Seconds{0.0});
    ASSERT_FALSE(other.is_ok());
    EXPECT_NE(other.status().message().find("vllm:num_requests_running"), std::string::npos);
    EXPECT_NE(other.status().message().find("model_name=\"other-model\""), std::string::npos);
}

TEST(VllmMetricsTest, PrefersNewNamesWhenBothArePresent) {
    std::string text = golden("metrics_v0_11.txt");
    text +=
        "vllm:gpu_cache_usage_perc{engine=\"0\",model_name=\"M\"} 0.99\n"
        "vllm:time_per_output_token_seconds_bucket{engine=\"1\",le=\"+Inf\",model_name=\"M\"} "
        "5.0\n";
    auto snap = snapshot_from_text(text, {}, Seconds{0.0});
    ASSERT_TRUE(snap.is_ok()) << snap.status().message();
    EXPECT_DOUBLE_EQ(snap->kv_cache_usage, 0.4237);
    EXPECT_DOUBLE_EQ(snap->itl_s.count, 48168.0);
}

TEST(VllmMetricsTest, NoVllmSeriesAtAllNamesDisableLogStats) {
    // What vLLM serves with --disable-log-stats: process and Python metrics only.
    const std::string text =
        "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 12.5\n"
        "# TYPE python_gc_collections_total counter\n"
        "python_gc_collections_total{generation=\"0\"} 42\n";
    auto snap = snapshot_from_text(text, {}, Seconds{0.0});
    ASSERT_FALSE(snap.is_ok());
    EXPECT_NE(snap.status().message().find("started with --disable-log-stats"), std::string::npos)
        << snap.status().message();
}

TEST(VllmMetricsTest, MissingRequiredMetricIsNamed) {
    const std::string text = golden("metrics_v0_11.txt");
    struct Case {
        std::string drop;      // lines starting with this are removed
        std::string expected;  // the error names this
    };
    for (const Case& c :
         {Case{"vllm:num_requests_waiting{", "vllm:num_requests_waiting"},
          Case{"vllm:kv_cache_usage_perc{",
               "vllm:kv_cache_usage_perc (or vllm:gpu_cache_usage_perc)"},
          Case{"vllm:generation_tokens_total{", "vllm:generation_tokens_total"},
          Case{"vllm:num_preemptions_total{", "vllm:num_preemptions_total"},
          Case{"vllm:request_success_total{", "vllm:request_success_total"},
          Case{"vllm:e2e_request_latency_seconds_", "vllm:e2e_request_latency_seconds"},
          Case{"vllm:time_to_first_token_seconds_", "vllm:time_to_first_token_seconds"}}) {
        std::string kept;
        std::size_t start = 0;
        while (start < text.size()) {
            std::size_t end = text.find('\n', start);
            end = end == std::string::npos ? text.size() : end + 1;
            if (text.compare(start, c.drop.size(), c.drop) != 0) {
                kept += text.substr(start, end - start);
            }
            start = end;
        }
        auto snap = snapshot_from_text(kept, {}, Seconds{0.0});
        ASSERT_FALSE(snap.is_ok()) << c.drop;
        EXPECT_EQ(snap.status().code(), StatusCode::kInvalidArgument);
        EXPECT_NE(snap.status().message().find("required metric " + c.expected + " is missing"),
                  std::string::npos)
            << snap.status().message();
    }
}

TEST(VllmMetricsTest, HistogramSortsBucketsAndRejectsMalformedOnes) {
    auto parsed = parse_prometheus_text(
        "h_bucket{le=\"+Inf\"} 4\n"
        "h_bucket{le=\"1.0\"} 3\n"
        "h_bucket{le=\"0.5\"} 1\n"
        "h_sum 2.5\n");
    ASSERT_TRUE(parsed.is_ok());
    auto h = histogram_from_metrics(*parsed, "h", {});
    ASSERT_TRUE(h.is_ok()) << h.status().message();
    EXPECT_EQ(h->upper_bounds, (std::vector<double>{0.5, 1.0, kInf}));
    EXPECT_EQ(h->cumulative_counts, (std::vector<double>{1.0, 3.0, 4.0}));
    EXPECT_DOUBLE_EQ(h->count, 4.0);  // no _count: taken from +Inf
    EXPECT_DOUBLE_EQ(h->sum, 2.5);
    EXPECT_EQ(histogram_from_metrics(*parsed, "absent", {}).status().code(), StatusCode::kNotFound);

    struct Case {
        const char* text;
        const char* expected;
    };
    for (const Case& c :
         {Case{"h_bucket{le=\"1\"} 1\nh_sum 1\n", "no le=\"+Inf\" bucket"},
          Case{"h_bucket{le=\"x\"} 1\nh_sum 1\n", "invalid le=\"x\""},
          Case{"h_bucket 1\nh_sum 1\n", "no le label"},
          Case{"h_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\n", "decrease"},
          Case{"h_bucket{le=\"+Inf\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\n", "duplicate bucket"},
          Case{"h_bucket{le=\"+Inf\"} 1\n", "no h_sum"},
          Case{"h_bucket{e=\"0\",le=\"+Inf\"} 1\nh_bucket{e=\"1\",le=\"1\"} 1\n"
               "h_bucket{e=\"1\",le=\"+Inf\"} 1\nh_sum 1\n",
               "bounds differ"}}) {
        auto p = parse_prometheus_text(c.text);
        ASSERT_TRUE(p.is_ok()) << c.text;
        auto bad = histogram_from_metrics(*p, "h", {});
        ASSERT_FALSE(bad.is_ok()) << c.text;
        EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
        EXPECT_NE(bad.status().message().find(c.expected), std::string::npos)
            << bad.status().message();
    }
}

TEST(VllmMetricsTest, WindowBetweenTwoScrapesDifferencesBuckets) {
    const std::string text = golden("metrics_old_names.txt");
    auto before = snapshot_from_text(text, {"", "0"}, Seconds{10.0});
    auto after = snapshot_from_text(text, {}, Seconds{15.0});  // engine 1 "appears" on top
    ASSERT_TRUE(before.is_ok() && after.is_ok());
    auto w = window_between(*before, *after);
    ASSERT_TRUE(w.is_ok()) << w.status().message();
    EXPECT_DOUBLE_EQ(w->duration_s, 5.0);
    EXPECT_DOUBLE_EQ(w->prompt_tokens, 3000.0);
    EXPECT_DOUBLE_EQ(w->ttft_s.count, 12.0);
    EXPECT_DOUBLE_EQ(w->generation_tok_s(), 700.0 / 5.0);
}

TEST(VllmMetricsTest, MalformedTextIsAnErrorWithTheLine) {
    auto snap = snapshot_from_text("vllm:num_requests_running{engine=\"0\" 1\n", {}, Seconds{0.0});
    ASSERT_FALSE(snap.is_ok());
    EXPECT_EQ(snap.status().message().rfind("line 1: ", 0), 0U);
}

}  // namespace
}  // namespace pals::engine::vllm
