#pragma once
// Raw loopback HTTP for the hardening tests of both servers: requests httplib's client cannot
// send (chunked bodies that never end, headers trickled a byte at a time). 127.0.0.1 only; every
// wait is bounded.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace pals::testing {

/// A connected loopback socket (closed by the destructor); fd() < 0 if connect failed.
class RawConnection {
public:
    explicit RawConnection(int port) {
        m_fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(static_cast<std::uint16_t>(port));
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (m_fd >= 0 && ::connect(m_fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
            ::close(m_fd);
            m_fd = -1;
        }
    }
    ~RawConnection() {
        if (m_fd >= 0) {
            ::close(m_fd);
        }
    }
    RawConnection(const RawConnection&) = delete;
    RawConnection& operator=(const RawConnection&) = delete;
    RawConnection(RawConnection&& other) noexcept : m_fd(other.m_fd) { other.m_fd = -1; }

    [[nodiscard]] int fd() const { return m_fd; }

    /// Sends all of `data`; false once the server closed or reset the connection.
    bool send(std::string_view data) {
        while (!data.empty()) {
            pollfd p{m_fd, POLLOUT, 0};
            if (::poll(&p, 1, 2000) <= 0) {
                return false;
            }
            const ssize_t n = ::send(m_fd, data.data(), data.size(), MSG_NOSIGNAL);
            if (n <= 0) {
                return false;
            }
            data.remove_prefix(static_cast<std::size_t>(n));
        }
        return true;
    }

    /// Reads until the peer closes, a whole response (headers + Content-Length body) is in, or
    /// `timeout` passes. Returns what arrived.
    std::string read_response(std::chrono::milliseconds timeout) {
        std::string out;
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        char buf[4096];
        while (std::chrono::steady_clock::now() < deadline) {
            if (complete(out)) {
                break;
            }
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            pollfd p{m_fd, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(std::max<long>(1, left.count()))) <= 0) {
                break;
            }
            const ssize_t n = ::recv(m_fd, buf, sizeof(buf), 0);
            if (n <= 0) {
                break;
            }
            out.append(buf, static_cast<std::size_t>(n));
        }
        return out;
    }

    /// True when the server closed the connection within `timeout` (EOF or reset).
    bool closed_within(std::chrono::milliseconds timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        char buf[4096];
        while (std::chrono::steady_clock::now() < deadline) {
            pollfd p{m_fd, POLLIN, 0};
            if (::poll(&p, 1, 50) > 0 && ::recv(m_fd, buf, sizeof(buf), 0) <= 0) {
                return true;
            }
        }
        return false;
    }

private:
    static bool complete(const std::string& r) {
        const std::size_t end = r.find("\r\n\r\n");
        if (end == std::string::npos) {
            return false;
        }
        const std::size_t cl = r.find("Content-Length: ");
        if (cl == std::string::npos || cl > end) {
            return true;
        }
        const std::size_t len = std::stoul(r.substr(cl + 16));
        return r.size() >= end + 4 + len;
    }

    int m_fd = -1;
};

/// The status code of a raw response, 0 if there is none.
inline int status_of(const std::string& response) {
    if (response.rfind("HTTP/1.1 ", 0) != 0 || response.size() < 12) {
        return 0;
    }
    return std::stoi(response.substr(9, 3));
}

/// One chunk of a chunked body.
inline std::string chunk(const std::string& payload) {
    char size[32];
    std::snprintf(size, sizeof(size), "%zx\r\n", payload.size());
    return size + payload + "\r\n";
}

/// A slowloris: `count` connections that each send `request_head` (a request line and some
/// headers, never the blank line) and then one more header byte every 100 ms, from a thread,
/// for at most 10 s or until the object is destroyed.
class SlowClients {
public:
    SlowClients(int port, int count, const std::string& request_head) {
        for (int i = 0; i < count; ++i) {
            m_connections.emplace_back(port);
            m_all_sent = m_all_sent && m_connections.back().fd() >= 0 &&
                         m_connections.back().send(request_head);
        }
        m_trickle = std::thread([this] {
            for (int round = 0; round < 100 && !m_stop; ++round) {
                for (auto& c : m_connections) {
                    c.send("X");
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(100));
            }
        });
    }
    SlowClients(const SlowClients&) = delete;
    SlowClients& operator=(const SlowClients&) = delete;
    ~SlowClients() { stop(); }

    /// True when every connection was made and sent its request head.
    [[nodiscard]] bool all_sent() const { return m_all_sent; }
    /// Stops trickling (idempotent).
    void stop() {
        m_stop = true;
        if (m_trickle.joinable()) {
            m_trickle.join();
        }
    }
    /// True when the server closed every connection within `timeout` (each).
    [[nodiscard]] bool all_closed_within(std::chrono::milliseconds timeout) {
        bool closed = true;
        for (auto& c : m_connections) {
            closed = c.closed_within(timeout) && closed;
        }
        return closed;
    }

private:
    std::vector<RawConnection> m_connections;
    bool m_all_sent = true;
    std::atomic<bool> m_stop{false};
    std::thread m_trickle;
};

}  // namespace pals::testing
