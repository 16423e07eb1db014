// GuardedServer: cpp-httplib's per-connection loop with whole-request deadlines and byte budgets
// (see include/pals/common/http_guard.hpp for why).
#include "pals/common/http_guard.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

namespace pals::http {

namespace {

using SteadyClock = std::chrono::steady_clock;

/// The connection served by this handler thread: set while a GuardedServer runs a request.
thread_local bool* t_close_after_response = nullptr;

/// Lingering close: after an early response, read and drop at most this much of what the
/// client still sends, for at most kLingerTime, so it reads the response rather than a reset.
constexpr std::size_t kLingerBytes = std::size_t{1} << 20;
constexpr std::chrono::milliseconds kLingerTime{500};

/// Polls `fd` for `events` for at most `timeout`; > 0 when ready.
int poll_fd(int fd, short events, std::chrono::milliseconds timeout) {
    pollfd p{fd, events, 0};
    const int ms = static_cast<int>(std::clamp<std::int64_t>(timeout.count(), 0, 1 << 30));
    int r = 0;
    do {
        r = ::poll(&p, 1, ms);
    } while (r < 0 && errno == EINTR);
    return r;
}

void address_of(const sockaddr_storage& addr, std::string& ip, int& port) {
    std::array<char, INET6_ADDRSTRLEN> buf{};
    if (addr.ss_family == AF_INET) {
        const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
        ::inet_ntop(AF_INET, &a->sin_addr, buf.data(), buf.size());
        port = ntohs(a->sin_port);
    } else if (addr.ss_family == AF_INET6) {
        const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
        ::inet_ntop(AF_INET6, &a->sin6_addr, buf.data(), buf.size());
        port = ntohs(a->sin6_port);
    }
    ip = buf.data();
}

/// A socket stream that delivers at most `budget` bytes before `deadline` per phase of a
/// request (request line + headers, then the body), each read waiting at most read_timeout.
class GuardedStream final : public httplib::Stream {
public:
    GuardedStream(socket_t sock, const GuardOptions& options) : m_sock(sock), m_options(options) {}

    void begin_request() {
        m_deadline = SteadyClock::now() + m_options.header_timeout;
        m_budget = m_options.max_header_bytes;
    }

    void begin_body() {
        m_deadline = SteadyClock::now() + m_options.body_timeout;
        // Chunk framing ("<hex>\r\n...\r\n") on top of the payload, even for small chunks.
        m_budget = m_options.max_body_bytes * 8 + 64 * 1024;
    }

    [[nodiscard]] bool has_buffered() const { return m_off < m_len; }
    /// A read was refused (deadline or byte budget): the connection must close.
    [[nodiscard]] bool cut_off() const { return m_cut_off; }

    bool is_readable() const override {
        return has_buffered() || poll_fd(m_sock, POLLIN, wait_time()) > 0;
    }

    bool is_writable() const override {
        if (poll_fd(m_sock, POLLOUT, m_options.write_timeout) <= 0) {
            return false;
        }
        // The peer closed: a streaming response must stop (as httplib's is_socket_alive()).
        if (poll_fd(m_sock, POLLIN, std::chrono::milliseconds{0}) > 0) {
            char c = 0;
            ssize_t n = 0;
            do {
                n = ::recv(m_sock, &c, 1, MSG_PEEK);
            } while (n < 0 && errno == EINTR);
            return n > 0;
        }
        return true;
    }

    ssize_t read(char* ptr, size_t size) override {
        if (m_budget == 0 || SteadyClock::now() >= m_deadline) {
            m_cut_off = true;
            return -1;
        }
        size = std::min(size, m_budget);
        if (!has_buffered()) {
            if (poll_fd(m_sock, POLLIN, wait_time()) <= 0) {
                m_cut_off = true;
                return -1;
            }
            ssize_t n = 0;
            do {
                n = ::recv(m_sock, m_buf.data(), m_buf.size(), 0);
            } while (n < 0 && errno == EINTR);
            if (n <= 0) {
                return n;
            }
            m_off = 0;
            m_len = static_cast<std::size_t>(n);
        }
        const std::size_t n = std::min(size, m_len - m_off);
        std::memcpy(ptr, m_buf.data() + m_off, n);
        m_off += n;
        m_budget -= n;
        return static_cast<ssize_t>(n);
    }

    ssize_t write(const char* ptr, size_t size) override {
        if (poll_fd(m_sock, POLLOUT, m_options.write_timeout) <= 0) {
            return -1;
        }
        ssize_t n = 0;
        do {
            n = ::send(m_sock, ptr, size, MSG_NOSIGNAL);
        } while (n < 0 && errno == EINTR);
        return n;
    }

    void get_remote_ip_and_port(std::string& ip, int& port) const override {
        sockaddr_storage addr{};
        socklen_t len = sizeof(addr);
        if (::getpeername(m_sock, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
            address_of(addr, ip, port);
        }
    }

    void get_local_ip_and_port(std::string& ip, int& port) const override {
        sockaddr_storage addr{};
        socklen_t len = sizeof(addr);
        if (::getsockname(m_sock, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
            address_of(addr, ip, port);
        }
    }

    socket_t socket() const override { return m_sock; }

private:
    /// The per-read timeout, cut to what is left of the phase's deadline.
    [[nodiscard]] std::chrono::milliseconds wait_time() const {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(m_deadline - SteadyClock::now());
        return std::max(std::chrono::milliseconds{0}, std::min(left, m_options.read_timeout));
    }

    socket_t m_sock;
    const GuardOptions& m_options;
    SteadyClock::time_point m_deadline{};
    std::size_t m_budget = 0;
    std::array<char, 4096> m_buf{};
    std::size_t m_off = 0;
    std::size_t m_len = 0;
    bool m_cut_off = false;
};

}  // namespace

GuardedServer::GuardedServer(GuardOptions options) : m_guard(options) {
    set_payload_max_length(m_guard.max_body_bytes);
    // SO_REUSEADDR only: cpp-httplib's default SO_REUSEPORT lets a second server bind a port
    // in use and share its connections (two daemons on one API port, silently).
    set_socket_options([](socket_t sock) {
        int yes = 1;
        ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    });
    // What httplib itself uses of these: the Keep-Alive response header.
    set_keep_alive_max_count(std::max<std::size_t>(1, m_guard.keep_alive_max_count));
    set_keep_alive_timeout(std::max<time_t>(
        1, std::chrono::duration_cast<std::chrono::seconds>(m_guard.keep_alive_timeout).count()));
    const auto threads = std::max<std::size_t>(1, m_guard.threads);
    new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
}

Result<int> GuardedServer::bind_listener(const std::string& host, int port) {
    errno = 0;
    const int bound = port == 0 ? bind_to_any_port(host) : (bind_to_port(host, port) ? port : -1);
    if (bound <= 0) {
        const int err = errno;
        return Status::unavailable(
            fmt::format("cannot listen on {}:{}: {}", host, port,
                        err != 0 ? std::strerror(err) : "the address is not available"));
    }
    raise_listen_backlog();
    return bound;
}

std::string describe_client_error(httplib::Error error, double connect_timeout_s) {
    switch (error) {
        case httplib::Error::Connection:
            return "connection refused or host unreachable (is the server up?)";
        case httplib::Error::ConnectionTimeout:
            return fmt::format("no connection within {:g} s", connect_timeout_s);
        case httplib::Error::Read:
            return "the connection was closed or reset while reading the answer (or it timed out)";
        case httplib::Error::Write:
            return "the connection was closed or reset while sending the request";
        default:
            return httplib::to_string(error);
    }
}

void GuardedServer::raise_listen_backlog() {
    if (const socket_t fd = svr_sock_; fd != INVALID_SOCKET) {
        ::listen(fd, SOMAXCONN);
    }
}

bool GuardedServer::process_and_close_socket(socket_t sock) {
    GuardedStream stream(sock, m_guard);
    bool ret = false;
    bool close_after_response = false;
    for (std::size_t count = std::max<std::size_t>(1, m_guard.keep_alive_max_count); count > 0;
         --count) {
        // Wait for the next request (keep-alive), watching for the server stopping.
        const auto idle_deadline = SteadyClock::now() + m_guard.keep_alive_timeout;
        bool ready = stream.has_buffered();
        while (!ready && svr_sock_ != INVALID_SOCKET && SteadyClock::now() < idle_deadline) {
            const int r = poll_fd(sock, POLLIN, std::chrono::milliseconds{50});
            if (r < 0) {
                break;
            }
            ready = r > 0;
        }
        if (!ready || svr_sock_ == INVALID_SOCKET) {
            break;
        }
        stream.begin_request();
        bool connection_closed = false;
        t_close_after_response = &close_after_response;
        ret = process_request(stream, count == 1, connection_closed,
                              [&stream](httplib::Request&) { stream.begin_body(); });
        t_close_after_response = nullptr;
        if (!ret || connection_closed || close_after_response || stream.cut_off()) {
            close_after_response = close_after_response || stream.cut_off();
            break;
        }
    }
    if (close_after_response || !ret) {
        // Lingering close: FIN after the response, then drop a bounded amount of input.
        ::shutdown(sock, SHUT_WR);
        const auto deadline = SteadyClock::now() + kLingerTime;
        std::array<char, 16384> sink{};
        std::size_t dropped = 0;
        while (dropped < kLingerBytes && SteadyClock::now() < deadline &&
               poll_fd(sock, POLLIN, std::chrono::milliseconds{50}) > 0) {
            const ssize_t n = ::recv(sock, sink.data(), sink.size(), 0);
            if (n <= 0) {
                break;
            }
            dropped += static_cast<std::size_t>(n);
        }
    }
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
    return ret;
}

void close_connection_after_response(httplib::Response& res) {
    res.set_header("Connection", "close");
    if (t_close_after_response != nullptr) {
        *t_close_after_response = true;
    }
}

BodyRead read_body(const httplib::Request& req, httplib::Response& res,
                   const httplib::ContentReader& reader, std::size_t max_bytes, std::string& out) {
    out.clear();
    if (req.has_header("Content-Length")) {
        const std::string value = req.get_header_value("Content-Length");
        char* end = nullptr;
        errno = 0;
        const unsigned long long len = std::strtoull(value.c_str(), &end, 10);
        if (errno == ERANGE || len > max_bytes) {
            close_connection_after_response(res);
            return BodyRead::kTooLarge;
        }
    }
    bool too_large = false;
    const bool ok = reader([&](const char* data, std::size_t n) {
        if (n > max_bytes - out.size()) {
            too_large = true;
            return false;
        }
        out.append(data, n);
        return true;
    });
    if (too_large) {
        close_connection_after_response(res);
        return BodyRead::kTooLarge;
    }
    if (!ok) {
        close_connection_after_response(res);
        return BodyRead::kFailed;
    }
    return BodyRead::kOk;
}

bool constant_time_equal(std::string_view given, std::string_view expected) {
    // Every byte of `given` is compared (against `expected` cycled, or itself when `expected`
    // is empty) and the length difference folded in: no branch depends on the content.
    unsigned diff = given.size() == expected.size() ? 0U : 1U;
    for (std::size_t i = 0; i < given.size(); ++i) {
        const auto g = static_cast<unsigned char>(given[i]);
        const auto e =
            expected.empty() ? g : static_cast<unsigned char>(expected[i % expected.size()]);
        diff |= static_cast<unsigned>(g ^ e);
    }
    if (given.empty() && !expected.empty()) {
        diff = 1U;
    }
    // Keep the compiler from turning the loop into an early exit.
    volatile unsigned result = diff;
    return result == 0U;
}

}  // namespace pals::http
