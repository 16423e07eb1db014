// The workload option table and its one build(): trace, synthetic or closed loop.
#include "pals/workload/workload_options.hpp"

#include <gtest/gtest.h>

#include "status_assertions.hpp"

namespace pals::workload {
namespace {

TEST(WorkloadOptionsTest, TheKindFollowsWhatIsGiven) {
    WorkloadOptions o;
    EXPECT_STATUS(o.build({}), StatusCode::kInvalidArgument,
                  "no workload: give trace, rate_rps or num_requests");
    o.num_requests = 10;
    EXPECT_EQ(o.build({}).value().kind, WorkloadKind::kClosedLoop);
    o.rate_rps = 2.0;
    o.input_len = "uniform:10:20";
    const WorkloadSpec synthetic = o.build({}).value();
    EXPECT_EQ(synthetic.kind, WorkloadKind::kSynthetic);
    EXPECT_DOUBLE_EQ(synthetic.rate_rps, 2.0);
    o.trace = "t.csv";
    const WorkloadSpec trace =
        o.build({}, [](const std::string& v) { return std::filesystem::path("/d") / v; }).value();
    EXPECT_EQ(trace.kind, WorkloadKind::kTrace);
    EXPECT_EQ(trace.trace_path, "/d/t.csv");
    o.trace_start_s = 1800.0;
    EXPECT_DOUBLE_EQ(o.build({}).value().trace_start_s, 1800.0);
    // Only a trace has a start: synthetic arrivals would ignore it silently.
    o.trace.clear();
    EXPECT_STATUS(o.build({}), StatusCode::kInvalidArgument,
                  "trace_start_s (default): applies to a trace replay only; give trace too");
}

TEST(WorkloadOptionsTest, RateStepsParseAndNameTheKey) {
    auto steps = parse_rate_steps("300:5, 360:1");
    ASSERT_TRUE(steps.is_ok()) << steps.status().message();
    EXPECT_EQ(steps.value(), (std::vector<std::pair<double, double>>{{300, 5}, {360, 1}}));
    for (const char* bad : {"300", "300:0", "x:1", "360:1,300:5", "300:5000"}) {
        EXPECT_FALSE(parse_rate_steps(bad).is_ok()) << bad;
    }
    WorkloadOptions o;
    o.rate_rps = 1.0;
    o.duration_s = 10.0;
    o.rate_steps = "5:2,4:1";
    EXPECT_STATUS(o.build({}), StatusCode::kInvalidArgument,
                  "rate_steps (default): '4:1': times must increase");
}

TEST(WorkloadOptionsTest, BoundsNameTheKey) {
    OptionOrigins origins;
    origins.label = [](std::string_view key) { return "--" + std::string(key); };
    origins.fallback = origins.label;
    WorkloadOptions o;
    o.rate_rps = 1e6;
    o.duration_s = 1e6;
    EXPECT_STATUS(o.build(origins), StatusCode::kInvalidArgument,
                  "--rate_rps: 1e+06 req/s x 1e+06 s is 1e+12 requests, more than the limit");
    o = {};
    o.num_requests = 5;
    o.output_len = "20000000";
    EXPECT_STATUS(o.build(origins), StatusCode::kOutOfRange,
                  "--output_len: 20000000 tokens is more than the limit of 10000000");
    o = {};
    o.burstiness = 0.0;
    EXPECT_STATUS(o.build(origins), StatusCode::kOutOfRange, "--burstiness: must be > 0");
    EXPECT_FALSE(find_option(workload_options(), "seed")->in_file);  // a scenario's [run] seed
}

}  // namespace
}  // namespace pals::workload
