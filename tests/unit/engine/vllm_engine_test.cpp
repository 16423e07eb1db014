#include "pals/engine/vllm/vllm_engine.hpp"

#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

#include "pals/common/file_util.hpp"

namespace pals::engine::vllm {
namespace {

std::string golden(const std::string& name) {
    auto text = read_file(std::string(PALS_SOURCE_DIR) + "/tests/data/vllm/" + name);
    EXPECT_TRUE(text.is_ok()) << text.status().message();
    return text.is_ok() ? *text : std::string{};
}

/// A vLLM-like /metrics endpoint on 127.0.0.1, port chosen by the kernel.
class FakeVllmServer {
public:
    explicit FakeVllmServer(std::string text) : m_text(std::move(text)) {
        m_server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
            std::lock_guard<std::mutex> lock(m_mutex);
            if (m_status != 200) {
                res.status = m_status;
                return;
            }
            res.set_content(m_text, "text/plain; version=0.0.4; charset=utf-8");
        });
        m_port = m_server.bind_to_any_port("127.0.0.1");
        m_thread = std::thread([this] { m_server.listen_after_bind(); });
        for (int i = 0; i < 500 && !m_server.is_running(); ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    }
    ~FakeVllmServer() { stop(); }
    FakeVllmServer(const FakeVllmServer&) = delete;
    FakeVllmServer& operator=(const FakeVllmServer&) = delete;

    void stop() {
        if (m_thread.joinable()) {
            m_server.stop();
            m_thread.join();
        }
    }
    void set_text(std::string text) {
        std::lock_guard<std::mutex> lock(m_mutex);
        m_text = std::move(text);
    }
    void set_status(int status) {
        std::lock_guard<std::mutex> lock(m_mutex);
        m_status = status;
    }
    [[nodiscard]] int port() const { return m_port; }
    [[nodiscard]] bool running() const { return m_server.is_running(); }

private:
    httplib::Server m_server;
    std::mutex m_mutex;
    std::string m_text;
    int m_status = 200;
    int m_port = -1;
    std::thread m_thread;
};

/// A vLLM 0.11 exposition of a freshly started server: small counters, vLLM's bounds.
std::string fresh_server_text() {
    std::ostringstream out;
    const std::string l = "engine=\"0\",model_name=\"meta-llama/Llama-3.1-8B-Instruct\"";
    out << "vllm:num_requests_running{" << l << "} 1.0\n"
        << "vllm:num_requests_waiting{" << l << "} 0.0\n"
        << "vllm:kv_cache_usage_perc{" << l << "} 0.01\n"
        << "vllm:prompt_tokens_total{" << l << "} 100.0\n"
        << "vllm:generation_tokens_total{" << l << "} 20.0\n"
        << "vllm:request_success_total{" << l << ",finished_reason=\"stop\"} 1.0\n"
        << "vllm:num_preemptions_total{" << l << "} 0.0\n";
    auto histogram = [&](const std::string& name, const std::vector<double>& bounds, double value) {
        for (double b : bounds) {
            out << name << "_bucket{" << l << ",le=\"" << b << "\"} " << (value <= b ? 1.0 : 0.0)
                << "\n";
        }
        out << name << "_bucket{" << l << ",le=\"+Inf\"} 1.0\n"
            << name << "_count{" << l << "} 1.0\n"
            << name << "_sum{" << l << "} " << value << "\n";
    };
    histogram("vllm:time_to_first_token_seconds", vllm_ttft_buckets(), 0.07);
    histogram("vllm:inter_token_latency_seconds", vllm_itl_buckets(), 0.03);
    histogram("vllm:request_time_per_output_token_seconds", vllm_itl_buckets(), 0.03);
    histogram("vllm:e2e_request_latency_seconds", vllm_e2e_buckets(), 0.9);
    return out.str();
}

/// A fresh temporary directory for the batch-cap file, removed at the end.
class TempDir {
public:
    TempDir() {
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        m_path = std::filesystem::temp_directory_path() /
                 ("pals_vllm_" + std::to_string(::getpid()) + "_" + info->name());
        std::filesystem::remove_all(m_path);
        std::filesystem::create_directories(m_path);
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(m_path, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    [[nodiscard]] const std::filesystem::path& path() const { return m_path; }

private:
    std::filesystem::path m_path;
};

VllmEngineConfig config_for(int port, const std::filesystem::path& cap_path) {
    VllmEngineConfig c;
    c.name = "vllm-test";
    c.host = "127.0.0.1";
    c.port = port;
    c.timeout = Seconds{2.0};
    c.max_num_seqs = 64;
    c.gpus = {2, 3};
    c.batch_cap_path = cap_path;
    return c;
}

std::uint64_t read_cap(const std::filesystem::path& path) {
    auto bytes = read_file(path);
    EXPECT_TRUE(bytes.is_ok()) << bytes.status().message();
    EXPECT_EQ(bytes->size(), 8U);
    auto v = decode_batch_cap(*bytes);
    EXPECT_TRUE(v.is_ok());
    return v.is_ok() ? *v : 0;
}

TEST(VllmEngineTest, ScrapesTheServerAndStampsTheInjectedClock) {
    FakeVllmServer server(golden("metrics_v0_11.txt"));
    ASSERT_GT(server.port(), 0);
    ASSERT_TRUE(server.running());
    TempDir dir;
    ManualClock clock(Seconds{100.0});
    VllmEngine engine(config_for(server.port(), dir.path() / "cap"), clock);
    EXPECT_EQ(engine.engine_name(), "vllm-test");
    EXPECT_EQ(engine.gpus(), (std::vector<int>{2, 3}));
    EXPECT_EQ(engine.max_batch_cap(), 64);
    EXPECT_EQ(engine.metrics_url(),
              "http://127.0.0.1:" + std::to_string(server.port()) + "/metrics");

    auto snap = engine.snapshot();
    ASSERT_TRUE(snap.is_ok()) << snap.status().message();
    EXPECT_DOUBLE_EQ(snap->time.count(), 100.0);
    EXPECT_EQ(snap->running, 7);
    EXPECT_EQ(snap->waiting, 3);
    EXPECT_EQ(snap->batch_cap, 64);  // nothing published yet: the launch cap
    EXPECT_DOUBLE_EQ(snap->generation_tokens, 48211.0);
    EXPECT_NEAR(snap->ttft_s.quantile(0.5), 0.063, 1e-12);
    EXPECT_FALSE(std::filesystem::exists(dir.path() / "cap"));
}

TEST(VllmEngineTest, RefreshRepublishesTheCapSoThatItDoesNotExpire) {
    TempDir dir;
    ManualClock clock(Seconds{0.0});
    VllmEngine engine(config_for(1, dir.path() / "cap"), clock);
    ASSERT_TRUE(engine.refresh_controls().is_ok());
    EXPECT_FALSE(std::filesystem::exists(dir.path() / "cap"));  // nothing published yet
    ASSERT_TRUE(engine.set_batch_cap(32).is_ok());
    const auto old = std::filesystem::file_time_type::clock::now() - std::chrono::minutes(5);
    std::filesystem::last_write_time(dir.path() / "cap", old);
    ASSERT_TRUE(engine.refresh_controls().is_ok());
    EXPECT_GT(std::filesystem::last_write_time(dir.path() / "cap"),
              old + std::chrono::minutes(4));  // a fresh mtime for the plugin's expiry
    EXPECT_EQ(read_cap(dir.path() / "cap"), 32U);
}

TEST(VllmEngineTest, RestartedServerCountsFromZeroInTheWindow) {
    FakeVllmServer server(golden("metrics_v0_11.txt"));
    TempDir dir;
    ManualClock clock(Seconds{0.0});
    VllmEngine engine(config_for(server.port(), dir.path() / "cap"), clock);
    auto before = engine.snapshot();
    ASSERT_TRUE(before.is_ok()) << before.status().message();

    server.set_text(fresh_server_text());  // the server restarted: every counter dropped
    clock.advance(Seconds{2.0});
    auto after = engine.snapshot();
    ASSERT_TRUE(after.is_ok()) << after.status().message();
    EXPECT_DOUBLE_EQ(after->prompt_tokens, 100.0);

    auto w = window_between(*before, *after);
    ASSERT_TRUE(w.is_ok()) << w.status().message();
    EXPECT_DOUBLE_EQ(w->duration_s, 2.0);
    EXPECT_DOUBLE_EQ(w->prompt_tokens, 100.0);
    EXPECT_DOUBLE_EQ(w->generation_tokens, 20.0);
    EXPECT_DOUBLE_EQ(w->requests_finished, 1.0);
    EXPECT_DOUBLE_EQ(w->ttft_s.count, 1.0);
    EXPECT_NEAR(w->ttft_s.quantile(0.5), 0.06 + 0.02 * 0.5, 1e-12);
    EXPECT_DOUBLE_EQ(w->e2e_s.count, 1.0);
    EXPECT_EQ(w->running, 1);
}

TEST(VllmEngineTest, UnreachableOrFailingServerIsUnavailableWithTheUrl) {
    int dead_port = 0;
    {
        FakeVllmServer server("");
        dead_port = server.port();
        server.stop();  // nothing listens on this port any more
    }
    ASSERT_GT(dead_port, 0);
    TempDir dir;
    ManualClock clock;
    auto config = config_for(dead_port, dir.path() / "cap");
    config.timeout = Seconds{0.5};
    VllmEngine engine(config, clock);
    auto snap = engine.snapshot();
    ASSERT_FALSE(snap.is_ok());
    EXPECT_EQ(snap.status().code(), StatusCode::kUnavailable);
    EXPECT_NE(snap.status().message().find(engine.metrics_url()), std::string::npos)
        << snap.status().message();

    FakeVllmServer failing(golden("metrics_v0_11.txt"));
    failing.set_status(503);
    VllmEngine engine503(config_for(failing.port(), dir.path() / "cap"), clock);
    auto s503 = engine503.snapshot();
    ASSERT_FALSE(s503.is_ok());
    EXPECT_EQ(s503.status().code(), StatusCode::kUnavailable);
    EXPECT_NE(s503.status().message().find("HTTP 503"), std::string::npos);

    failing.set_status(200);
    failing.set_text("vllm:num_requests_running{engine=\"0\"} 1\n");  // no other vLLM metric
    auto partial = engine503.snapshot();
    ASSERT_FALSE(partial.is_ok());
    EXPECT_EQ(partial.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(partial.status().message().find("vllm:num_requests_waiting"), std::string::npos);
    EXPECT_EQ(partial.status().message().rfind(engine503.metrics_url(), 0), 0U);
}

TEST(VllmEngineTest, BatchCapFileIsEightLittleEndianBytesClamped) {
    TempDir dir;
    ManualClock clock;
    const auto cap_path = dir.path() / "batch_cap";
    VllmEngine engine(config_for(1, cap_path), clock);

    ASSERT_TRUE(engine.set_batch_cap(48).is_ok());
    EXPECT_EQ(read_cap(cap_path), 48U);
    EXPECT_EQ(engine.batch_cap(), 48);
    auto raw = read_file(cap_path);
    ASSERT_TRUE(raw.is_ok());
    EXPECT_EQ(*raw, std::string("\x30\0\0\0\0\0\0\0", 8));

    ASSERT_TRUE(engine.set_batch_cap(1000).is_ok());
    EXPECT_EQ(read_cap(cap_path), 64U);  // clamped to max_num_seqs
    ASSERT_TRUE(engine.set_batch_cap(0).is_ok());
    EXPECT_EQ(read_cap(cap_path), 1U);
    ASSERT_TRUE(engine.set_batch_cap(-7).is_ok());
    EXPECT_EQ(read_cap(cap_path), 1U);
    EXPECT_EQ(engine.batch_cap(), 1);
    // Only the final file is left: the temporary was renamed over it.
    int files = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
        (void)entry;
        ++files;
    }
    EXPECT_EQ(files, 1);

    VllmEngine nowhere(config_for(1, dir.path() / "no" / "such" / "dir" / "cap"), clock);
    const Status failed = nowhere.set_batch_cap(8);
    EXPECT_FALSE(failed.is_ok());
    EXPECT_EQ(nowhere.batch_cap(), 64);  // unchanged
}

TEST(VllmEngineTest, BatchCapEncodingRoundTrips) {
    EXPECT_EQ(encode_batch_cap(0x0102030405060708ULL),
              std::string("\x08\x07\x06\x05\x04\x03\x02\x01", 8));
    EXPECT_EQ(*decode_batch_cap(encode_batch_cap(1024)), 1024U);
    EXPECT_FALSE(decode_batch_cap("1234567").is_ok());
}

TEST(VllmEngineTest, SnapshotCarriesThePublishedCap) {
    FakeVllmServer server(golden("metrics_old_names.txt"));
    TempDir dir;
    ManualClock clock;
    auto config = config_for(server.port(), dir.path() / "cap");
    config.filter.engine = "1";
    VllmEngine engine(config, clock);
    ASSERT_TRUE(engine.set_batch_cap(16).is_ok());
    auto snap = engine.snapshot();
    ASSERT_TRUE(snap.is_ok()) << snap.status().message();
    EXPECT_EQ(snap->batch_cap, 16);
    EXPECT_EQ(snap->running, 5);  // engine 1 only
}

std::uint64_t wall_now_us() {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
}

void write_ack(const std::filesystem::path& path, BatchCapAckRecord record) {
    ASSERT_TRUE(write_file_atomic(path, encode_batch_cap_ack(record)).is_ok());
}

TEST(VllmEngineTest, AckEncodingIsThePluginsFortyBytes) {
    // The same bytes as python/tests/test_ack.py's test_format_round_trip_and_rejects.
    const std::string bytes = encode_batch_cap_ack({3, 0, 256, 1});
    ASSERT_EQ(bytes.size(), kBatchCapAckBytes);
    const std::string expected_hex =
        "50414c5341434b31"
        "0300000000000000"
        "0000000000000000"
        "0001000000000000"
        "0100000000000000";
    std::string hex;
    for (const char c : bytes) {
        constexpr std::string_view kDigits = "0123456789abcdef";
        const auto b = static_cast<unsigned char>(c);
        hex += kDigits[b >> 4U];
        hex += kDigits[b & 0xFU];
    }
    EXPECT_EQ(hex, expected_hex);
    auto back = decode_batch_cap_ack(bytes);
    ASSERT_TRUE(back.is_ok());
    EXPECT_EQ(back->applied, 3U);
    EXPECT_EQ(back->launch, 256U);
    EXPECT_EQ(back->time_unix_us, 1U);
    EXPECT_FALSE(decode_batch_cap_ack(bytes.substr(1)).is_ok());
    EXPECT_FALSE(decode_batch_cap_ack("PALSACK2" + bytes.substr(8)).is_ok());
    VllmEngineConfig c;
    c.batch_cap_path = "/run/pals/batch_cap.1";
    EXPECT_EQ(batch_cap_ack_path(c), "/run/pals/batch_cap.1.ack");
    c.batch_cap_ack_path = "/elsewhere";
    EXPECT_EQ(batch_cap_ack_path(c), "/elsewhere");
}

TEST(VllmEngineTest, AckIsMissingFreshThenStaleWhenNotRenewed) {
    TempDir dir;
    ManualClock clock(Seconds{10.0});
    VllmEngine engine(config_for(1, dir.path() / "cap"), clock);
    const auto ack_path = dir.path() / "cap.ack";
    EXPECT_EQ(engine.read_batch_cap_ack().state, BatchCapAck::State::kMissing);
    write_ack(ack_path, {32, 32, 64, wall_now_us()});
    BatchCapAck ack = engine.read_batch_cap_ack();
    EXPECT_EQ(ack.state, BatchCapAck::State::kFresh);
    EXPECT_EQ(ack.applied, 32);
    EXPECT_EQ(ack.requested, 32);
    EXPECT_EQ(ack.launch, 64);
    EXPECT_EQ(ack.source, ack_path.string());
    clock.advance(Seconds{4.0});
    EXPECT_EQ(engine.read_batch_cap_ack().state, BatchCapAck::State::kFresh);
    clock.advance(Seconds{2.0});  // 6 s without a new time stamp: the plugin stopped
    ack = engine.read_batch_cap_ack();
    EXPECT_EQ(ack.state, BatchCapAck::State::kStale);
    EXPECT_NEAR(ack.age_s, 6.0, 0.5);
    write_ack(ack_path, {32, 32, 64, wall_now_us() + 1});  // a heartbeat
    EXPECT_EQ(engine.read_batch_cap_ack().state, BatchCapAck::State::kFresh);
    ASSERT_TRUE(write_file_atomic(ack_path, "not an ack").is_ok());
    ack = engine.read_batch_cap_ack();
    EXPECT_EQ(ack.state, BatchCapAck::State::kMissing);
    EXPECT_NE(ack.source.find("expected 40 bytes"), std::string::npos) << ack.source;
}

TEST(VllmEngineTest, AnAckLeftByAGoneEngineIsStaleAtTheFirstRead) {
    TempDir dir;
    ManualClock clock;
    VllmEngine engine(config_for(1, dir.path() / "cap"), clock);
    write_ack(dir.path() / "cap.ack", {64, 0, 64, wall_now_us() - 3'600'000'000ULL});
    const BatchCapAck ack = engine.read_batch_cap_ack();
    EXPECT_EQ(ack.state, BatchCapAck::State::kStale);
    EXPECT_GT(ack.age_s, 3500.0);
    EXPECT_EQ(engine.engine_max_num_seqs(), 0);  // a stale launch value is not adopted
}

TEST(VllmEngineTest, TheEnginesSmallerLaunchValueBoundsTheBatchCap) {
    TempDir dir;
    ManualClock clock;
    VllmEngine engine(config_for(1, dir.path() / "cap"), clock);  // max_num_seqs 64
    EXPECT_EQ(engine.max_batch_cap(), 64);
    write_ack(dir.path() / "cap.ack", {32, 0, 32, wall_now_us()});
    (void)engine.read_batch_cap_ack();
    EXPECT_EQ(engine.engine_max_num_seqs(), 32);
    EXPECT_EQ(engine.max_batch_cap(), 32);
    EXPECT_EQ(engine.batch_cap(), 32);  // nothing published: the launch value
    ASSERT_TRUE(engine.set_batch_cap(50).is_ok());
    EXPECT_EQ(read_cap(dir.path() / "cap"), 32U);
    // A larger launch value than configured: the configured one still bounds PALS.
    write_ack(dir.path() / "cap.ack", {32, 32, 128, wall_now_us() + 1});
    (void)engine.read_batch_cap_ack();
    EXPECT_EQ(engine.engine_max_num_seqs(), 128);
    EXPECT_EQ(engine.max_batch_cap(), 64);
}

TEST(VllmEngineTest, SnapshotCarriesTheAckAndWhetherACapIsRequested) {
    FakeVllmServer server(golden("metrics_v0_11.txt"));
    TempDir dir;
    ManualClock clock;
    VllmEngine engine(config_for(server.port(), dir.path() / "cap"), clock);
    auto snap = engine.snapshot();
    ASSERT_TRUE(snap.is_ok()) << snap.status().message();
    EXPECT_FALSE(snap->batch_cap_requested);
    EXPECT_EQ(snap->batch_cap_ack.state, BatchCapAck::State::kMissing);
    EXPECT_EQ(check_batch_cap(*snap), BatchCapCheck::kUnchecked);
    ASSERT_TRUE(engine.set_batch_cap(16).is_ok());
    write_ack(dir.path() / "cap.ack", {16, 16, 64, wall_now_us()});
    snap = engine.snapshot();
    ASSERT_TRUE(snap.is_ok());
    EXPECT_TRUE(snap->batch_cap_requested);
    EXPECT_EQ(snap->batch_cap_ack.applied, 16);
    EXPECT_EQ(check_batch_cap(*snap), BatchCapCheck::kOk);
    write_ack(dir.path() / "cap.ack", {64, 16, 64, wall_now_us() + 1});  // read, not applied
    snap = engine.snapshot();
    ASSERT_TRUE(snap.is_ok());
    EXPECT_EQ(check_batch_cap(*snap), BatchCapCheck::kMismatch);
}

TEST(VllmEngineTest, TheStepTokenBudgetIsKnownFromItsAckAndPublishedBesideTheCap) {
    FakeVllmServer server(golden("metrics_v0_11.txt"));
    TempDir dir;
    ManualClock clock;
    const auto cap_path = dir.path() / "cap";
    const auto tokens_path = dir.path() / "cap.step_tokens";
    VllmEngineConfig config = config_for(server.port(), cap_path);
    EXPECT_EQ(step_tokens_path(config), tokens_path);
    VllmEngine engine(config, clock);
    // No launch value configured and no acknowledgement: no budget to set (an engine without
    // the plugin's step-token support).
    EXPECT_EQ(engine.max_step_tokens(), 0);
    const Status refused = engine.set_step_tokens(2048);
    EXPECT_FALSE(refused.is_ok());
    EXPECT_NE(refused.message().find("max_num_batched_tokens"), std::string::npos);
    EXPECT_FALSE(std::filesystem::exists(tokens_path));
    auto snap = engine.snapshot();
    ASSERT_TRUE(snap.is_ok()) << snap.status().message();
    EXPECT_EQ(snap->step_tokens, 0);
    EXPECT_EQ(snap->step_tokens_ack.state, BatchCapAck::State::kMissing);

    // The plugin acknowledges its launch value (8192, no budget requested yet).
    write_ack(dir.path() / "cap.step_tokens.ack", {8192, 0, 8192, wall_now_us()});
    snap = engine.snapshot();
    ASSERT_TRUE(snap.is_ok());
    EXPECT_EQ(engine.max_step_tokens(), 8192);
    EXPECT_EQ(snap->step_tokens, 8192);
    EXPECT_EQ(snap->step_tokens_ack.applied, 8192);
    ASSERT_TRUE(engine.set_step_tokens(2048).is_ok());
    EXPECT_EQ(read_cap(tokens_path), 2048U);
    EXPECT_FALSE(std::filesystem::exists(cap_path));  // the batch cap is not touched
    snap = engine.snapshot();
    ASSERT_TRUE(snap.is_ok());
    EXPECT_EQ(snap->step_tokens, 2048);
    ASSERT_TRUE(engine.set_step_tokens(100000).is_ok());
    EXPECT_EQ(read_cap(tokens_path), 8192U);  // clamped to the launch value
    ASSERT_TRUE(engine.set_step_tokens(0).is_ok());
    EXPECT_EQ(read_cap(tokens_path), 0U);  // the plugin's "none": the launch value
    // refresh_controls() gives the file a fresh mtime for the plugin's expiry.
    ASSERT_TRUE(engine.set_step_tokens(4096).is_ok());
    const auto old = std::filesystem::file_time_type::clock::now() - std::chrono::minutes(5);
    std::filesystem::last_write_time(tokens_path, old);
    ASSERT_TRUE(engine.refresh_controls().is_ok());
    EXPECT_GT(std::filesystem::last_write_time(tokens_path), old + std::chrono::minutes(4));
    EXPECT_EQ(read_cap(tokens_path), 4096U);

    // A configured launch value bounds the budget even below the acknowledged one.
    config.max_num_batched_tokens = 4096;
    VllmEngine configured(config, clock);
    EXPECT_EQ(configured.max_step_tokens(), 4096);
    config.step_tokens_path = dir.path() / "elsewhere";
    EXPECT_EQ(step_tokens_path(config), dir.path() / "elsewhere");
}

}  // namespace
}  // namespace pals::engine::vllm
