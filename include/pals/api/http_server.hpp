#pragma once
/// @file http_server.hpp
/// @brief The daemon's HTTP API (cpp-httplib; loopback by default; docs/api.md):
///   GET  /healthz    {"status": "ok" | "degraded" | "starting"[, "reason": "..."]}
///   GET  /v1/state   the latest StateSnapshot as JSON
///   PUT  /v1/budget  {"watts": W} or {"steps": [[t_s, W], ...]}; needs "Authorization: Bearer T"
///   PUT  /v1/cluster/budget  {"watts": W | null}: the cluster budget in etcd (cluster members;
///                    same token; docs/cluster.md)
///   GET  /metrics    Prometheus text exposition of the daemon's own metrics
/// Malformed bodies get 400 with {"error": {"code", "type", "message"}}, oversized ones 413
/// (chunked too); a missing or wrong token 401, decided from the headers before any of the body
/// is read (constant-time comparison); a budget step below the GPUs' minimum 409; nothing throws
/// out of a handler. Slow clients are cut off by pals::http::GuardedServer's deadlines
/// (pals/common/http_guard.hpp).
///
/// Thread-safety: start()/stop() from one thread; handlers run on httplib's worker threads and
/// only touch the thread-safe StateStore.

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "pals/common/status.hpp"
#include "pals/control/state.hpp"

namespace pals::api {

// The published state lives in the control layer below; the API serves it.
using control::BudgetRequest;
using control::ClusterShare;
using control::ClusterSnapshot;
using control::GroupSnapshot;
using control::StateSnapshot;
using control::StateStore;

struct ServerOptions {
    std::string host = "127.0.0.1";
    int port = 0;       ///< 0: any free port (see HttpServer::port())
    std::string token;  ///< bearer token for writes; empty: writes are refused (403)
    std::size_t max_body_bytes = 64 * 1024;  ///< larger bodies (chunked too): 413
    /// The request line and headers must arrive within this (whole request); also the per-read
    /// timeout, and twice it bounds the body.
    std::chrono::milliseconds header_timeout{5000};
    std::size_t threads = 32;  ///< worker threads (concurrent connections served)
    /// PUT /v1/cluster/budget writes the cluster budget through this (W, or nullopt to delete
    /// it); empty: not a cluster member (404).
    std::function<Status(std::optional<double>)> set_cluster_budget;
    /// The node budget comes from the cluster: PUT /v1/budget answers 409.
    bool node_budget_from_cluster = false;
};

class HttpServer {
public:
    HttpServer(StateStore& store, ServerOptions options);
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    /// Binds and starts serving in a background thread. kUnavailable if the address is taken.
    [[nodiscard]] Status start();
    /// The bound port (after start()).
    [[nodiscard]] int port() const { return m_port; }
    void stop();

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
    int m_port = 0;
};

/// Parses a PUT /v1/budget body. Errors name the field.
[[nodiscard]] Result<BudgetRequest> parse_budget_request(const std::string& body);

/// "2026-12-04T22:43:15.250Z": Unix time `t` (seconds) in UTC, millisecond resolution.
[[nodiscard]] std::string utc_timestamp(double t);
/// A budget request the GPUs can hold: kOutOfRange naming the step and the minimum (W) when a
/// step is below `budget_min_w` (the sum of the GPUs' minimum power limits; 0: unknown, no
/// check). PUT /v1/budget answers 409 then.
[[nodiscard]] Status check_budget_feasible(const BudgetRequest& request, double budget_min_w);
/// The body of GET /healthz: {"status": "starting" | "ok" | "degraded"}, with a "reason" when
/// degraded (control stopped after a backend failure, a budget below the minimum, or a cluster
/// member in fallback: etcd out of reach).
[[nodiscard]] std::string health_json(const StateSnapshot* snapshot,
                                      const ClusterSnapshot* cluster = nullptr);
/// The snapshot as the JSON of GET /v1/state (with "cluster" when `cluster` is given).
[[nodiscard]] std::string state_json(const StateSnapshot& snapshot,
                                     const ClusterSnapshot* cluster = nullptr);
/// Prometheus text exposition (format 0.0.4) of the daemon's metrics.
[[nodiscard]] std::string render_metrics(const StateSnapshot& snapshot);
/// The cluster agent's metrics (pals_cluster_*, docs/api.md), appended to /metrics.
[[nodiscard]] std::string render_cluster_metrics(const ClusterSnapshot& cluster);
/// The cluster state as JSON (the "cluster" object of /v1/state).
[[nodiscard]] std::string cluster_json(const ClusterSnapshot& cluster);

}  // namespace pals::api
