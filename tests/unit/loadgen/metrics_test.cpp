#include "pals/loadgen/metrics.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

namespace pals::loadgen {
namespace {

RequestOutcome ok(double send_s, double ttft_s, std::vector<double> itl_s, int output_tokens,
                  int input_tokens = 10) {
    RequestOutcome o;
    o.success = true;
    o.send_s = send_s;
    o.ttft_s = ttft_s;
    o.e2el_s = ttft_s;
    for (const double gap : itl_s) {
        o.e2el_s += gap;
    }
    o.itl_s = std::move(itl_s);
    o.output_tokens = output_tokens;
    o.input_tokens = input_tokens;
    return o;
}

RequestOutcome failed(const std::string& why) {
    RequestOutcome o;
    o.success = false;
    o.error = why;
    o.input_tokens = 10;
    return o;
}

TEST(PercentileTest, LinearInterpolationAsNumpy) {
    // np.percentile([1, 2, 3, 4], p) for p = 0, 50, 99, 100.
    EXPECT_DOUBLE_EQ(percentile({4, 1, 3, 2}, 0), 1.0);
    EXPECT_DOUBLE_EQ(percentile({4, 1, 3, 2}, 50), 2.5);
    EXPECT_NEAR(percentile({4, 1, 3, 2}, 99), 3.97, 1e-12);
    EXPECT_DOUBLE_EQ(percentile({4, 1, 3, 2}, 100), 4.0);
    // np.percentile([15, 20, 35, 40, 50], 40) == 29.0
    EXPECT_DOUBLE_EQ(percentile({15, 20, 35, 40, 50}, 40), 29.0);
    EXPECT_DOUBLE_EQ(percentile({7}, 99), 7.0);
    EXPECT_DOUBLE_EQ(percentile({}, 99), 0.0);
}

TEST(PercentileTest, MeanMedianPopulationStd) {
    const std::vector<double> v = {2, 4, 4, 4, 5, 5, 7, 9};
    EXPECT_DOUBLE_EQ(mean(v), 5.0);
    EXPECT_DOUBLE_EQ(stddev(v), 2.0);  // np.std, ddof = 0
    EXPECT_DOUBLE_EQ(median(v), 4.5);
    EXPECT_DOUBLE_EQ(median({3, 1, 2}), 2.0);
    EXPECT_DOUBLE_EQ(mean({}), 0.0);
    EXPECT_DOUBLE_EQ(stddev({}), 0.0);
}

TEST(TpotTest, OnlyForMoreThanOneToken) {
    const RequestOutcome five = ok(0.0, 0.2, {0.2, 0.2, 0.2, 0.2}, 5);
    ASSERT_TRUE(request_tpot_s(five));
    EXPECT_NEAR(*request_tpot_s(five), 0.2, 1e-12);
    // Usage says 9 tokens in 5 chunks: TPOT divides by tokens, not chunks.
    const RequestOutcome nine = ok(0.0, 0.2, {0.2, 0.2, 0.2, 0.2}, 9);
    EXPECT_NEAR(*request_tpot_s(nine), 0.1, 1e-12);
    EXPECT_FALSE(request_tpot_s(ok(0.0, 0.3, {}, 1)));
}

TEST(GoodputTest, ParsesOnlyTheThreeKeys) {
    Result<GoodputSlo> slo = parse_goodput({"ttft:500", "tpot:50,e2el:2000"});
    ASSERT_TRUE(slo.is_ok()) << slo.status().message();
    EXPECT_EQ(slo->ttft_ms, 500.0);
    EXPECT_EQ(slo->tpot_ms, 50.0);
    EXPECT_EQ(slo->e2el_ms, 2000.0);
    EXPECT_TRUE(parse_goodput({}).value().empty());

    Result<GoodputSlo> itl = parse_goodput({"itl:5"});
    ASSERT_FALSE(itl.is_ok());
    EXPECT_NE(itl.status().message().find("itl"), std::string::npos);
    EXPECT_FALSE(parse_goodput({"ttft"}).is_ok());
    EXPECT_FALSE(parse_goodput({"ttft:-1"}).is_ok());
    EXPECT_FALSE(parse_goodput({"ttft:abc"}).is_ok());
}

TEST(GoodputTest, AllGivenSlosMustHold) {
    GoodputSlo slo;
    slo.ttft_ms = 100.0;
    slo.tpot_ms = 50.0;
    EXPECT_TRUE(is_good_request(ok(0.0, 0.05, {0.04, 0.04}, 3), slo));
    EXPECT_TRUE(is_good_request(ok(0.0, 0.1, {}, 1), slo)) << "TTFT == SLO holds; 1 token = TPOT 0";
    EXPECT_FALSE(is_good_request(ok(0.0, 0.2, {}, 1), slo)) << "TTFT over";
    EXPECT_FALSE(is_good_request(ok(0.0, 0.05, {0.06, 0.06}, 3), slo)) << "TPOT over";
    EXPECT_FALSE(is_good_request(failed("x"), slo));
    GoodputSlo e2el;
    e2el.e2el_ms = 100.0;
    EXPECT_TRUE(is_good_request(ok(0.0, 0.05, {0.05}, 2), e2el));
    EXPECT_FALSE(is_good_request(ok(0.0, 0.05, {0.06}, 2), e2el));
}

TEST(MetricListTest, ParsesMetricsAndPercentiles) {
    Result<std::vector<LatencyMetric>> m = parse_percentile_metrics("ttft, e2el,ttft");
    ASSERT_TRUE(m.is_ok());
    EXPECT_EQ(m.value(), (std::vector<LatencyMetric>{LatencyMetric::kTtft, LatencyMetric::kE2el}));
    EXPECT_FALSE(parse_percentile_metrics("ttft,latency").is_ok());
    Result<std::vector<double>> p = parse_metric_percentiles("50,90,99.9");
    ASSERT_TRUE(p.is_ok());
    EXPECT_EQ(p.value(), (std::vector<double>{50.0, 90.0, 99.9}));
    EXPECT_FALSE(parse_metric_percentiles("101").is_ok());
    EXPECT_FALSE(parse_metric_percentiles("p99").is_ok());
    EXPECT_FALSE(parse_metric_percentiles("").is_ok());
}

TEST(PeakTest, OneSecondBucketsAsVllm) {
    // A: sent 0.0, tokens at 0.5, 0.8, 1.2, ends 1.2. B: sent 0.9, tokens at 1.1, 1.15, 2.05.
    const std::vector<RequestOutcome> outcomes = {ok(0.0, 0.5, {0.3, 0.4}, 3),
                                                  ok(0.9, 0.2, {0.05, 0.9}, 3), failed("x")};
    const PeakStats peaks = compute_peaks(outcomes);
    // Buckets [0,1) [1,2) [2,3) [3,4): tokens 2, 3, 1, 0; concurrent 2, 2, 1, 0.
    EXPECT_DOUBLE_EQ(peaks.max_output_tokens_per_s, 3.0);
    EXPECT_EQ(peaks.max_concurrent_requests, 2);
    EXPECT_EQ(compute_peaks({failed("x")}).max_concurrent_requests, 0);
}

TEST(ComputeMetricsTest, HandComputedRun) {
    // Three completed requests, one failed, over 2 s.
    const std::vector<RequestOutcome> outcomes = {
        ok(0.0, 0.1, {0.02, 0.04}, 3, 100),  // TPOT 0.03, E2EL 0.16
        ok(0.5, 0.3, {0.01}, 2, 200),        // TPOT 0.01, E2EL 0.31
        ok(1.0, 0.2, {}, 1, 300),            // no TPOT, E2EL 0.2
        failed("HTTP 500: boom"),
    };
    MetricsConfig config;
    config.percentiles = {50.0, 99.0};
    config.goodput.ttft_ms = 250.0;
    const BenchmarkMetrics m = compute_metrics(outcomes, 2.0, config);
    EXPECT_EQ(m.completed, 3);
    EXPECT_EQ(m.failed, 1);
    EXPECT_EQ(m.total_input, 600);
    EXPECT_EQ(m.total_output, 6);
    EXPECT_DOUBLE_EQ(m.request_throughput, 1.5);
    EXPECT_DOUBLE_EQ(m.output_throughput, 3.0);
    EXPECT_DOUBLE_EQ(m.total_token_throughput, 303.0);
    EXPECT_EQ(m.good_completed, 2);
    ASSERT_TRUE(m.request_goodput);
    EXPECT_DOUBLE_EQ(*m.request_goodput, 1.0);
    ASSERT_TRUE(m.slo_attainment);
    EXPECT_NEAR(*m.slo_attainment, 2.0 / 3.0, 1e-12);

    EXPECT_NEAR(m.ttft.mean_ms, 200.0, 1e-9);
    EXPECT_NEAR(m.ttft.median_ms, 200.0, 1e-9);
    EXPECT_NEAR(m.ttft.std_ms, std::sqrt(2.0 / 3.0) * 100.0, 1e-9);
    EXPECT_NEAR(m.ttft.percentiles_ms[1].second, 298.0, 1e-9);  // 200 + 0.98 * 100
    EXPECT_NEAR(m.tpot.mean_ms, 20.0, 1e-9);                    // (30 + 10) / 2
    EXPECT_NEAR(m.tpot.percentiles_ms[0].second, 20.0, 1e-9);
    EXPECT_NEAR(m.itl.mean_ms, 70.0 / 3.0, 1e-9);  // 20, 40, 10 pooled
    EXPECT_NEAR(m.itl.median_ms, 20.0, 1e-9);
    EXPECT_NEAR(m.e2el.median_ms, 200.0, 1e-9);
    // Tokens at 0.1, 0.12, 0.16, 0.8, 0.81 | 1.2; A and B overlap in the first second.
    EXPECT_DOUBLE_EQ(m.max_output_tokens_per_s, 5.0);
    EXPECT_EQ(m.max_concurrent_requests, 2);
}

}  // namespace
}  // namespace pals::loadgen
