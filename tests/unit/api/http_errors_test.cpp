// Errors that say what failed: a listen that cannot bind names the system's reason, a request
// to nobody says the connection was refused.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pals/common/clock.hpp"
#include "pals/common/http_guard.hpp"
#include "pals/engine/vllm/vllm_engine.hpp"

namespace pals {
namespace {

/// A loopback TCP socket bound to a free port (listening when `listen_too`); the port, and
/// the socket in `fd` (the caller closes it).
int bound_port(int& fd, bool listen_too) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        (listen_too && ::listen(fd, 1) != 0)) {
        return 0;
    }
    socklen_t len = sizeof(addr);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    return ntohs(addr.sin_port);
}

TEST(HttpErrorsTest, AListenerOnATakenPortNamesTheReason) {
    int fd = -1;
    const int port = bound_port(fd, true);  // another program listens there
    ASSERT_GT(port, 0);
    http::GuardedServer second;
    auto taken = second.bind_listener("127.0.0.1", port);
    ::close(fd);
    ASSERT_FALSE(taken.is_ok());
    EXPECT_EQ(taken.status().code(), StatusCode::kUnavailable);
    EXPECT_EQ(taken.status().message(),
              "cannot listen on 127.0.0.1:" + std::to_string(port) + ": Address already in use");
    auto bad_host = second.bind_listener("203.0.113.7", 0);  // not an address of this machine
    ASSERT_FALSE(bad_host.is_ok());
    EXPECT_NE(bad_host.status().message().find("cannot listen on 203.0.113.7:0: "),
              std::string::npos)
        << bad_host.status().message();
}

TEST(HttpErrorsTest, TwoServersCannotShareAPort) {
    // cpp-httplib's default SO_REUSEPORT would let the second bind and take half the requests.
    http::GuardedServer first;
    auto port = first.bind_listener("127.0.0.1", 0);
    ASSERT_TRUE(port.is_ok()) << port.status().message();
    http::GuardedServer second;
    auto again = second.bind_listener("127.0.0.1", port.value());
    ASSERT_FALSE(again.is_ok());
    EXPECT_NE(again.status().message().find("Address already in use"), std::string::npos)
        << again.status().message();
}

TEST(HttpErrorsTest, AScrapeOfNobodySaysTheConnectionWasRefused) {
    int fd = -1;
    const int free_port = bound_port(fd, false);
    ::close(fd);  // nobody listens there now
    ManualClock clock;
    engine::vllm::VllmEngineConfig config;
    config.host = "127.0.0.1";
    config.port = free_port;
    engine::vllm::VllmEngine engine(config, clock);
    auto snap = engine.snapshot();
    ASSERT_FALSE(snap.is_ok());
    EXPECT_NE(snap.status().message().find("failed: connection refused or host unreachable"),
              std::string::npos)
        << snap.status().message();
    EXPECT_EQ(http::describe_client_error(httplib::Error::ConnectionTimeout, 2.0),
              "no connection within 2 s");
}

}  // namespace
}  // namespace pals
