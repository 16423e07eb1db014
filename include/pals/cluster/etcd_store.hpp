#pragma once
/// @file etcd_store.hpp
/// @brief ClusterStore over etcd v3's JSON gRPC gateway (`POST /v3/kv/range`, `/v3/kv/put`,
/// `/v3/kv/deleterange`, `/v3/kv/txn`, `/v3/lease/grant`, `/v3/lease/keepalive`,
/// `/v3/lease/revoke`, `/v3/auth/authenticate`), with cpp-httplib and nlohmann-json. Keys and
/// values travel base64-encoded, int64 fields as decimal strings (proto3's JSON mapping); fields
/// at their zero value are omitted by the gateway, so a missing "succeeded" is false and a
/// missing "TTL" is 0. Why the gateway rather than gRPC: docs/cluster.md.
///
/// Endpoints: a list; every call starts at the endpoint that answered last and moves to the next
/// one on a connection error, a timeout or a 5xx (an etcd member that is down or has no leader),
/// so losing one member of three costs one timeout at most. `https://` endpoints use TLS
/// (OpenSSL, as Debian's cpp-httplib is built): the CA file verifies the server, an optional
/// client certificate and key authenticate this node. A user name and password file enable
/// etcd's own authentication (a token from /v3/auth/authenticate, renewed when refused).
///
/// Thread-safety: thread-safe; each call opens its own HTTP connection (a few calls a second).

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "pals/cluster/cluster_store.hpp"

namespace pals::cluster {

/// How to reach etcd.
struct EtcdOptions {
    /// "http://HOST:PORT" or "https://HOST:PORT", at least one.
    std::vector<std::string> endpoints;
    std::string ca_file;    ///< https: the CA that signed the servers' certificates
    std::string cert_file;  ///< https: this client's certificate ("" = none)
    std::string key_file;   ///< https: its key
    std::string user;       ///< etcd user ("" = no etcd authentication)
    std::string password;   ///< its password (read from a file by the caller)
    /// Connect timeout per endpoint; a refused connection fails at once.
    std::chrono::milliseconds connect_timeout{500};
    /// Read/write timeout of one request.
    std::chrono::milliseconds request_timeout{2000};
};

class EtcdClusterStore final : public ClusterStore {
public:
    /// Checks the endpoints' syntax and the TLS files' presence; connects to nothing yet.
    [[nodiscard]] static Result<std::unique_ptr<EtcdClusterStore>> create(EtcdOptions options);

    Result<RangeResult> range(const std::string& key, bool prefix) override;
    Result<std::int64_t> put(const std::string& key, const std::string& value,
                             LeaseId lease = 0) override;
    Result<std::int64_t> del(const std::string& key, bool prefix = false) override;
    Result<TxnResult> txn(const std::vector<Compare>& compares, const std::vector<TxnOp>& success,
                          const std::vector<TxnOp>& failure) override;
    Result<LeaseId> grant_lease(std::int64_t ttl_s) override;
    Result<std::int64_t> keep_alive(LeaseId lease) override;
    Status revoke_lease(LeaseId lease) override;
    [[nodiscard]] std::string describe() const override;

    /// Requests that moved to another endpoint after a failure, so far.
    [[nodiscard]] std::uint64_t failovers_total() const;

    /// POSTs a JSON body to `path` on the endpoints in turn; the answer's text. Public for the
    /// tests of the wire format.
    [[nodiscard]] Result<std::string> post(const std::string& path, const std::string& body);

private:
    explicit EtcdClusterStore(EtcdOptions options) : m_options(std::move(options)) {}
    [[nodiscard]] Result<std::string> post_once(std::size_t endpoint, const std::string& path,
                                                const std::string& body, const std::string& token,
                                                int* http_status);
    [[nodiscard]] Status authenticate(std::size_t endpoint);

    EtcdOptions m_options;
    mutable std::mutex m_mutex;
    std::size_t m_current = 0;  ///< the endpoint that answered last
    std::string m_token;        ///< etcd auth token ("" = none yet)
    std::uint64_t m_failovers = 0;
};

/// Base64 (RFC 4648, with padding), as the gateway encodes bytes.
[[nodiscard]] std::string base64_encode(const std::string& bytes);
/// kInvalidArgument on a character outside the alphabet.
[[nodiscard]] Result<std::string> base64_decode(const std::string& text);

}  // namespace pals::cluster
