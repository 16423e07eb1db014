#include "pals/workload/workload.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

namespace pals::workload {
namespace {

const std::string kConv = std::string(PALS_SHARED_DIR) + "/traces/AzureLLMInferenceTrace_conv.csv";

WorkloadSpec trace_spec() {
    WorkloadSpec spec;
    spec.kind = WorkloadKind::kTrace;
    spec.trace_path = kConv;
    return spec;
}

WorkloadSpec poisson_spec(double rate_rps, int n) {
    WorkloadSpec spec;
    spec.kind = WorkloadKind::kSynthetic;
    spec.rate_rps = rate_rps;
    spec.num_requests = n;
    spec.seed = 42;
    return spec;
}

/// Mean and coefficient of variation of the gaps between arrivals.
std::pair<double, double> gap_stats(const std::vector<Request>& rs) {
    std::vector<double> gaps;
    for (std::size_t i = 1; i < rs.size(); ++i) {
        gaps.push_back(rs[i].arrival_s - rs[i - 1].arrival_s);
    }
    double mean = 0.0;
    for (double g : gaps) {
        mean += g;
    }
    mean /= static_cast<double>(gaps.size());
    double var = 0.0;
    for (double g : gaps) {
        var += (g - mean) * (g - mean);
    }
    var /= static_cast<double>(gaps.size());
    return {mean, std::sqrt(var) / mean};
}

void expect_ids_and_order(const std::vector<Request>& rs) {
    for (std::size_t i = 0; i < rs.size(); ++i) {
        ASSERT_EQ(rs[i].id, i);
        if (i > 0) {
            ASSERT_GE(rs[i].arrival_s, rs[i - 1].arrival_s);
        }
    }
}

TEST(WorkloadTest, TraceScalingAndFiltering) {
    auto base = build_workload(trace_spec());
    ASSERT_TRUE(base.is_ok()) << base.status().message();
    ASSERT_EQ(base->size(), 19366u);

    WorkloadSpec faster = trace_spec();
    faster.rate_scale = 2.0;
    auto f = build_workload(faster);
    ASSERT_TRUE(f.is_ok()) << f.status().message();
    ASSERT_EQ(f->size(), base->size());
    EXPECT_DOUBLE_EQ(f->back().arrival_s, base->back().arrival_s / 2.0);

    WorkloadSpec slower = trace_spec();
    slower.time_scale = 3.0;
    slower.rate_scale = 1.5;
    auto s = build_workload(slower);
    ASSERT_TRUE(s.is_ok()) << s.status().message();
    EXPECT_DOUBLE_EQ((*s)[100].arrival_s, (*base)[100].arrival_s * 2.0);

    WorkloadSpec window = trace_spec();
    window.duration_s = 600.0;
    auto w = build_workload(window);
    ASSERT_TRUE(w.is_ok()) << w.status().message();
    ASSERT_GT(w->size(), 1000u);
    ASSERT_LT(w->size(), base->size());
    EXPECT_LT(w->back().arrival_s, 600.0);
    EXPECT_GE((*base)[w->size()].arrival_s, 600.0);
    expect_ids_and_order(*w);

    // duration applies after scaling: twice the rate fits about twice the requests in 600 s.
    window.rate_scale = 2.0;
    auto w2 = build_workload(window);
    ASSERT_TRUE(w2.is_ok()) << w2.status().message();
    EXPECT_NEAR(static_cast<double>(w2->size()) / static_cast<double>(w->size()), 2.0, 0.3);

    WorkloadSpec capped = trace_spec();
    capped.num_requests = 250;
    auto c = build_workload(capped);
    ASSERT_TRUE(c.is_ok()) << c.status().message();
    ASSERT_EQ(c->size(), 250u);
    EXPECT_EQ(c->back().input_tokens, (*base)[249].input_tokens);
}

TEST(WorkloadTest, TraceRejectsUnknownExtension) {
    WorkloadSpec spec = trace_spec();
    spec.trace_path = testing::TempDir() + "/trace.parquet";
    auto rs = build_workload(spec);
    ASSERT_FALSE(rs.is_ok());
    EXPECT_NE(rs.status().message().find(".parquet"), std::string::npos);
}

TEST(WorkloadTest, TraceLoadsJsonlByExtension) {
    const std::string path = testing::TempDir() + "/w.jsonl";
    std::ofstream(path) << R"({"timestamp": 0, "input_length": 5, "output_length": 6})"
                        << "\n"
                        << R"({"timestamp": 2000, "input_length": 7, "output_length": 8})"
                        << "\n";
    WorkloadSpec spec = trace_spec();
    spec.trace_path = path;
    spec.time_scale = 0.5;
    auto rs = build_workload(spec);
    ASSERT_TRUE(rs.is_ok()) << rs.status().message();
    ASSERT_EQ(rs->size(), 2u);
    EXPECT_DOUBLE_EQ((*rs)[1].arrival_s, 1.0);
}

TEST(WorkloadTest, PoissonMeanRate) {
    auto rs = build_workload(poisson_spec(5.0, 20000));
    ASSERT_TRUE(rs.is_ok()) << rs.status().message();
    ASSERT_EQ(rs->size(), 20000u);
    EXPECT_EQ(rs->front().arrival_s, 0.0);
    const double rate = static_cast<double>(rs->size() - 1) / rs->back().arrival_s;
    EXPECT_NEAR(rate, 5.0, 0.15);
    const auto [mean_gap, cv] = gap_stats(*rs);
    EXPECT_NEAR(mean_gap, 0.2, 0.006);
    EXPECT_NEAR(cv, 1.0, 0.05);  // exponential gaps
    EXPECT_EQ((*rs)[123].input_tokens, 1024);
    EXPECT_EQ((*rs)[123].output_tokens, 128);
    expect_ids_and_order(*rs);
}

TEST(WorkloadTest, RateStepsWarpTime) {
    // 2 req/s, 5x between 100 and 160 s: ~200 + 600 + 80 requests in 200 s.
    WorkloadSpec spec = poisson_spec(2.0, 0);
    spec.duration_s = 200.0;
    spec.rate_steps = {{100.0, 5.0}, {160.0, 1.0}};
    auto rs = build_workload(spec);
    ASSERT_TRUE(rs.is_ok()) << rs.status().message();
    const auto count = [&](double a, double b) {
        return std::count_if(rs->begin(), rs->end(),
                             [&](const Request& r) { return r.arrival_s >= a && r.arrival_s < b; });
    };
    EXPECT_NEAR(static_cast<double>(count(0, 100)), 200.0, 45.0);
    EXPECT_NEAR(static_cast<double>(count(100, 160)), 600.0, 75.0);
    EXPECT_NEAR(static_cast<double>(count(160, 200)), 80.0, 30.0);
    expect_ids_and_order(*rs);

    // A trace: from 100 s on, its time runs twice as fast.
    WorkloadSpec trace = trace_spec();
    trace.rate_steps = {{100.0, 2.0}};
    auto warped = build_workload(trace);
    trace.rate_steps.clear();
    auto plain = build_workload(trace);
    ASSERT_TRUE(warped.is_ok() && plain.is_ok());
    ASSERT_EQ(warped->size(), plain->size());
    for (std::size_t i = 0; i < plain->size(); ++i) {
        const double t = (*plain)[i].arrival_s;
        ASSERT_NEAR((*warped)[i].arrival_s, t <= 100.0 ? t : 100.0 + (t - 100.0) / 2.0, 1e-9);
    }
}

TEST(WorkloadTest, BurstinessBelowOneRaisesVariation) {
    auto poisson = build_workload(poisson_spec(5.0, 20000));
    WorkloadSpec bursty_spec = poisson_spec(5.0, 20000);
    bursty_spec.burstiness = 0.25;
    auto bursty = build_workload(bursty_spec);
    WorkloadSpec smooth_spec = poisson_spec(5.0, 20000);
    smooth_spec.burstiness = 4.0;
    auto smooth = build_workload(smooth_spec);
    ASSERT_TRUE(poisson.is_ok() && bursty.is_ok() && smooth.is_ok());
    const auto [poisson_gap, poisson_cv] = gap_stats(*poisson);
    const auto [bursty_gap, bursty_cv] = gap_stats(*bursty);
    const auto [smooth_gap, smooth_cv] = gap_stats(*smooth);
    // The mean rate stays put; the gamma CV is 1 / sqrt(shape).
    EXPECT_NEAR(bursty_gap, 0.2, 0.02);
    EXPECT_NEAR(smooth_gap, 0.2, 0.01);
    EXPECT_GT(bursty_cv, 1.5 * poisson_cv);
    EXPECT_NEAR(bursty_cv, 2.0, 0.2);
    EXPECT_LT(smooth_cv, poisson_cv);
    EXPECT_NEAR(smooth_cv, 0.5, 0.05);
}

TEST(WorkloadTest, SyntheticByDurationAndRateScale) {
    WorkloadSpec spec = poisson_spec(10.0, 0);
    spec.duration_s = 100.0;
    spec.rate_scale = 2.0;
    spec.input = LengthDistribution::uniform(10, 20);
    auto rs = build_workload(spec);
    ASSERT_TRUE(rs.is_ok()) << rs.status().message();
    // 20 requests/s for 100 s.
    EXPECT_NEAR(static_cast<double>(rs->size()), 2000.0, 150.0);
    EXPECT_LT(rs->back().arrival_s, 100.0);
    for (const Request& r : *rs) {
        ASSERT_GE(r.input_tokens, 10);
        ASSERT_LE(r.input_tokens, 20);
    }

    // Both limits: whichever comes first.
    spec.num_requests = 50;
    auto capped = build_workload(spec);
    ASSERT_TRUE(capped.is_ok());
    EXPECT_EQ(capped->size(), 50u);
}

TEST(WorkloadTest, SyntheticIsDeterministicForASeed) {
    WorkloadSpec spec = poisson_spec(3.0, 500);
    spec.input = LengthDistribution::uniform(1, 4000);
    spec.output = LengthDistribution::uniform(1, 500);
    auto a = build_workload(spec);
    auto b = build_workload(spec);
    ASSERT_TRUE(a.is_ok() && b.is_ok());
    ASSERT_EQ(a->size(), b->size());
    for (std::size_t i = 0; i < a->size(); ++i) {
        EXPECT_EQ((*a)[i].arrival_s, (*b)[i].arrival_s);
        EXPECT_EQ((*a)[i].input_tokens, (*b)[i].input_tokens);
        EXPECT_EQ((*a)[i].output_tokens, (*b)[i].output_tokens);
    }
    spec.seed = 43;
    auto c = build_workload(spec);
    ASSERT_TRUE(c.is_ok());
    EXPECT_NE((*a)[10].arrival_s, (*c)[10].arrival_s);
}

TEST(WorkloadTest, ClosedLoopAllAtZero) {
    WorkloadSpec spec;
    spec.kind = WorkloadKind::kClosedLoop;
    spec.num_requests = 64;
    spec.output = LengthDistribution::uniform(100, 200);
    auto rs = build_workload(spec);
    ASSERT_TRUE(rs.is_ok()) << rs.status().message();
    ASSERT_EQ(rs->size(), 64u);
    for (std::size_t i = 0; i < rs->size(); ++i) {
        EXPECT_EQ((*rs)[i].id, i);
        EXPECT_EQ((*rs)[i].arrival_s, 0.0);
        EXPECT_EQ((*rs)[i].input_tokens, 1024);
        EXPECT_GE((*rs)[i].output_tokens, 100);
        EXPECT_LE((*rs)[i].output_tokens, 200);
    }
    spec.num_requests = 0;
    auto none = build_workload(spec);
    ASSERT_FALSE(none.is_ok());
    EXPECT_NE(none.status().message().find("num_requests"), std::string::npos);
}

TEST(WorkloadTest, TraceStartReplaysALaterWindowAndWraps) {
    auto base = build_workload(trace_spec());
    ASSERT_TRUE(base.is_ok()) << base.status().message();
    const std::vector<Request>& all = *base;
    const double span = all.back().arrival_s;
    const double gap = span / static_cast<double>(all.size() - 1);

    WorkloadSpec later = trace_spec();
    later.trace_start_s = 1800.0;
    auto l = build_workload(later);
    ASSERT_TRUE(l.is_ok()) << l.status().message();
    // Every request, once: the window from 1800 s, then the wrapped head.
    ASSERT_EQ(l->size(), all.size());
    expect_ids_and_order(*l);
    const auto first = static_cast<std::size_t>(
        std::lower_bound(all.begin(), all.end(), 1800.0,
                         [](const Request& r, double t) { return r.arrival_s < t; }) -
        all.begin());
    EXPECT_EQ((*l)[0].input_tokens, all[first].input_tokens);
    EXPECT_DOUBLE_EQ((*l)[0].arrival_s, all[first].arrival_s - 1800.0);
    const std::size_t wrapped = all.size() - first;  // the first request of the trace
    EXPECT_EQ((*l)[wrapped].input_tokens, all[0].input_tokens);
    EXPECT_NEAR((*l)[wrapped].arrival_s, span + gap - 1800.0, 1e-9);

    // Scaling and the window apply after the start, as without one.
    later.rate_scale = 2.0;
    later.duration_s = 600.0;
    auto w = build_workload(later);
    ASSERT_TRUE(w.is_ok()) << w.status().message();
    EXPECT_LT(w->back().arrival_s, 600.0);
    EXPECT_DOUBLE_EQ((*w)[5].arrival_s, ((*l)[5].arrival_s) / 2.0);

    // A start past the end wraps around the trace's period (span + one mean gap).
    WorkloadSpec again = trace_spec();
    again.trace_start_s = 1800.0 + span + gap;
    auto a = build_workload(again);
    ASSERT_TRUE(a.is_ok()) << a.status().message();
    EXPECT_EQ((*a)[0].input_tokens, all[first].input_tokens);
    EXPECT_NEAR((*a)[0].arrival_s, (*l)[0].arrival_s, 1e-6);

    // A trace of requests that all arrive at once has no later window.
    const std::string path = ::testing::TempDir() + "/burst_at_once.jsonl";
    {
        std::ofstream out(path);
        out << "{\"timestamp\": 5, \"input_length\": 10, \"output_length\": 3}\n"
            << "{\"timestamp\": 5, \"input_length\": 20, \"output_length\": 4}\n";
    }
    WorkloadSpec at_once;
    at_once.kind = WorkloadKind::kTrace;
    at_once.trace_path = path;
    at_once.trace_start_s = 60.0;
    auto o = build_workload(at_once);
    ASSERT_TRUE(o.is_ok()) << o.status().message();
    ASSERT_EQ(o->size(), 2u);
    EXPECT_EQ((*o)[0].arrival_s, 0.0);
    EXPECT_EQ((*o)[1].arrival_s, 0.0);
    EXPECT_EQ((*o)[0].input_tokens + (*o)[1].input_tokens, 30);
}

TEST(WorkloadTest, ValidatesSpecFields) {
    struct Case {
        WorkloadSpec spec;
        std::string substring;
    };
    std::vector<Case> cases;
    WorkloadSpec s = poisson_spec(-1.0, 10);
    cases.push_back({s, "rate_rps must be > 0 (got -1)"});
    s = poisson_spec(1.0, 10);
    s.burstiness = 0.0;
    cases.push_back({s, "burstiness must be > 0 (got 0)"});
    s = poisson_spec(1.0, 10);
    s.time_scale = -2.0;
    cases.push_back({s, "time_scale must be > 0"});
    s = poisson_spec(1.0, 10);
    s.rate_scale = std::numeric_limits<double>::quiet_NaN();
    cases.push_back({s, "rate_scale must be > 0"});
    s = poisson_spec(1.0, 10);
    s.duration_s = 0.0;
    cases.push_back({s, "duration_s must be > 0"});
    s = poisson_spec(std::numeric_limits<double>::infinity(), 10);
    cases.push_back({s, "rate_rps must be finite"});
    s = poisson_spec(1.0, -3);
    cases.push_back({s, "num_requests must be >= 0"});
    s = poisson_spec(1.0, 0);
    cases.push_back({s, "num_requests > 0 or duration_s"});
    s = trace_spec();
    s.rate_scale = 0.0;
    cases.push_back({s, "rate_scale must be > 0 (got 0)"});
    s = trace_spec();
    s.trace_start_s = -5.0;
    cases.push_back({s, "trace_start_s must be finite and >= 0 (got -5)"});
    for (const Case& c : cases) {
        auto rs = build_workload(c.spec);
        ASSERT_FALSE(rs.is_ok()) << c.substring;
        EXPECT_EQ(rs.status().code(), StatusCode::kInvalidArgument);
        EXPECT_NE(rs.status().message().find(c.substring), std::string::npos)
            << c.substring << " not in: " << rs.status().message();
    }
}

}  // namespace
}  // namespace pals::workload
