// SimServer over loopback: the OpenAI endpoints, streaming, errors, /metrics, and the coupling
// with the batch-cap file and the fake NVML state. A high time scale keeps each test short.
#include "pals/serve/sim_server.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <vector>

#include "fake_nvml/fake_driver.hpp"
#include "pals/common/file_util.hpp"
#include "pals/engine/vllm/prometheus_text.hpp"
#include "pals/engine/vllm/vllm_engine.hpp"
#include "pals/engine/vllm/vllm_metrics.hpp"
#include "serve/openai_protocol.hpp"
#include "serve_test_helpers.hpp"

namespace pals::serve {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using testing::TempDir;

constexpr const char* kModel = "meta-llama/Llama-3.1-8B-Instruct";

/// Polls `condition` every few ms until it holds or `timeout` passes.
bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (condition()) {
            return true;
        }
        std::this_thread::sleep_for(5ms);
    }
    return condition();
}

/// Sets GPU `gpu`'s power limit in the fake NVML state, as `pals power set` would.
void set_limit(power::fake_nvml::FakeDriver& nvml, int gpu, double limit_w) {
    ASSERT_EQ(nvml.modify(gpu,
                          [limit_w](power::fake_nvml::DeviceState& d) {
                              d.limit_w = limit_w;
                              return power::nvml::kSuccess;
                          }),
              power::nvml::kSuccess);
}

class SimServerTest : public ::testing::Test {
protected:
    void TearDown() override {
        if (m_server) {
            m_server->stop();
        }
    }

    /// Starts a server on a free port; `tweak` adjusts the options first.
    void start(sim::NodeConfig node = testing::llama_node(), int nvml_count = 0,
               const std::function<void(SimServerOptions&)>& tweak = {}) {
        const int count = nvml_count > 0 ? nvml_count : node.replicas * node.parallel.tp;
        testing::write_text(m_dir.file("nvml.json"), testing::external_config(count));
        SimServerOptions o;
        o.port = 0;
        o.time_scale = 20.0;
        o.tick_period = 1ms;
        o.report_period = 10ms;
        o.default_max_tokens = 8;
        o.fake_nvml_config_path = m_dir.file("nvml.json");
        o.fake_nvml_state_path = m_dir.file("nvml-state.json");
        o.batch_cap_path = m_dir.file("batch_cap");
        o.max_connections = 128;
        if (tweak) {
            tweak(o);
        }
        auto server = SimServer::create(std::move(node), o);
        ASSERT_TRUE(server.is_ok()) << server.status().message();
        m_server = std::move(server).value();
        const Status started = m_server->start();
        ASSERT_TRUE(started.is_ok()) << started.message();
        ASSERT_GT(m_server->port(), 0);
    }

    [[nodiscard]] std::unique_ptr<httplib::Client> client() const {
        auto c = std::make_unique<httplib::Client>("127.0.0.1", m_server->port());
        c->set_read_timeout(20, 0);
        return c;
    }

    httplib::Result post(const std::string& path, const json& body) const {
        return client()->Post(path.c_str(), body.dump(), "application/json");
    }

    /// The error object of a failed request, after checking its status and shape.
    static json expect_error(const httplib::Result& res, int status) {
        EXPECT_TRUE(res) << "no response";
        if (!res) {
            return {};
        }
        EXPECT_EQ(res->status, status) << res->body;
        const json body = json::parse(res->body, nullptr, false);
        EXPECT_TRUE(body.is_object() && body.contains("error")) << res->body;
        if (!body.is_object() || !body.contains("error")) {
            return {};
        }
        const json& e = body["error"];
        EXPECT_EQ(e["code"], status);
        EXPECT_TRUE(e["message"].is_string() && !e["message"].get<std::string>().empty());
        EXPECT_TRUE(e.contains("param"));
        EXPECT_EQ(e["type"], status == 400 ? "BadRequestError" : "NotFoundError");
        return e;
    }

    [[nodiscard]] std::string metrics_text() const {
        auto res = client()->Get("/metrics");
        EXPECT_TRUE(res && res->status == 200);
        return res ? res->body : std::string();
    }

    /// The value of `name{engine=...}` in the current /metrics (NaN when absent).
    [[nodiscard]] double gauge(const std::string& name, const std::string& engine = "0") const {
        auto parsed = engine::vllm::parse_prometheus_text(metrics_text());
        EXPECT_TRUE(parsed.is_ok()) << parsed.status().message();
        if (parsed.is_ok()) {
            for (const auto& s : parsed->samples) {
                const std::string* e = s.label("engine");
                if (s.name == name && e != nullptr && *e == engine) {
                    return s.value;
                }
            }
        }
        return std::nan("");
    }

    [[nodiscard]] engine::EngineSnapshot snapshot() const {
        auto snap = engine::vllm::snapshot_from_text(metrics_text(), {kModel, ""}, Seconds{0.0});
        EXPECT_TRUE(snap.is_ok()) << snap.status().message();
        return snap.is_ok() ? snap.value() : engine::EngineSnapshot{};
    }

    /// A second driver on the server's fake NVML state: what `pals power set` would do.
    [[nodiscard]] std::unique_ptr<power::fake_nvml::FakeDriver> controller(int count) const {
        std::string error;
        auto config = power::fake_nvml::parse_config(testing::external_config(count), error);
        EXPECT_TRUE(config.has_value()) << error;
        auto driver = std::make_unique<power::fake_nvml::FakeDriver>();
        EXPECT_EQ(driver->init(*config, m_dir.file("nvml-state.json")), power::nvml::kSuccess);
        return driver;
    }

    void write_batch_cap(std::uint64_t cap) const {
        testing::write_text(m_dir.file("batch_cap"), engine::vllm::encode_batch_cap(cap));
    }

    TempDir m_dir;
    std::unique_ptr<SimServer> m_server;
};

TEST_F(SimServerTest, ServesHealthAndTheModelList) {
    start();
    EXPECT_EQ(m_server->served_model_name(), kModel);
    auto health = client()->Get("/health");
    ASSERT_TRUE(health);
    EXPECT_EQ(health->status, 200);
    auto models = client()->Get("/v1/models");
    ASSERT_TRUE(models);
    EXPECT_EQ(models->status, 200);
    const json list = json::parse(models->body);
    EXPECT_EQ(list["object"], "list");
    ASSERT_EQ(list["data"].size(), 1U);
    EXPECT_EQ(list["data"][0]["id"], kModel);
    EXPECT_EQ(list["data"][0]["max_model_len"], 131072);
}

TEST_F(SimServerTest, CompletesWithoutStreaming) {
    start();
    auto res = post("/v1/completions", {{"model", kModel},
                                        {"prompt", "hello world!"},
                                        {"max_tokens", 7},
                                        {"temperature", 0.0},
                                        {"ignore_eos", true}});
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    const json body = json::parse(res->body);
    EXPECT_EQ(body["object"], "text_completion");
    EXPECT_EQ(body["model"], kModel);
    EXPECT_EQ(body["id"].get<std::string>().rfind("cmpl-", 0), 0U);
    EXPECT_EQ(body["choices"][0]["text"], generated_text(7));
    EXPECT_EQ(body["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(body["usage"]["prompt_tokens"], 3);
    EXPECT_EQ(body["usage"]["completion_tokens"], 7);
    EXPECT_EQ(body["usage"]["total_tokens"], 10);
    // Without max_tokens: the server's default; without model: the served one.
    auto dflt = post("/v1/completions", {{"prompt", "x"}});
    ASSERT_TRUE(dflt);
    ASSERT_EQ(dflt->status, 200) << dflt->body;
    EXPECT_EQ(json::parse(dflt->body)["usage"]["completion_tokens"], 8);
}

TEST_F(SimServerTest, StreamsOneChunkPerTokenThenUsageThenDone) {
    start();
    auto res = post("/v1/completions", {{"model", kModel},
                                        {"prompt", json::array({1, 2, 3, 4, 5, 6, 7, 8, 9, 10})},
                                        {"max_tokens", 12},
                                        {"stream", true},
                                        {"stream_options", {{"include_usage", true}}}});
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    EXPECT_EQ(res->get_header_value("Content-Type").rfind("text/event-stream", 0), 0U);
    const auto events = testing::sse_payloads(res->body);
    ASSERT_EQ(events.size(), 12U + 2U);
    std::string text;
    for (std::size_t i = 0; i < 12; ++i) {
        const json c = json::parse(events[i]);
        ASSERT_EQ(c["choices"].size(), 1U);
        text += c["choices"][0]["text"].get<std::string>();
        EXPECT_EQ(c["choices"][0]["finish_reason"], i == 11 ? json("length") : json(nullptr));
        EXPECT_TRUE(c["usage"].is_null());
    }
    EXPECT_EQ(text, generated_text(12));
    const json usage = json::parse(events[12]);
    EXPECT_TRUE(usage["choices"].empty());
    EXPECT_EQ(usage["usage"]["prompt_tokens"], 10);
    EXPECT_EQ(usage["usage"]["completion_tokens"], 12);
    EXPECT_EQ(events[13], "[DONE]");
}

TEST_F(SimServerTest, StreamsChat) {
    start();
    auto res =
        post("/v1/chat/completions",
             {{"model", kModel},
              {"messages", json::array({{{"role", "user"}, {"content", "hello there"}}})},
              {"max_completion_tokens", 5},
              {"stream", true},
              {"stream_options", {{"include_usage", true}, {"continuous_usage_stats", true}}}});
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    const auto events = testing::sse_payloads(res->body);
    ASSERT_EQ(events.size(), 1U + 5U + 2U);
    const json role = json::parse(events[0]);
    EXPECT_EQ(role["object"], "chat.completion.chunk");
    EXPECT_EQ(role["choices"][0]["delta"]["role"], "assistant");
    EXPECT_EQ(role["choices"][0]["delta"]["content"], "");
    for (std::size_t i = 1; i <= 5; ++i) {
        const json c = json::parse(events[i]);
        EXPECT_EQ(c["choices"][0]["delta"]["content"], token_text(static_cast<int>(i) - 1));
        EXPECT_EQ(c["usage"]["completion_tokens"], static_cast<int>(i));  // continuous usage
    }
    const json usage = json::parse(events[6]);
    EXPECT_TRUE(usage["choices"].empty());
    EXPECT_EQ(usage["usage"]["completion_tokens"], 5);
    EXPECT_EQ(usage["usage"]["prompt_tokens"],
              3 + kChatTokensPerMessage + kChatGenerationPromptTokens);
    EXPECT_EQ(events[7], "[DONE]");

    auto full = post(
        "/v1/chat/completions",
        {{"messages", json::array({{{"role", "user"}, {"content", "hi"}}})}, {"max_tokens", 3}});
    ASSERT_TRUE(full);
    ASSERT_EQ(full->status, 200) << full->body;
    const json body = json::parse(full->body);
    EXPECT_EQ(body["object"], "chat.completion");
    EXPECT_EQ(body["choices"][0]["message"]["content"], generated_text(3));
}

TEST_F(SimServerTest, CountsTokenIdPrompts) {
    start();
    auto usage_of = [this](const json& prompt) {
        auto res = post("/v1/completions", {{"prompt", prompt}, {"max_tokens", 2}});
        EXPECT_TRUE(res && res->status == 200) << (res ? res->body : "no response");
        return res && res->status == 200
                   ? json::parse(res->body)["usage"]["prompt_tokens"].get<int>()
                   : -1;
    };
    std::vector<int> ids(1000, 42);
    EXPECT_EQ(usage_of(ids), 1000);
    EXPECT_EQ(usage_of(json::array({json::array({1, 2, 3})})), 3);
    EXPECT_EQ(usage_of(json::array({"abcdefgh"})), 2);
}

TEST_F(SimServerTest, AnswersBadRequestsAsVllm) {
    start(testing::llama_node(), 0, [](SimServerOptions& o) { o.max_body_bytes = 1024 * 1024; });
    auto raw = client()->Post("/v1/completions", "{not json", "application/json");
    expect_error(raw, 400);
    expect_error(post("/v1/completions", {{"prompt", 5}}), 400);
    expect_error(post("/v1/completions", {{"prompt", "x"}, {"n", 2}}), 400);
    expect_error(post("/v1/completions", {{"prompt", "x"}, {"max_tokens", "ten"}}), 400);
    expect_error(post("/v1/completions", {{"prompt", "x"}, {"max_tokens", 0}}), 400);
    expect_error(post("/v1/chat/completions", {{"messages", json::array()}}), 400);
    // Over max_model_len.
    const json too_long =
        expect_error(post("/v1/completions", {{"prompt", "x"}, {"max_tokens", 131072}}), 400);
    EXPECT_NE(too_long["message"].get<std::string>().find("maximum context length is 131072"),
              std::string::npos);
    // Within max_model_len but larger than the KV cache: the simulator rejects it.
    std::vector<int> ids(100000, 1);
    const json kv =
        expect_error(post("/v1/completions", {{"prompt", ids}, {"max_tokens", 10}}), 400);
    EXPECT_NE(kv["message"].get<std::string>().find("KV cache"), std::string::npos);
    EXPECT_EQ(m_server->stats().requests_rejected, 1U);
    // Oversized body.
    expect_error(client()->Post("/v1/completions",
                                json{{"prompt", std::string(2 * 1024 * 1024, 'a')}}.dump(),
                                "application/json"),
                 400);
    // Unknown model: 404 with vLLM's message.
    const json nf = expect_error(
        post("/v1/completions", {{"model", "gpt-4"}, {"prompt", "x"}, {"stream", true}}), 404);
    EXPECT_EQ(nf["message"], "The model `gpt-4` does not exist.");
    expect_error(client()->Get("/v1/nothing"), 404);
    // Still serving.
    auto ok = post("/v1/completions", {{"prompt", "x"}, {"max_tokens", 2}});
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->status, 200);
}

TEST_F(SimServerTest, MetricsParseAndMatchWhatWasServed) {
    start();
    for (int i = 0; i < 3; ++i) {
        auto res =
            post("/v1/completions",
                 {{"prompt", std::vector<int>(10, 1)}, {"max_tokens", 5}, {"stream", i == 1}});
        ASSERT_TRUE(res && res->status == 200);
    }
    const engine::EngineSnapshot snap = snapshot();
    EXPECT_EQ(snap.running, 0);
    EXPECT_EQ(snap.waiting, 0);
    EXPECT_DOUBLE_EQ(snap.prompt_tokens, 30.0);
    EXPECT_DOUBLE_EQ(snap.generation_tokens, 15.0);
    EXPECT_DOUBLE_EQ(snap.requests_finished, 3.0);
    EXPECT_DOUBLE_EQ(snap.ttft_s.count, 3.0);
    EXPECT_DOUBLE_EQ(snap.itl_s.count, 12.0);
    EXPECT_DOUBLE_EQ(snap.tpot_s.count, 3.0);
    EXPECT_DOUBLE_EQ(snap.e2e_s.count, 3.0);
    EXPECT_GT(snap.ttft_s.sum, 0.0);
    // Simulated seconds: a decode step of an 8B model on an H100 takes milliseconds.
    EXPECT_GT(snap.itl_s.mean(), 0.002);
    EXPECT_LT(snap.itl_s.mean(), 0.05);
    std::vector<double> ttft_bounds = engine::vllm_ttft_buckets();
    ttft_bounds.push_back(std::numeric_limits<double>::infinity());
    EXPECT_EQ(snap.ttft_s.upper_bounds, ttft_bounds);
    EXPECT_DOUBLE_EQ(gauge("vllm:request_success_total"), 0.0);  // "stop" comes first
    EXPECT_DOUBLE_EQ(gauge("pals_sim_batch_cap"), 64.0);
    EXPECT_DOUBLE_EQ(gauge("pals_sim_power_cap_watts"), 700.0);
}

TEST_F(SimServerTest, MetricsPassPromtoolApartFromVllmsColons) {
    if (!std::filesystem::exists("/usr/bin/promtool")) {
        GTEST_SKIP() << "promtool is not installed";
    }
    start(testing::llama_node(64, 1, 2));
    ASSERT_TRUE(post("/v1/completions", {{"prompt", "x"}, {"max_tokens", 3}}));
    testing::write_text(m_dir.file("metrics.txt"), metrics_text());
    const std::string cmd =
        "/usr/bin/promtool check metrics < " + m_dir.file("metrics.txt") + " 2>&1";
    std::FILE* p = ::popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string out;
    std::array<char, 4096> buf{};
    while (std::fgets(buf.data(), buf.size(), p) != nullptr) {
        out += buf.data();
    }
    const int rc = ::pclose(p);
    // promtool's linter objects to ':' in every vLLM name (vLLM's own /metrics gets the same
    // complaint, exit code 3); anything else (a parse error, another lint) is a failure.
    std::size_t pos = 0;
    int lines = 0;
    while (pos < out.size()) {
        const std::size_t end = out.find('\n', pos);
        const std::string line = out.substr(pos, end - pos);
        pos = end == std::string::npos ? out.size() : end + 1;
        if (line.empty()) {
            continue;
        }
        ++lines;
        EXPECT_EQ(line.rfind("vllm:", 0), 0U) << line;
        EXPECT_NE(line.find("metric names should not contain ':'"), std::string::npos) << line;
    }
    EXPECT_TRUE(WEXITSTATUS(rc) == 0 || (WEXITSTATUS(rc) == 3 && lines > 0)) << out;
}

TEST_F(SimServerTest, LabelsEachReplicaAsAnEngine) {
    start(testing::llama_node(64, 1, 2));
    std::vector<std::thread> clients;
    for (int i = 0; i < 4; ++i) {
        clients.emplace_back([this] {
            (void)post("/v1/completions", {{"prompt", "x"}, {"max_tokens", 20}});
        });
    }
    for (auto& t : clients) {
        t.join();
    }
    const double e0 = gauge("vllm:generation_tokens_total", "0");
    const double e1 = gauge("vllm:generation_tokens_total", "1");
    EXPECT_DOUBLE_EQ(e0 + e1, 80.0);
    EXPECT_GT(e0, 0.0);
    EXPECT_GT(e1, 0.0);
    EXPECT_DOUBLE_EQ(snapshot().generation_tokens, 80.0);
}

TEST_F(SimServerTest, ObeysTheBatchCapFile) {
    start();
    write_batch_cap(1);
    ASSERT_TRUE(eventually([this] { return gauge("pals_sim_batch_cap") == 1.0; }));
    std::vector<std::thread> clients;
    for (int i = 0; i < 4; ++i) {
        clients.emplace_back([this] {
            auto res = post("/v1/completions", {{"prompt", "x"}, {"max_tokens", 150}});
            EXPECT_TRUE(res && res->status == 200);
        });
    }
    double max_running = 0.0;
    double max_waiting = 0.0;
    double done = 0.0;
    while (done < 4.0) {
        const engine::EngineSnapshot s = snapshot();
        max_running = std::max<double>(max_running, s.running);
        max_waiting = std::max<double>(max_waiting, s.waiting);
        done = s.requests_finished;
        std::this_thread::sleep_for(2ms);
    }
    for (auto& t : clients) {
        t.join();
    }
    EXPECT_LE(max_running, 1.0);
    EXPECT_GE(max_waiting, 1.0);
    // 0, an absent file and a malformed one all mean the launch max_num_seqs.
    write_batch_cap(0);
    EXPECT_TRUE(eventually([this] { return gauge("pals_sim_batch_cap") == 64.0; }));
    write_batch_cap(3);
    EXPECT_TRUE(eventually([this] { return gauge("pals_sim_batch_cap") == 3.0; }));
    testing::write_text(m_dir.file("batch_cap"), "abc");
    EXPECT_TRUE(eventually([this] { return gauge("pals_sim_batch_cap") == 64.0; }));
    write_batch_cap(1000);  // clamped to max_num_seqs
    EXPECT_TRUE(eventually([this] { return gauge("pals_sim_batch_cap") == 64.0; }));
    write_batch_cap(2);
    EXPECT_TRUE(eventually([this] { return gauge("pals_sim_batch_cap") == 2.0; }));
    std::filesystem::remove(m_dir.file("batch_cap"));
    EXPECT_TRUE(eventually([this] { return gauge("pals_sim_batch_cap") == 64.0; }));
}

/// The acknowledgement sim-serve writes beside the cap file, as the PALS scheduler does.
std::optional<engine::vllm::BatchCapAckRecord> read_ack(const std::string& path) {
    auto bytes = read_file(path);
    if (!bytes.is_ok()) {
        return std::nullopt;
    }
    auto ack = engine::vllm::decode_batch_cap_ack(*bytes);
    return ack.is_ok() ? std::optional(*ack) : std::nullopt;
}

TEST_F(SimServerTest, AcknowledgesTheBatchCapItApplies) {
    start();
    const std::string ack_path = m_dir.file("batch_cap") + ".ack";
    ASSERT_TRUE(eventually([&] { return read_ack(ack_path).has_value(); }));
    auto ack = read_ack(ack_path);
    EXPECT_EQ(ack->applied, 64U);  // no cap yet: the launch value
    EXPECT_EQ(ack->requested, 0U);
    EXPECT_EQ(ack->launch, 64U);
    write_batch_cap(5);
    ASSERT_TRUE(eventually([&] {
        auto a = read_ack(ack_path);
        return a && a->applied == 5U && a->requested == 5U;
    }));
    write_batch_cap(1000);  // clamped: applied the launch value, requested as read
    ASSERT_TRUE(eventually([&] {
        auto a = read_ack(ack_path);
        return a && a->applied == 64U && a->requested == 1000U;
    }));
    // A heartbeat: the time stamp moves on while nothing changes.
    const std::uint64_t t0 = read_ack(ack_path)->time_unix_us;
    EXPECT_TRUE(eventually([&] { return read_ack(ack_path)->time_unix_us > t0; }));
}

TEST_F(SimServerTest, ObeysAndAcknowledgesTheStepTokenFileBesideTheCap) {
    start();
    const std::string tokens_path = m_dir.file("batch_cap") + ".step_tokens";
    const std::string ack_path = tokens_path + ".ack";
    ASSERT_TRUE(eventually([&] { return read_ack(ack_path).has_value(); }));
    EXPECT_EQ(read_ack(ack_path)->applied, 8192U);  // no budget yet: the launch value
    EXPECT_EQ(read_ack(ack_path)->launch, 8192U);
    EXPECT_DOUBLE_EQ(gauge("pals_sim_step_tokens"), 8192.0);
    ASSERT_TRUE(write_file_atomic(tokens_path, engine::vllm::encode_batch_cap(2048)).is_ok());
    EXPECT_TRUE(eventually([this] { return gauge("pals_sim_step_tokens") == 2048.0; }));
    ASSERT_TRUE(eventually([&] {
        auto a = read_ack(ack_path);
        return a && a->applied == 2048U && a->requested == 2048U;
    }));
    // Never applied below the running-request limit (the batch cap, 64 here), as the plugin.
    ASSERT_TRUE(write_file_atomic(tokens_path, engine::vllm::encode_batch_cap(10)).is_ok());
    ASSERT_TRUE(eventually([&] {
        auto a = read_ack(ack_path);
        return a && a->applied == 64U && a->requested == 10U;
    }));
    std::filesystem::remove(tokens_path);
    EXPECT_TRUE(eventually([this] { return gauge("pals_sim_step_tokens") == 8192.0; }));
}

TEST_F(SimServerTest, CanPlayAnEngineThatIgnoresTheCapOrHasNoPlugin) {
    start(testing::llama_node(), 0,
          [](SimServerOptions& o) { o.batch_cap_mode = BatchCapMode::kIgnore; });
    const std::string ack_path = m_dir.file("batch_cap") + ".ack";
    write_batch_cap(5);
    ASSERT_TRUE(eventually([&] {
        auto a = read_ack(ack_path);
        return a && a->requested == 5U;
    }));
    EXPECT_EQ(read_ack(ack_path)->applied, 64U);
    EXPECT_DOUBLE_EQ(gauge("pals_sim_batch_cap"), 64.0);
    m_server->stop();
    m_server.reset();
    std::filesystem::remove(ack_path);
    start(testing::llama_node(), 0,
          [](SimServerOptions& o) { o.batch_cap_mode = BatchCapMode::kNone; });
    write_batch_cap(5);
    EXPECT_TRUE(eventually([this] { return gauge("pals_sim_batch_cap") == 64.0; }));
    std::this_thread::sleep_for(50ms);
    EXPECT_FALSE(std::filesystem::exists(ack_path));
    EXPECT_DOUBLE_EQ(gauge("pals_sim_batch_cap"), 64.0);
}

TEST_F(SimServerTest, AppliesPowerLimitsSetThroughTheFakeNvml) {
    start(testing::llama_node(64, /*tp=*/2, /*replicas=*/1));
    auto nvml = controller(2);
    set_limit(*nvml, 0, 400.0);
    EXPECT_TRUE(eventually([this] { return gauge("pals_sim_power_cap_watts") == 400.0; }));
    // A TP group runs at its lowest member's limit.
    set_limit(*nvml, 1, 250.0);
    EXPECT_TRUE(eventually([this] { return gauge("pals_sim_power_cap_watts") == 250.0; }));
}

TEST_F(SimServerTest, ReportsPowerThroughTheFakeNvml) {
    start();
    auto nvml = controller(1);
    const double idle_w = nvml->config().spec.idle_power_w;
    auto reported = [&] {
        auto state = nvml->read_state();
        return state ? nvml->operating((*state)[0]).power_w : -1.0;
    };
    EXPECT_TRUE(eventually([&] { return std::abs(reported() - idle_w) < 1.0; }));
    std::atomic<bool> finished{false};
    std::thread load([&] {
        auto res =
            post("/v1/completions", {{"prompt", std::vector<int>(2000, 1)}, {"max_tokens", 1500}});
        EXPECT_TRUE(res && res->status == 200);
        finished = true;
    });
    EXPECT_TRUE(eventually([&] { return reported() > idle_w + 50.0; }));
    const double metric_w = gauge("pals_sim_power_watts");
    EXPECT_GT(metric_w, idle_w + 50.0);
    load.join();
    ASSERT_TRUE(finished);
    // Idle again once the request is done; the energy counter kept growing.
    EXPECT_TRUE(eventually([&] { return std::abs(reported() - idle_w) < 1.0; }));
    auto state = nvml->read_state();
    ASSERT_TRUE(state.has_value());
    EXPECT_GT((*state)[0].energy_j, 0.0);
    EXPECT_GT(m_server->stats().nvml_reports, 2U);
}

TEST_F(SimServerTest, SharesANodeFromAGpuOffset) {
    start(testing::llama_node(64, /*tp=*/2), /*nvml_count=*/4,
          [](SimServerOptions& o) { o.gpu_offset = 1; });
    auto nvml = controller(4);
    // A limit on a GPU of another server does not matter; on ours it does.
    set_limit(*nvml, 0, 200.0);
    set_limit(*nvml, 2, 300.0);
    EXPECT_TRUE(eventually([this] { return gauge("pals_sim_power_cap_watts") == 300.0; }));
    EXPECT_TRUE(eventually([&] {
        auto state = nvml->read_state();
        return state && (*state)[1].reported_s > 0.0 && (*state)[2].reported_s > 0.0;
    }));
    auto state = nvml->read_state();
    ASSERT_TRUE(state.has_value());
    EXPECT_LT((*state)[0].reported_s, 0.0);
    EXPECT_LT((*state)[3].reported_s, 0.0);
}

TEST_F(SimServerTest, RefusesAnInvalidNvmlSetup) {
    auto create_with = [this](const std::string& config, int offset) {
        testing::write_text(m_dir.file("bad.json"), config);
        SimServerOptions o;
        o.fake_nvml_config_path = m_dir.file("bad.json");
        o.fake_nvml_state_path = m_dir.file("bad-state.json");
        o.gpu_offset = offset;
        return SimServer::create(testing::llama_node(), o).status();
    };
    EXPECT_EQ(create_with(R"({"count": 2, "load": "decode"})", 0).code(),
              StatusCode::kInvalidArgument);
    EXPECT_EQ(create_with(R"({"count": 2, "gpu": "A100-80GB", "load": "external"})", 0).code(),
              StatusCode::kInvalidArgument);
    EXPECT_EQ(create_with(testing::external_config(2), 2).code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(create_with("{bad", 0).code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(create_with(testing::external_config(2), 1).is_ok());
    SimServerOptions o;
    o.time_scale = 0.0;
    EXPECT_FALSE(SimServer::create(testing::llama_node(), o).is_ok());
}

TEST_F(SimServerTest, AbortsARequestWhoseClientWentAway) {
    start();
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(m_server->port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    const std::string body = json{{"prompt", "x"}, {"max_tokens", 15000}, {"stream", true}}.dump();
    const std::string request =
        "POST /v1/completions HTTP/1.1\r\nHost: localhost\r\n"
        "Content-Type: application/json\r\nContent-Length: " +
        std::to_string(body.size()) + "\r\n\r\n" + body;
    ASSERT_EQ(::send(fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
    std::string received;
    std::array<char, 4096> buf{};
    while (received.find("data: ") == std::string::npos) {
        const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
        ASSERT_GT(n, 0);
        received.append(buf.data(), static_cast<std::size_t>(n));
    }
    EXPECT_TRUE(eventually([this] { return gauge("vllm:num_requests_running") == 1.0; }));
    ::close(fd);
    EXPECT_TRUE(eventually([this] { return m_server->stats().requests_aborted == 1U; }));
    EXPECT_TRUE(eventually([this] { return gauge("vllm:num_requests_running") == 0.0; }));
    EXPECT_DOUBLE_EQ(snapshot().requests_finished, 1.0);  // finished_reason="abort"
    auto ok = post("/v1/completions", {{"prompt", "x"}, {"max_tokens", 2}});
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->status, 200);
}

TEST_F(SimServerTest, ServesManyConcurrentStreams) {
    start();
    constexpr int kStreams = 64;
    constexpr int kTokens = 20;
    std::atomic<int> complete{0};
    std::vector<std::thread> clients;
    for (int i = 0; i < kStreams; ++i) {
        clients.emplace_back([&, this] {
            auto res = post(
                "/v1/completions",
                {{"prompt", std::vector<int>(100, 1)}, {"max_tokens", kTokens}, {"stream", true}});
            if (res && res->status == 200) {
                const auto events = testing::sse_payloads(res->body);
                if (events.size() == kTokens + 1U && events.back() == "[DONE]") {
                    ++complete;
                }
            }
        });
    }
    for (auto& t : clients) {
        t.join();
    }
    EXPECT_EQ(complete.load(), kStreams);
    EXPECT_DOUBLE_EQ(snapshot().generation_tokens, kStreams * kTokens);
}

TEST_F(SimServerTest, KeepsItsTickInRealTimeWithManyStreams) {
    start(testing::llama_node(256), 0, [](SimServerOptions& o) {
        o.time_scale = 1.0;
        o.tick_period = 2ms;
        o.max_connections = 256;
    });
    constexpr int kStreams = 128;
    constexpr int kTokens = 30;
    const std::uint64_t ticks0 = m_server->stats().ticks;
    const auto t0 = std::chrono::steady_clock::now();
    std::atomic<int> complete{0};
    std::vector<std::thread> clients;
    for (int i = 0; i < kStreams; ++i) {
        clients.emplace_back([&, this] {
            auto res = post(
                "/v1/completions",
                {{"prompt", std::vector<int>(100, 1)}, {"max_tokens", kTokens}, {"stream", true}});
            if (res && res->status == 200 &&
                testing::sse_payloads(res->body).size() == kTokens + 1U) {
                ++complete;
            }
        });
    }
    for (auto& t : clients) {
        t.join();
    }
    const double wall_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const SimServerStats stats = m_server->stats();
    const double ticks_per_s = static_cast<double>(stats.ticks - ticks0) / wall_s;
    std::printf("%d streams x %d tokens in %.2f s wall; %.0f ticks/s (nominal 500); sim %.2f s\n",
                kStreams, kTokens, wall_s, ticks_per_s, stats.sim_time_s);
    EXPECT_EQ(complete.load(), kStreams);
    EXPECT_GT(ticks_per_s, 100.0);
}

TEST_F(SimServerTest, StopEndsOpenStreamsPromptly) {
    start();
    std::thread stream([this] {
        (void)post("/v1/completions", {{"prompt", "x"}, {"max_tokens", 15000}, {"stream", true}});
    });
    EXPECT_TRUE(eventually([this] { return gauge("vllm:num_requests_running") == 1.0; }));
    const auto t0 = std::chrono::steady_clock::now();
    m_server->stop();
    const double stop_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    stream.join();
    EXPECT_LT(stop_s, 4.0);
    m_server->stop();  // idempotent
}

TEST_F(SimServerTest, RefusesAPortInUse) {
    start();
    SimServerOptions o;
    o.port = m_server->port();
    auto second = SimServer::create(testing::llama_node(), o);
    ASSERT_TRUE(second.is_ok());
    EXPECT_EQ((*second)->start().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace pals::serve
