// Hostile clients of the daemon API (loopback only; every loop and wait is bounded): chunked
// bodies without a token or over the limit, slow headers, numbers out of range, token checks.
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "pals/api/http_server.hpp"
#include "pals/common/http_guard.hpp"
#include "unit/api/raw_http.hpp"

namespace pals::api {
namespace {

using namespace std::chrono_literals;
using pals::testing::chunk;
using pals::testing::RawConnection;
using pals::testing::SlowClients;
using pals::testing::status_of;

class HttpHardeningTest : public ::testing::Test {
protected:
    void start(std::size_t threads = 32, std::chrono::milliseconds header_timeout = 5000ms) {
        m_store.publish(std::make_shared<StateSnapshot>());
        ServerOptions options;
        options.token = "secret-token";
        options.threads = threads;
        options.header_timeout = header_timeout;
        m_server = std::make_unique<HttpServer>(m_store, options);
        ASSERT_TRUE(m_server->start().is_ok());
    }
    StateStore m_store;
    std::unique_ptr<HttpServer> m_server;
};

constexpr const char* kChunkedPut =
    "PUT /v1/budget HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n";

TEST_F(HttpHardeningTest, ChunkedBodyWithoutTokenIs401BeforeTheBodyEnds) {
    start();
    RawConnection c(m_server->port());
    ASSERT_GE(c.fd(), 0);
    // The body never ends: the server must answer from the headers alone.
    ASSERT_TRUE(c.send(std::string(kChunkedPut) + "\r\n" + chunk(std::string(4096, 'a'))));
    const std::string response = c.read_response(3000ms);
    EXPECT_EQ(status_of(response), 401) << response;
    EXPECT_TRUE(c.closed_within(3000ms));
    EXPECT_FALSE(m_store.take_budget().has_value());
}

TEST_F(HttpHardeningTest, WrongTokenIs401BeforeTheBodyEnds) {
    start();
    RawConnection c(m_server->port());
    ASSERT_GE(c.fd(), 0);
    ASSERT_TRUE(c.send(std::string(kChunkedPut) + "Authorization: Bearer secret-tokem\r\n\r\n" +
                       chunk(std::string(4096, 'a'))));
    EXPECT_EQ(status_of(c.read_response(3000ms)), 401);
}

TEST_F(HttpHardeningTest, ChunkedBodyOverTheLimitIs413) {
    start();
    RawConnection c(m_server->port());
    ASSERT_GE(c.fd(), 0);
    ASSERT_TRUE(c.send(std::string(kChunkedPut) + "Authorization: Bearer secret-token\r\n\r\n"));
    // 64 KiB is the limit; send up to 1 MiB (or until the server hangs up), never the end.
    const std::string piece = chunk(std::string(16 * 1024, '['));
    for (int i = 0; i < 64 && c.send(piece); ++i) {
    }
    const std::string response = c.read_response(3000ms);
    EXPECT_EQ(status_of(response), 413) << response;
    EXPECT_NE(response.find("payload_too_large"), std::string::npos);
    EXPECT_FALSE(m_store.take_budget().has_value());
}

TEST_F(HttpHardeningTest, ContentLengthOverTheLimitIs413WithoutReadingIt) {
    start();
    RawConnection c(m_server->port());
    ASSERT_GE(c.fd(), 0);
    ASSERT_TRUE(
        c.send("PUT /v1/budget HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer secret-token\r\n"
               "Content-Length: 10000000000\r\n\r\n{"));
    EXPECT_EQ(status_of(c.read_response(3000ms)), 413);
}

TEST_F(HttpHardeningTest, DeeplyNestedBodyIs400) {
    start();
    httplib::Client client("127.0.0.1", m_server->port());
    client.set_read_timeout(5);
    const std::string deep(60 * 1024, '[');
    auto res = client.Put("/v1/budget", {{"Authorization", "Bearer secret-token"}}, deep,
                          "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 400);
    EXPECT_NE(res->body.find("nested deeper"), std::string::npos) << res->body;
}

TEST_F(HttpHardeningTest, NumberOutOfRangeIs400NamingTheField) {
    start();
    httplib::Client client("127.0.0.1", m_server->port());
    client.set_read_timeout(5);
    const httplib::Headers auth = {{"Authorization", "Bearer secret-token"}};
    auto watts = client.Put("/v1/budget", auth, R"({"watts": 1e400})", "application/json");
    ASSERT_TRUE(watts);
    EXPECT_EQ(watts->status, 400);
    EXPECT_NE(watts->body.find("\\\"watts\\\""), std::string::npos) << watts->body;
    auto steps =
        client.Put("/v1/budget", auth, R"({"steps": [[0, 100], [1e999, 5]]})", "application/json");
    ASSERT_TRUE(steps);
    EXPECT_EQ(steps->status, 400);
    EXPECT_NE(steps->body.find("\\\"steps\\\""), std::string::npos) << steps->body;
    EXPECT_FALSE(m_store.take_budget().has_value());
}

TEST(BudgetRequestRangeTest, NumbersOutOfRangeAreErrorsNamingTheField) {
    auto r = parse_budget_request(R"({"watts": 1e400})");
    ASSERT_FALSE(r.is_ok());
    EXPECT_NE(r.status().message().find("\"watts\""), std::string::npos) << r.status().message();
    auto neg = parse_budget_request(R"({"watts": -1e400})");
    EXPECT_FALSE(neg.is_ok());
    // The fuzzer's input (../shared/repro/fuzz_budget_uncaught_out_of_range.json): threw before.
    EXPECT_FALSE(parse_budget_request("1e332e").is_ok());
    EXPECT_FALSE(parse_budget_request("1e332").is_ok());
}

TEST_F(HttpHardeningTest, SlowHeadersDoNotStarveHealthz) {
    // Fewer workers than slow clients: only a whole-request header deadline frees them.
    start(/*threads=*/4, /*header_timeout=*/600ms);
    // 16 connections trickling a header byte each every 100 ms while /healthz is asked.
    SlowClients slow(m_server->port(), 16, "GET /healthz HTTP/1.1\r\nHost: x\r\n");
    ASSERT_TRUE(slow.all_sent());
    const auto t0 = std::chrono::steady_clock::now();
    httplib::Client client("127.0.0.1", m_server->port());
    client.set_connection_timeout(1);
    client.set_read_timeout(8);
    auto health = client.Get("/healthz");
    const double waited_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    slow.stop();
    ASSERT_TRUE(health);
    EXPECT_EQ(health->status, 200);
    // 16 slow clients over 4 workers, each cut off after 0.6 s: about 2.4 s; forever without.
    EXPECT_LT(waited_s, 6.0);
    EXPECT_TRUE(slow.all_closed_within(2000ms));
}

TEST_F(HttpHardeningTest, OversizedHeadersCloseTheConnection) {
    start();
    RawConnection c(m_server->port());
    ASSERT_GE(c.fd(), 0);
    ASSERT_TRUE(c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n"));
    // 100 header lines of 1 KiB: over the 64 KiB budget of a request's headers.
    const std::string line = "X-Junk: " + std::string(1000, 'j') + "\r\n";
    for (int i = 0; i < 100 && c.send(line); ++i) {
    }
    EXPECT_TRUE(c.closed_within(3000ms));
}

TEST(ConstantTimeEqualTest, ComparesWholeSecrets) {
    using pals::http::constant_time_equal;
    EXPECT_TRUE(constant_time_equal("secret-token", "secret-token"));
    EXPECT_FALSE(constant_time_equal("secret-tokem", "secret-token"));
    EXPECT_FALSE(constant_time_equal("Secret-token", "secret-token"));
    EXPECT_FALSE(constant_time_equal("secret", "secret-token"));  // prefix
    EXPECT_FALSE(constant_time_equal("secret-token-and-more", "secret-token"));
    EXPECT_FALSE(constant_time_equal("secret-tokensecret-token", "secret-token"));  // cycled
    EXPECT_FALSE(constant_time_equal("", "secret-token"));
    EXPECT_FALSE(constant_time_equal("x", ""));
    EXPECT_TRUE(constant_time_equal("", ""));
}

}  // namespace
}  // namespace pals::api
