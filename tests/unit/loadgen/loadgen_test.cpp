#include "pals/loadgen/loadgen.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <vector>

#include "scripted_server.hpp"

namespace pals::loadgen {
namespace {

using testing::ScriptedServer;

/// The server's default gap between chunks (ms) and the lower bounds it implies.
constexpr double kDelayS = 0.020;
/// Tolerance below a lower bound for clock granularity only (sleep_for never returns early).
constexpr double kEps = 1e-3;
/// Upper bounds are loose: a loaded 2-core CI machine may stall a thread for a while.
constexpr double kLooseS = 1.0;

ClientConfig config_for(const ScriptedServer& server, const std::string& mode,
                        const std::string& endpoint = "/v1/completions") {
    ClientConfig c;
    c.url = Url::parse(server.url()).value();
    c.endpoint_path = endpoint;
    c.kind = endpoint_kind_for(endpoint);
    c.model = mode;
    return c;
}

RequestSender sender_for(ClientConfig config) {
    Result<RequestSender> sender = RequestSender::create(std::move(config));
    EXPECT_TRUE(sender.is_ok()) << sender.status().message();
    return std::move(sender).value();
}

workload::Request request(int output_tokens, double arrival_s = 0.0, std::uint64_t id = 0) {
    workload::Request r;
    r.id = id;
    r.arrival_s = arrival_s;
    r.input_tokens = 16;
    r.output_tokens = output_tokens;
    return r;
}

/// A loopback port with nothing listening (bound, read, then closed).
int closed_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    socklen_t len = sizeof(addr);
    EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    ::close(fd);
    return ntohs(addr.sin_port);
}

TEST(UrlTest, ParsesAndRejects) {
    Result<Url> url = Url::parse("http://localhost:8000");
    ASSERT_TRUE(url.is_ok());
    EXPECT_EQ(url->host, "localhost");
    EXPECT_EQ(url->port, 8000);
    EXPECT_EQ(url->path_prefix, "");
    EXPECT_EQ(url->origin(), "http://localhost:8000");
    Result<Url> prefixed = Url::parse("http://10.0.0.2/proxy/");
    ASSERT_TRUE(prefixed.is_ok());
    EXPECT_EQ(prefixed->port, 80);
    EXPECT_EQ(prefixed->path_prefix, "/proxy");
    Result<Url> v6 = Url::parse("http://[::1]:9000");
    ASSERT_TRUE(v6.is_ok());
    EXPECT_EQ(v6->host, "::1");
    EXPECT_EQ(v6->origin(), "http://[::1]:9000");
    EXPECT_FALSE(Url::parse("localhost:8000").is_ok());
    EXPECT_FALSE(Url::parse("ftp://host").is_ok());
    EXPECT_FALSE(Url::parse("http://host:99999").is_ok());
    EXPECT_FALSE(Url::parse("http://:80").is_ok());
    EXPECT_EQ(endpoint_kind_for("/v1/chat/completions"), EndpointKind::kChatCompletions);
    EXPECT_EQ(endpoint_kind_for("/v1/completions"), EndpointKind::kCompletions);
}

TEST(RequestBodyTest, CompletionsAndChatBodies) {
    ClientConfig c;
    c.url = Url::parse("http://127.0.0.1:1").value();
    c.model = "m";
    c.extra_body_json = R"({"temperature": 0.0, "max_tokens": 99})";
    const RequestSender completions = sender_for(c);
    const nlohmann::json body = nlohmann::json::parse(completions.build_body(request(7)));
    EXPECT_EQ(body["model"], "m");
    EXPECT_EQ(body["stream"], true);
    EXPECT_EQ(body["stream_options"]["include_usage"], true);
    EXPECT_EQ(body["ignore_eos"], true);
    EXPECT_EQ(body["temperature"], 0.0);
    EXPECT_EQ(body["max_tokens"], 99) << "extra body fields win";
    ASSERT_TRUE(body["prompt"].is_array());
    EXPECT_EQ(body["prompt"].size(), 16U) << "prompt length is exact: token ids";
    // Prompts differ between requests (no accidental prefix-cache hits) but are reproducible.
    EXPECT_NE(completions.build_body(request(7, 0.0, 1)),
              completions.build_body(request(7, 0.0, 2)));
    EXPECT_EQ(completions.build_body(request(7, 0.0, 1)),
              completions.build_body(request(7, 0.0, 1)));

    c.endpoint_path = "/v1/chat/completions";
    c.kind = EndpointKind::kChatCompletions;
    c.extra_body_json.clear();
    c.ignore_eos = false;
    const nlohmann::json chat = nlohmann::json::parse(sender_for(c).build_body(request(7)));
    EXPECT_EQ(chat["max_completion_tokens"], 7);
    EXPECT_FALSE(chat.contains("ignore_eos"));
    EXPECT_EQ(chat["messages"][0]["role"], "user");
    const std::string content = chat["messages"][0]["content"];
    EXPECT_EQ(std::count(content.begin(), content.end(), ' '), 15);

    c.extra_body_json = "[1]";
    EXPECT_FALSE(RequestSender::create(c).is_ok());
    c.extra_body_json.clear();
    c.model.clear();
    EXPECT_FALSE(RequestSender::create(c).is_ok());
}

TEST(ArrivalTest, VllmGammaProcessLandsTheLastRequestAtNOverRate) {
    const std::vector<double> t = vllm_arrival_times(200, 10.0, 1.0, 42);
    ASSERT_EQ(t.size(), 200U);
    EXPECT_NEAR(t.back(), 20.0, 1e-9);
    EXPECT_GT(t.front(), 0.0) << "the first request also waits one gap, as in vLLM";
    EXPECT_TRUE(std::is_sorted(t.begin(), t.end()));
    EXPECT_EQ(t, vllm_arrival_times(200, 10.0, 1.0, 42));
    EXPECT_NE(t, vllm_arrival_times(200, 10.0, 1.0, 43));

    // Burstiness sets the coefficient of variation of the gaps: 1 / sqrt(burstiness).
    auto cv = [](const std::vector<double>& times) {
        std::vector<double> gaps(times.size());
        std::adjacent_difference(times.begin(), times.end(), gaps.begin());
        const double m = mean(gaps);
        return stddev(gaps) / m;
    };
    EXPECT_NEAR(cv(vllm_arrival_times(20000, 5.0, 0.25, 1)), 2.0, 0.2);
    EXPECT_NEAR(cv(vllm_arrival_times(20000, 5.0, 1.0, 1)), 1.0, 0.1);
    EXPECT_NEAR(cv(vllm_arrival_times(20000, 5.0, 4.0, 1)), 0.5, 0.05);
}

TEST(ArrivalTest, BuildLoadSyntheticTraceAndBatch) {
    workload::WorkloadSpec spec;
    spec.kind = workload::WorkloadKind::kSynthetic;
    spec.rate_rps = 4.0;
    spec.num_requests = 40;
    spec.input = workload::LengthDistribution::fixed(32);
    spec.output = workload::LengthDistribution::fixed(8);
    Result<std::vector<workload::Request>> synthetic = build_load(spec);
    ASSERT_TRUE(synthetic.is_ok()) << synthetic.status().message();
    ASSERT_EQ(synthetic->size(), 40U);
    EXPECT_NEAR(synthetic->back().arrival_s, 10.0, 1e-9);
    EXPECT_EQ(synthetic->front().input_tokens, 32);

    spec.rate_rps = std::numeric_limits<double>::infinity();
    Result<std::vector<workload::Request>> batch = build_load(spec);
    ASSERT_TRUE(batch.is_ok()) << batch.status().message();
    EXPECT_EQ(batch->size(), 40U);
    EXPECT_EQ(batch->back().arrival_s, 0.0);

    workload::WorkloadSpec trace;
    trace.kind = workload::WorkloadKind::kTrace;
    trace.trace_path = std::string(PALS_SHARED_DIR) + "/traces/AzureLLMInferenceTrace_code.csv";
    trace.num_requests = 50;
    trace.rate_scale = 2.0;
    Result<std::vector<workload::Request>> replay = build_load(trace);
    Result<std::vector<workload::Request>> raw = workload::build_workload(trace);
    ASSERT_TRUE(replay.is_ok()) << replay.status().message();
    ASSERT_TRUE(raw.is_ok());
    ASSERT_EQ(replay->size(), 50U);
    EXPECT_EQ(replay->back().arrival_s, raw->back().arrival_s) << "traces keep their timestamps";
}

TEST(RequestSenderTest, TimesAStreamedCompletion) {
    ScriptedServer server;
    ClientConfig c = config_for(server, "ok");
    c.api_key = "sk-test";
    c.extra_body_json = R"({"test_tokens_per_chunk": 2})";
    const RequestSender sender = sender_for(c);
    SystemClock clock;
    const RequestOutcome out = sender.send(request(10), clock);
    ASSERT_TRUE(out.success) << out.error;
    EXPECT_EQ(out.output_tokens, 10) << "usage.completion_tokens, not the 5 chunks";
    EXPECT_EQ(out.input_tokens, 16) << "usage.prompt_tokens";
    ASSERT_EQ(out.itl_s.size(), 4U) << "one gap per choice-bearing chunk after the first";
    // The server sleeps 20 ms before every chunk, so these hold on any machine.
    EXPECT_GE(out.ttft_s, kDelayS - kEps);
    EXPECT_GE(out.e2el_s, 5 * kDelayS - kEps);
    EXPECT_LT(out.ttft_s, kDelayS + kLooseS);
    EXPECT_LT(out.e2el_s, 5 * kDelayS + kLooseS);
    const double itl_sum = std::accumulate(out.itl_s.begin(), out.itl_s.end(), 0.0);
    EXPECT_NEAR(out.ttft_s + itl_sum, out.e2el_s, 1e-9) << "E2EL ends at the last token chunk";
    EXPECT_GT(median(out.itl_s), 0.005);
    EXPECT_NEAR(*request_tpot_s(out), itl_sum / 9.0, 1e-9);
    ASSERT_EQ(server.auth_headers().size(), 1U);
    EXPECT_EQ(server.auth_headers()[0], "Bearer sk-test");
}

TEST(RequestSenderTest, EventsSplitAcrossWritesAndNoUsage) {
    ScriptedServer server;
    SystemClock clock;
    const RequestOutcome split = sender_for(config_for(server, "split")).send(request(4), clock);
    ASSERT_TRUE(split.success) << split.error;
    EXPECT_EQ(split.output_tokens, 4);
    EXPECT_EQ(split.itl_s.size(), 3U);
    EXPECT_GE(split.e2el_s, 4 * kDelayS - kEps);

    const RequestOutcome no_usage =
        sender_for(config_for(server, "nousage")).send(request(3), clock);
    ASSERT_TRUE(no_usage.success) << no_usage.error;
    EXPECT_EQ(no_usage.output_tokens, 3) << "fallback: the number of choice-bearing chunks";
    EXPECT_EQ(no_usage.input_tokens, 16) << "fallback: the requested prompt length";
}

TEST(RequestSenderTest, ChatDeltasIncludingTheRoleChunk) {
    ScriptedServer server;
    SystemClock clock;
    const RequestOutcome out =
        sender_for(config_for(server, "ok", "/v1/chat/completions")).send(request(4), clock);
    ASSERT_TRUE(out.success) << out.error;
    EXPECT_EQ(out.output_tokens, 4);
    EXPECT_EQ(out.itl_s.size(), 4U) << "role chunk + 4 content chunks, as vLLM counts them";
    EXPECT_GE(out.ttft_s, kDelayS - kEps);
    EXPECT_GE(out.e2el_s, 4 * kDelayS - kEps);
    const nlohmann::json body = server.bodies().at(0);
    EXPECT_EQ(body["max_completion_tokens"], 4);
    EXPECT_TRUE(body.contains("messages"));
}

TEST(RequestSenderTest, FailuresAreRecordedPerRequest) {
    ScriptedServer server;
    SystemClock clock;
    struct Case {
        const char* mode;
        const char* expected;
    };
    for (const Case& c :
         {Case{"error400", "HTTP 400: max_tokens is too large"}, Case{"inband", "engine died"},
          Case{"close", "[DONE]"}, Case{"nodone", "without [DONE]"}}) {
        const RequestOutcome out = sender_for(config_for(server, c.mode)).send(request(4), clock);
        EXPECT_FALSE(out.success) << c.mode;
        EXPECT_NE(out.error.find(c.expected), std::string::npos) << c.mode << ": " << out.error;
        EXPECT_EQ(out.itl_s.size(), 0U);
        EXPECT_EQ(out.output_tokens, 0);
    }

    ClientConfig refused = config_for(server, "ok");
    refused.url.port = closed_port();
    const RequestOutcome out = sender_for(refused).send(request(4), clock);
    EXPECT_FALSE(out.success);
    EXPECT_NE(out.error.find("request failed"), std::string::npos) << out.error;
}

/// Hostile servers: a deeply nested error event (was a SIGSEGV) and a stream without event
/// separators (was unbounded memory) fail only their request, with a clear error.
TEST(RequestSenderTest, HostileStreamsFailTheRequest) {
    ScriptedServer server;
    SystemClock clock;
    const RequestSender deep = sender_for(config_for(server, "deep"));
    const RequestOutcome d = deep.send(request(4), clock);
    EXPECT_FALSE(d.success);
    EXPECT_NE(d.error.find("nested deeper than"), std::string::npos) << d.error.substr(0, 200);
    const RequestSender endless = sender_for(config_for(server, "endless"));
    const RequestOutcome e = endless.send(request(4), clock);
    EXPECT_FALSE(e.success);
    EXPECT_NE(e.error.find("without an event separator"), std::string::npos) << e.error;
}

TEST(RequestSenderTest, RequestTimeout) {
    ScriptedServer server;
    ClientConfig c = config_for(server, "stall");
    c.request_timeout_s = 0.2;
    SystemClock clock;
    const auto start = std::chrono::steady_clock::now();
    const RequestOutcome out = sender_for(c).send(request(4), clock);
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_FALSE(out.success);
    EXPECT_NE(out.error.find("timeout"), std::string::npos) << out.error;
    EXPECT_GE(elapsed, 0.2 - kEps);
    EXPECT_LT(elapsed, 0.2 + kLooseS);
}

TEST(ProbeTest, ModelsAndReachability) {
    ScriptedServer server;
    const Url url = Url::parse(server.url()).value();
    Result<std::string> model = fetch_first_model(url, "");
    ASSERT_TRUE(model.is_ok()) << model.status().message();
    EXPECT_EQ(model.value(), "test-model");
    EXPECT_TRUE(check_reachable(url).is_ok());
    Url closed = url;
    closed.port = closed_port();
    EXPECT_EQ(check_reachable(closed).code(), StatusCode::kUnavailable);
    EXPECT_EQ(fetch_first_model(closed, "").status().code(), StatusCode::kUnavailable);
}

TEST(RunLoadTest, FiftyConcurrentRequestsAllComplete) {
    ScriptedServer server;
    const RequestSender sender = sender_for(config_for(server, "ok"));
    std::vector<workload::Request> requests;
    for (std::uint64_t i = 0; i < 50; ++i) {
        requests.push_back(request(5, 0.0, i));
    }
    SystemClock clock;
    std::atomic<std::size_t> progress_calls{0};
    RunOptions options;
    options.on_progress = [&](std::size_t finished, std::size_t total) {
        EXPECT_LE(finished, total);
        ++progress_calls;
    };
    Result<RunResult> run = run_load(sender, requests, options, clock);
    ASSERT_TRUE(run.is_ok()) << run.status().message();
    ASSERT_EQ(run->outcomes.size(), 50U);
    for (std::size_t i = 0; i < 50; ++i) {
        EXPECT_TRUE(run->outcomes[i].success) << run->outcomes[i].error;
        EXPECT_EQ(run->outcomes[i].id, i);
    }
    EXPECT_EQ(progress_calls.load(), 50U);
    EXPECT_EQ(server.bodies().size(), 50U);
    // Serially this takes 50 x 100 ms; in parallel about 100 ms.
    EXPECT_GE(run->duration_s, 5 * kDelayS - kEps);
    EXPECT_LT(run->duration_s, 2.5);
    EXPECT_GT(server.max_active(), 10);

    const BenchmarkMetrics m = compute_metrics(run->outcomes, run->duration_s, MetricsConfig{});
    EXPECT_EQ(m.completed, 50);
    EXPECT_EQ(m.total_output, 250);
    EXPECT_EQ(m.total_input, 800);
    EXPECT_GT(m.max_concurrent_requests, 10);
    EXPECT_GE(m.ttft.percentiles_ms.at(0).second, kDelayS * 1e3 - 1.0);
}

TEST(RunLoadTest, MaxConcurrencyIsASemaphore) {
    ScriptedServer server;
    const RequestSender sender = sender_for(config_for(server, "ok"));
    std::vector<workload::Request> requests;
    for (std::uint64_t i = 0; i < 6; ++i) {
        requests.push_back(request(3, 0.0, i));  // 60 ms each
    }
    RunOptions options;
    options.max_concurrency = 2;
    SystemClock clock;
    Result<RunResult> run = run_load(sender, requests, options, clock);
    ASSERT_TRUE(run.is_ok());
    EXPECT_LE(server.max_active(), 2);
    EXPECT_GE(run->duration_s, 3 * 3 * kDelayS - kEps);  // three waves of 60 ms
    for (const RequestOutcome& o : run->outcomes) {
        EXPECT_TRUE(o.success) << o.error;
    }
    options.max_concurrency = 0;
    EXPECT_FALSE(run_load(sender, requests, options, clock).is_ok());
}

TEST(RunLoadTest, AStopFlagEndsSendingAndLetsRequestsInFlightFinish) {
    ScriptedServer server;
    const RequestSender sender = sender_for(config_for(server, "ok"));
    std::vector<workload::Request> requests;
    for (std::uint64_t i = 0; i < 100; ++i) {
        requests.push_back(request(3, 0.0, i));  // 60 ms each
    }
    std::atomic<bool> stop{false};
    RunOptions options;
    options.max_concurrency = 2;
    options.stop = &stop;
    options.on_progress = [&stop](std::size_t finished, std::size_t /*total*/) {
        if (finished >= 4) {
            stop.store(true);
        }
    };
    SystemClock clock;
    Result<RunResult> run = run_load(sender, requests, options, clock);
    ASSERT_TRUE(run.is_ok());
    std::size_t ok = 0;
    std::size_t not_sent = 0;
    for (const RequestOutcome& o : run->outcomes) {
        ok += o.success ? 1U : 0U;
        not_sent += o.error == "not sent" ? 1U : 0U;
    }
    EXPECT_GE(ok, 4U);
    EXPECT_LE(ok, 6U);  // the two in flight when the flag was set finish
    EXPECT_EQ(ok + not_sent, requests.size());
}

TEST(RunLoadTest, SendsAtArrivalTimesAndKeepsFailures) {
    ScriptedServer server;
    ClientConfig c = config_for(server, "ok");
    const RequestSender good = sender_for(c);
    std::vector<workload::Request> requests = {request(2, 0.15, 0), request(2, 0.0, 1),
                                               request(2, 0.3, 2)};
    SystemClock clock;
    Result<RunResult> run = run_load(good, requests, RunOptions{}, clock);
    ASSERT_TRUE(run.is_ok());
    for (const RequestOutcome& o : run->outcomes) {
        ASSERT_TRUE(o.success) << o.error;
        EXPECT_GE(o.send_s, o.arrival_s - kEps);
        EXPECT_LT(o.send_s, o.arrival_s + kLooseS);
    }
    EXPECT_GE(run->duration_s, 0.3 + 2 * kDelayS - kEps);

    const RequestSender bad = sender_for(config_for(server, "error400"));
    Result<RunResult> failed = run_load(bad, requests, RunOptions{}, clock);
    ASSERT_TRUE(failed.is_ok());
    MetricsConfig config;
    config.goodput.ttft_ms = 1000.0;
    const BenchmarkMetrics m = compute_metrics(failed->outcomes, failed->duration_s, config);
    EXPECT_EQ(m.completed, 0);
    EXPECT_EQ(m.failed, 3);
    EXPECT_EQ(m.slo_attainment, 0.0);
    const std::string table = format_result_table(m, config, RunInfo{}, failed->outcomes);
    EXPECT_NE(table.find("Failed requests:                         3"), std::string::npos) << table;
    EXPECT_NE(table.find("HTTP 400: max_tokens is too large"), std::string::npos) << table;
}

TEST(ReportTest, TableJsonAndJsonlUseVllmNames) {
    ScriptedServer server;
    const RequestSender sender = sender_for(config_for(server, "ok"));
    std::vector<workload::Request> requests = {request(3, 0.0, 0), request(3, 0.0, 1)};
    SystemClock clock;
    Result<RunResult> run = run_load(sender, requests, RunOptions{}, clock);
    ASSERT_TRUE(run.is_ok());
    MetricsConfig config;
    config.percentile_metrics = parse_percentile_metrics("ttft,tpot,itl,e2el").value();
    config.percentiles = {50.0, 99.9};
    config.goodput = parse_goodput({"ttft:10000", "tpot:10000"}).value();
    const BenchmarkMetrics m = compute_metrics(run->outcomes, run->duration_s, config);
    RunInfo info;
    info.model = "ok";
    info.num_prompts = 2;
    info.max_concurrency = 4;
    info.request_rate = 2.0;

    const std::string table = format_result_table(m, config, info, run->outcomes);
    for (const char* label :
         {"============ Serving Benchmark Result ============",
          "Successful requests:                     2",
          "Maximum request concurrency:             4",
          "Request rate configured (RPS):           2.00",
          "Request goodput (req/s):", "SLO attainment (%):                      100.00",
          "---------------Time to First Token----------------",
          "-----Time per Output Token (excl. 1st token)------",
          "P99.9 ITL (ms):", "Median E2EL (ms):"}) {
        EXPECT_NE(table.find(label), std::string::npos) << label << "\n" << table;
    }

    const nlohmann::json j =
        nlohmann::json::parse(format_result_json(m, config, info, run->outcomes, false));
    for (const char* key : {"completed",
                            "failed",
                            "duration",
                            "request_throughput",
                            "request_goodput",
                            "output_throughput",
                            "total_token_throughput",
                            "total_input_tokens",
                            "total_output_tokens",
                            "max_output_tokens_per_s",
                            "max_concurrent_requests",
                            "mean_ttft_ms",
                            "median_ttft_ms",
                            "std_ttft_ms",
                            "p50_ttft_ms",
                            "p99.9_ttft_ms",
                            "mean_tpot_ms",
                            "p99.9_itl_ms",
                            "mean_e2el_ms",
                            "slo_attainment"}) {
        EXPECT_TRUE(j.contains(key)) << key;
    }
    EXPECT_EQ(j["completed"], 2);
    EXPECT_EQ(j["slo_attainment"], 1.0);
    EXPECT_FALSE(j.contains("itls"));
    const nlohmann::json detailed =
        nlohmann::json::parse(format_result_json(m, config, info, run->outcomes, true));
    ASSERT_TRUE(detailed.contains("itls"));
    EXPECT_EQ(detailed["itls"][0].size(), 2U);
    EXPECT_EQ(detailed["output_lens"][1], 3);

    const std::string jsonl = format_requests_jsonl(run->outcomes);
    EXPECT_EQ(std::count(jsonl.begin(), jsonl.end(), '\n'), 2);
    const nlohmann::json line = nlohmann::json::parse(jsonl.substr(0, jsonl.find('\n')));
    for (const char* key : {"id", "arrival_s", "send_s", "success", "error", "input_tokens",
                            "output_tokens", "ttft_s", "tpot_s", "e2el_s", "itl_s"}) {
        EXPECT_TRUE(line.contains(key)) << key;
    }
}

}  // namespace
}  // namespace pals::loadgen
