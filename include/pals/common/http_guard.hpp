#pragma once
/// @file http_guard.hpp
/// @brief The one hardening of PALS's cpp-httplib servers (the daemon API and `pals sim-serve`)
/// against slow or oversized clients.
///
/// Why: Debian bookworm's cpp-httplib 0.11.4 reads the request line and headers one byte at a
/// time with only a per-read timeout (a client trickling a byte every few seconds holds a worker
/// thread forever: slowloris), does not bound the length of a line or the number of header lines,
/// and applies set_payload_max_length() only to bodies with a Content-Length: a chunked body is
/// buffered whole, before any handler (the token check included) runs.
///
/// GuardedServer replaces httplib's per-connection loop (Server::process_and_close_socket, a
/// virtual) with one whose socket stream enforces, per request:
///  - a whole-request deadline for the request line and headers (header_timeout) and a byte
///    budget for them (max_header_bytes);
///  - a byte budget for the body (max_body_bytes + chunk framing) and a deadline for it
///    (body_timeout), on top of the per-read timeout;
///  - closing the connection after a response whose request body was not read to the end
///    (close_connection_after_response(): after an early 401 or 413), with a short bounded
///    "lingering close" so the client still reads the response instead of a reset.
/// Handlers read bodies with read_body() (a ContentReader route), which stops at the limit.
///
/// Thread-safety: a GuardedServer is used as an httplib::Server; close_connection_after_response()
/// acts on the connection served by the calling handler thread.

#include <httplib.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include "pals/common/status.hpp"

namespace pals::http {

/// Limits of a GuardedServer. Durations are wall time.
struct GuardOptions {
    /// Request line and headers must arrive within this (whole request, not per read).
    std::chrono::milliseconds header_timeout{5000};
    /// Most bytes of the request line and headers.
    std::size_t max_header_bytes = 64 * 1024;
    /// Largest body a handler accepts (read_body()); the stream refuses to deliver more than
    /// this plus chunk framing to anyone.
    std::size_t max_body_bytes = 64 * 1024;
    /// The whole body must arrive within this.
    std::chrono::milliseconds body_timeout{30000};
    /// Each read (and write) waits at most this.
    std::chrono::milliseconds read_timeout{5000};
    std::chrono::milliseconds write_timeout{5000};
    /// Idle keep-alive connections are closed after this; a connection serves at most
    /// keep_alive_max_count requests.
    std::chrono::milliseconds keep_alive_timeout{2000};
    std::size_t keep_alive_max_count = 100;
    /// Worker threads (one per connection being served); more connections wait in the queue.
    std::size_t threads = 64;
};

/// An httplib::Server with the limits of GuardOptions (see the file comment). Set the options
/// before listening; set_payload_max_length, the timeouts, the keep-alive settings and the
/// thread pool are configured from them by the constructor.
class GuardedServer : public httplib::Server {
public:
    explicit GuardedServer(GuardOptions options = {});
    [[nodiscard]] const GuardOptions& guard_options() const { return m_guard; }
    /// After bind_to_port()/bind_to_any_port(): raises the listen backlog from cpp-httplib's 5
    /// to SOMAXCONN (a burst of clients connecting at once would otherwise see dropped SYNs and
    /// second-long connect retries).
    void raise_listen_backlog();
    /// Binds `host`:`port` (0: any free port) and raises the backlog: the port bound, or
    /// kUnavailable "cannot listen on HOST:PORT: <the system's reason>" (Address already in
    /// use, Permission denied, Cannot assign requested address, ...).
    [[nodiscard]] Result<int> bind_listener(const std::string& host, int port);

private:
    bool process_and_close_socket(socket_t sock) override;
    GuardOptions m_guard;
};

/// Marks the connection of the calling handler to be closed once its response is written (its
/// request body was not read to the end) and says so in `res` (Connection: close). Outside a
/// GuardedServer handler it only sets the header.
void close_connection_after_response(httplib::Response& res);

/// What read_body() did.
enum class BodyRead {
    kOk,        ///< the whole body is in `out`
    kTooLarge,  ///< the body exceeds max_bytes (reading stopped there; the connection closes)
    kFailed,    ///< the client went away, timed out or sent malformed chunks
};

/// Reads the body of `req` through `reader` into `out`, stopping as soon as it exceeds
/// `max_bytes` (chunked or not; a larger Content-Length is refused before reading). On
/// kTooLarge and kFailed the connection is closed after the response.
[[nodiscard]] BodyRead read_body(const httplib::Request& req, httplib::Response& res,
                                 const httplib::ContentReader& reader, std::size_t max_bytes,
                                 std::string& out);

/// A client request's failure in words a person can act on ("connection refused or host
/// unreachable", "no connection within 2 s", ...); `connect_timeout_s` is the client's.
[[nodiscard]] std::string describe_client_error(httplib::Error error, double connect_timeout_s);

/// Equality of two secrets in time that depends only on their lengths, never on where they
/// differ (no early exit; a length difference still compares every byte of `given`).
[[nodiscard]] bool constant_time_equal(std::string_view given, std::string_view expected);

}  // namespace pals::http
