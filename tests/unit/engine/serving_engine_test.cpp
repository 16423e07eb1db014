#include "pals/engine/serving_engine.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace pals::engine {
namespace {

TEST(CumulativeHistogramTest, QuantileInterpolatesInsideTheBucket) {
    auto h = CumulativeHistogram::with_bounds({0.1, 0.2, 0.4});
    for (int i = 0; i < 10; ++i) {
        h.observe(0.15);
    }
    EXPECT_NEAR(h.quantile(0.5), 0.15, 1e-12);  // halfway through (0.1, 0.2]
    EXPECT_DOUBLE_EQ(h.count, 10.0);
    EXPECT_NEAR(h.mean(), 0.15, 1e-12);
    h.observe(5.0);  // lands in +Inf
    EXPECT_DOUBLE_EQ(h.quantile(1.0), 0.4);
    EXPECT_TRUE(std::isnan(CumulativeHistogram::with_bounds({1.0}).quantile(0.5)));
}

TEST(CumulativeHistogramTest, ShareAboveInterpolatesInsideTheBucket) {
    auto h = CumulativeHistogram::with_bounds({0.5, 1.0, 2.0});
    h.observe(0.2, 6);                             // (0, 0.5]
    h.observe(0.8, 2);                             // (0.5, 1]
    h.observe(1.5, 2);                             // (1, 2]
    EXPECT_DOUBLE_EQ(h.share_above(1.0), 0.2);     // a bucket bound: exact
    EXPECT_NEAR(h.share_above(0.75), 0.3, 1e-12);  // half of (0.5, 1] counted above
    EXPECT_NEAR(h.share_above(0.0), 1.0, 1e-12);
    EXPECT_DOUBLE_EQ(h.share_above(2.0), 0.0);
    h.observe(7.0);  // +Inf: above any finite threshold
    EXPECT_NEAR(h.share_above(5.0), 1.0 / 11.0, 1e-12);
    EXPECT_TRUE(std::isnan(CumulativeHistogram::with_bounds({1.0}).share_above(0.5)));
}

TEST(CumulativeHistogramTest, MinusDifferencesBucketsAndTreatsDecreaseAsReset) {
    auto a = CumulativeHistogram::with_bounds({0.1, 1.0});
    a.observe(0.05, 3);
    auto b = a;
    b.observe(0.5, 2);
    auto d = b.minus(a);
    ASSERT_TRUE(d.is_ok());
    EXPECT_DOUBLE_EQ(d->count, 2.0);
    EXPECT_DOUBLE_EQ(d->cumulative_counts[0], 0.0);
    EXPECT_DOUBLE_EQ(d->cumulative_counts[1], 2.0);
    auto restarted = CumulativeHistogram::with_bounds({0.1, 1.0});
    restarted.observe(0.5);
    auto r = restarted.minus(b);
    ASSERT_TRUE(r.is_ok());
    EXPECT_DOUBLE_EQ(r->count, 1.0);
    EXPECT_FALSE(b.minus(CumulativeHistogram::with_bounds({0.2})).is_ok());
}

TEST(EngineWindowTest, CountersDifferenceAndRestart) {
    EngineSnapshot a;
    a.time = Seconds{10.0};
    a.generation_tokens = 1000;
    a.ttft_s = a.itl_s = a.tpot_s = a.e2e_s = CumulativeHistogram::with_bounds(vllm_itl_buckets());
    EngineSnapshot b = a;
    b.time = Seconds{12.0};
    b.generation_tokens = 1500;
    auto w = window_between(a, b);
    ASSERT_TRUE(w.is_ok());
    EXPECT_DOUBLE_EQ(w->generation_tok_s(), 250.0);
    b.generation_tokens = 100;  // restart
    EXPECT_DOUBLE_EQ(window_between(a, b)->generation_tokens, 100.0);
}

TEST(BucketsTest, VllmBucketsAreAscending) {
    for (const auto& b : {vllm_ttft_buckets(), vllm_itl_buckets(), vllm_e2e_buckets()}) {
        EXPECT_TRUE(std::is_sorted(b.begin(), b.end()));
    }
}

TEST(BatchCapCheckTest, ComparesTheRequestWithTheAcknowledgement) {
    EngineSnapshot s;
    s.batch_cap = 64;
    EXPECT_EQ(check_batch_cap(s), BatchCapCheck::kUnchecked);  // no cap requested, no ack
    s.batch_cap_requested = true;
    EXPECT_EQ(check_batch_cap(s), BatchCapCheck::kUnchecked);  // an engine without acks
    s.batch_cap_ack.state = BatchCapAck::State::kMissing;
    EXPECT_EQ(check_batch_cap(s), BatchCapCheck::kMissing);
    s.batch_cap_ack.state = BatchCapAck::State::kStale;
    EXPECT_EQ(check_batch_cap(s), BatchCapCheck::kStale);
    s.batch_cap_ack = {BatchCapAck::State::kFresh, 64, 64, 256, 0.0, "x"};
    EXPECT_EQ(check_batch_cap(s), BatchCapCheck::kOk);
    s.batch_cap_ack.applied = 256;  // read but not applied
    EXPECT_EQ(check_batch_cap(s), BatchCapCheck::kMismatch);
    s.batch_cap_ack = {BatchCapAck::State::kFresh, 64, 0, 256, 0.0, "x"};  // another file
    EXPECT_EQ(check_batch_cap(s), BatchCapCheck::kMismatch);
    // Clamped by the engine's smaller launch value: applied as asked.
    s.batch_cap = 300;
    s.batch_cap_ack = {BatchCapAck::State::kFresh, 256, 300, 256, 0.0, "x"};
    EXPECT_EQ(check_batch_cap(s), BatchCapCheck::kOk);
    s.batch_cap_requested = false;
    EXPECT_EQ(check_batch_cap(s), BatchCapCheck::kUnchecked);
    EXPECT_EQ(to_string(BatchCapCheck::kMismatch), "mismatch");
    EXPECT_EQ(to_string(BatchCapCheck::kOk), "ok");
}

}  // namespace
}  // namespace pals::engine
