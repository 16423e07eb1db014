// sim-serve against hostile or long-lived use (loopback only; every loop and wait is bounded):
// chunked bodies over the limit, slow headers, hostile JSON, and memory that stays flat however
// many requests are served.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "pals/serve/sim_server.hpp"
#include "pals/sim/simulator.hpp"
#include "serve_test_helpers.hpp"
#include "unit/api/raw_http.hpp"

namespace pals::serve {
namespace {

using namespace std::chrono_literals;
using pals::testing::chunk;
using pals::testing::RawConnection;
using pals::testing::SlowClients;
using pals::testing::status_of;

class SimServerHardeningTest : public ::testing::Test {
protected:
    void TearDown() override {
        if (m_server) {
            m_server->stop();
        }
    }

    void start(const std::function<void(SimServerOptions&)>& tweak = {}) {
        SimServerOptions o;
        o.time_scale = 50.0;
        o.tick_period = 500us;
        o.default_max_tokens = 1;
        o.max_connections = 64;
        o.max_body_bytes = 64 * 1024;
        if (tweak) {
            tweak(o);
        }
        auto server = SimServer::create(testing::llama_node(), o);
        ASSERT_TRUE(server.is_ok()) << server.status().message();
        m_server = std::move(server).value();
        ASSERT_TRUE(m_server->start().is_ok());
    }

    [[nodiscard]] httplib::Client client() const {
        httplib::Client c("127.0.0.1", m_server->port());
        c.set_connection_timeout(2);
        c.set_read_timeout(10);
        return c;
    }

    std::unique_ptr<SimServer> m_server;
};

TEST_F(SimServerHardeningTest, ChunkedBodyOverTheLimitIsRefusedWhileItStreams) {
    start();
    RawConnection c(m_server->port());
    ASSERT_GE(c.fd(), 0);
    ASSERT_TRUE(
        c.send("POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"));
    // 64 KiB is the limit; up to 1 MiB is sent (or until the server hangs up), never the end.
    const std::string piece = chunk(std::string(16 * 1024, 'a'));
    for (int i = 0; i < 64 && c.send(piece); ++i) {
    }
    const std::string response = c.read_response(3000ms);
    EXPECT_EQ(status_of(response), 400) << response;
    EXPECT_NE(response.find("larger than 65536 bytes"), std::string::npos) << response;
    EXPECT_TRUE(c.closed_within(3000ms));
    EXPECT_EQ(m_server->stats().requests_submitted, 0U);
}

TEST_F(SimServerHardeningTest, HostileJsonIs400) {
    start([](SimServerOptions& o) { o.max_body_bytes = 1024 * 1024; });
    auto c = client();
    const std::string deep =
        R"({"prompt": )" + std::string(100000, '[') + std::string(100000, ']') + "}";
    auto res = c.Post("/v1/completions", deep, "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 400);
    EXPECT_NE(res->body.find("nested deeper"), std::string::npos) << res->body;
    auto big =
        c.Post("/v1/completions", R"({"prompt": "hi", "max_tokens": 1e400})", "application/json");
    ASSERT_TRUE(big);
    EXPECT_EQ(big->status, 400);
    EXPECT_NE(big->body.find("out_of_range"), std::string::npos) << big->body;
}

TEST_F(SimServerHardeningTest, SlowHeadersDoNotStarveHealth) {
    // Fewer workers than slow clients: only a whole-request header deadline frees them.
    start([](SimServerOptions& o) {
        o.max_connections = 4;
        o.header_timeout = 600ms;
    });
    SlowClients slow(m_server->port(), 16, "GET /health HTTP/1.1\r\nHost: x\r\n");
    ASSERT_TRUE(slow.all_sent());
    const auto t0 = std::chrono::steady_clock::now();
    auto c = client();
    auto health = c.Get("/health");
    const double waited_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    slow.stop();
    ASSERT_TRUE(health);
    EXPECT_EQ(health->status, 200);
    EXPECT_LT(waited_s, 6.0);  // 16 slow clients / 4 workers * 0.6 s; forever without a deadline
    EXPECT_TRUE(slow.all_closed_within(2000ms));
}

TEST_F(SimServerHardeningTest, HeldRequestsStayBoundedAfterManyRequests) {
    start([](SimServerOptions& o) { o.max_finished_requests = 10; });
    constexpr int kThreads = 16;
    constexpr int kPerThread = 160;  // 2560 requests: more than two drop batches of 1024
    std::atomic<int> ok{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&] {
            auto c = client();
            for (int i = 0; i < kPerThread; ++i) {
                auto res = c.Post("/v1/completions", R"({"prompt": "hi", "max_tokens": 1})",
                                  "application/json");
                if (res && res->status == 200) {
                    ++ok;
                }
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    EXPECT_EQ(ok.load(), kThreads * kPerThread);
    std::this_thread::sleep_for(20ms);  // a tick after the last one
    const SimServerStats stats = m_server->stats();
    EXPECT_EQ(stats.requests_submitted, static_cast<std::uint64_t>(kThreads * kPerThread));
    // Without limit_history() every request stays held (2560) with its timings.
    EXPECT_LT(stats.requests_held, 1024U + kThreads);
    EXPECT_LE(stats.requests_finished_held, 20U);
}

TEST(SimulatorHistoryTest, LimitHistoryDropsEndedRequestsAndKeepsTheTotals) {
    auto sim = sim::Simulator::create(testing::llama_node(), {});
    ASSERT_TRUE(sim.is_ok()) << sim.status().message();
    sim->limit_history(50);
    std::size_t last = 0;
    constexpr int kRequests = 5000;
    for (int i = 0; i < kRequests; ++i) {
        auto h = sim->submit({static_cast<std::uint64_t>(i), 0.01 * i, 16, 2});
        ASSERT_TRUE(h.is_ok());
        EXPECT_TRUE(i == 0 || h.value() == last + 1);  // handles keep counting
        last = h.value();
        sim->run_until(0.01 * i);
    }
    sim->run_to_completion();
    sim->run_until(sim->now() + 1.0);
    EXPECT_LT(sim->requests_held(), 1100U);
    EXPECT_LE(sim->finished_requests().size(), 100U);
    EXPECT_GE(sim->finished_requests().size(), 50U);
    sim->abort(0);  // dropped long ago: ignored
    const sim::SimulationReport report = sim->report();
    EXPECT_EQ(report.requests_total, static_cast<std::uint64_t>(kRequests));
    EXPECT_EQ(report.requests_completed, static_cast<std::uint64_t>(kRequests));
}

TEST(SimulatorHistoryTest, WithoutALimitEverythingIsKept) {
    auto sim = sim::Simulator::create(testing::llama_node(), {});
    ASSERT_TRUE(sim.is_ok());
    for (int i = 0; i < 2000; ++i) {
        ASSERT_TRUE(sim->submit({static_cast<std::uint64_t>(i), 0.01 * i, 16, 2}).is_ok());
    }
    sim->run_to_completion();
    EXPECT_EQ(sim->requests_held(), 2000U);
    EXPECT_EQ(sim->finished_requests().size(), 2000U);
}

}  // namespace
}  // namespace pals::serve
