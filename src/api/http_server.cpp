#include "pals/api/http_server.hpp"

#include <fmt/format.h>
#include <httplib.h>

#include <cmath>
#include <ctime>
#include <limits>
#include <nlohmann/json.hpp>

#include "pals/common/http_guard.hpp"
#include "pals/common/json.hpp"
#include "pals/common/log.hpp"

namespace pals::api {

namespace {

using nlohmann::json;

void send_error(httplib::Response& res, int code, const char* type, const std::string& message) {
    res.status = code;
    res.set_content(json{{"error", {{"code", code}, {"type", type}, {"message", message}}}}.dump(),
                    "application/json");
}

json finite_or_null(double v) {
    return std::isfinite(v) ? json(v) : json(nullptr);
}

/// The key whose value holds the number a parse error quotes ("... parsing '1e400'"), for an
/// error that names the field; empty if there is none. A text scan, not a parse.
std::string field_before_number(const std::string& body, const std::string& message) {
    const std::string marker = "parsing '";
    const std::size_t start = message.find(marker);
    if (start == std::string::npos) {
        return {};
    }
    const std::size_t lit_begin = start + marker.size();
    const std::size_t lit_end = message.find('\'', lit_begin);
    if (lit_end == std::string::npos || lit_end == lit_begin) {
        return {};
    }
    const std::size_t at = body.find(message.substr(lit_begin, lit_end - lit_begin));
    if (at == std::string::npos) {
        return {};
    }
    const std::size_t colon = body.rfind(':', at);
    if (colon == std::string::npos) {
        return {};
    }
    const std::size_t close = body.rfind('"', colon);
    if (close == std::string::npos || close == 0) {
        return {};
    }
    const std::size_t open = body.rfind('"', close - 1);
    if (open == std::string::npos) {
        return {};
    }
    return body.substr(open + 1, close - open - 1);
}

}  // namespace

/// "2026-12-04T22:43:15.250Z" for Unix time `t` (seconds).
std::string utc_timestamp(double t) {
    const auto whole = static_cast<std::time_t>(std::floor(t));
    const int ms = static_cast<int>(std::lround((t - std::floor(t)) * 1000.0)) % 1000;
    std::tm tm{};
    gmtime_r(&whole, &tm);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900,
                       tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

Result<BudgetRequest> parse_budget_request(const std::string& body) {
    // Bounded depth and size; a number out of range (1e400) is an error naming it, not a throw.
    Result<json> parsed = pals::parse_json(body, "the request body", {.max_depth = 8});
    if (!parsed.is_ok()) {
        const std::string field = field_before_number(body, parsed.status().message());
        return field.empty()
                   ? parsed.status()
                   : Status::invalid_argument("\"" + field + "\": " + parsed.status().message());
    }
    const json j = std::move(parsed).value();
    if (!j.is_object()) {
        return Status::invalid_argument(
            "the body must be a JSON object with \"watts\" or \"steps\"");
    }
    BudgetRequest request;
    if (j.contains("watts") == j.contains("steps")) {
        return Status::invalid_argument("give exactly one of \"watts\" or \"steps\"");
    }
    if (j.contains("watts")) {
        const json& w = j["watts"];
        if (w.is_null()) {  // no budget from now on
            return request;
        }
        if (!w.is_number() || !std::isfinite(w.get<double>()) || w.get<double>() <= 0.0) {
            return Status::invalid_argument(
                "\"watts\" must be a positive number, or null to clear the budget");
        }
        request.steps.emplace_back(0.0, w.get<double>());
        return request;
    }
    const json& steps = j["steps"];
    if (!steps.is_array() || steps.empty() || steps.size() > 1000) {
        return Status::invalid_argument(
            "\"steps\" must be a non-empty array of [t_s, watts] (at most 1000)");
    }
    for (std::size_t i = 0; i < steps.size(); ++i) {
        const json& s = steps[i];
        if (!s.is_array() || s.size() != 2 || !s[0].is_number() || !s[1].is_number()) {
            return Status::invalid_argument("\"steps\"[" + std::to_string(i) +
                                            "] must be [t_s, watts]");
        }
        const double t = s[0].get<double>();
        const double w = s[1].get<double>();
        if (!std::isfinite(t) || t < 0.0 || !std::isfinite(w) || w <= 0.0) {
            return Status::invalid_argument("\"steps\"[" + std::to_string(i) +
                                            "]: t_s must be >= 0 and watts > 0");
        }
        if (i > 0 && t <= request.steps.back().first) {
            return Status::invalid_argument("\"steps\"[" + std::to_string(i) +
                                            "]: times must increase");
        }
        request.steps.emplace_back(t, w);
    }
    return request;
}

Status check_budget_feasible(const BudgetRequest& request, double budget_min_w) {
    constexpr double kToleranceW = 1e-6;
    for (std::size_t i = 0; i < request.steps.size(); ++i) {
        const double w = request.steps[i].second;
        if (budget_min_w > 0.0 && w < budget_min_w - kToleranceW) {
            return Status::out_of_range(
                fmt::format("{}budget of {:g} W is below the minimum of {:g} W the GPUs can hold "
                            "(the sum of their minimum power limits)",
                            request.steps.size() > 1 ? fmt::format("\"steps\"[{}]: ", i) : "", w,
                            budget_min_w));
        }
    }
    return Status::ok();
}

namespace {

json cluster_object(const ClusterSnapshot& c) {
    json shares = json::array();
    for (const ClusterShare& sh : c.shares) {
        shares.push_back({{"node", sh.node},
                          {"allocation_w", sh.allocation_w},
                          {"in_force_w", sh.in_force_w},
                          {"min_w", sh.min_w},
                          {"demand_tok_s", sh.demand_tok_s},
                          {"acknowledged", sh.acknowledged}});
    }
    return {{"cluster", c.cluster},
            {"node", c.node},
            {"store", c.store},
            {"member", c.member},
            {"connected", c.connected},
            {"coordinator", c.coordinator},
            {"leader", c.leader.empty() ? json(nullptr) : json(c.leader)},
            {"fallback", c.fallback},
            {"cluster_budget_w", finite_or_null(c.cluster_budget_w)},
            {"allocation_w", finite_or_null(c.allocation_w)},
            {"node_budget_w", finite_or_null(c.node_budget_w)},
            {"in_force_w", finite_or_null(c.in_force_w)},
            {"floor_w", c.floor_w},
            {"max_w", c.max_w},
            {"lease_ttl_s", c.lease_ttl_s},
            {"since_contact_s", finite_or_null(c.since_contact_s)},
            {"elections_won_total", c.elections_won_total},
            {"leader_changes_total", c.leader_changes_total},
            {"rounds_total", c.rounds_total},
            {"allocation_writes_total", c.allocation_writes_total},
            {"allocations_applied_total", c.allocations_applied_total},
            {"fallbacks_total", c.fallbacks_total},
            {"rejoins_total", c.rejoins_total},
            {"etcd_errors_total", c.etcd_errors_total},
            {"last_round_s", c.last_round_s},
            {"members", c.members},
            {"allocated_w", c.allocated_w},
            {"reserved_w", c.reserved_w},
            {"marginal_tok_per_j", c.marginal_tok_per_j},
            {"shares", shares},
            {"last_error", c.last_error}};
}

}  // namespace

std::string cluster_json(const ClusterSnapshot& c) {
    return cluster_object(c).dump(2);
}

std::string health_json(const StateSnapshot* s, const ClusterSnapshot* cluster) {
    if (s == nullptr) {
        return json{{"status", "starting"}}.dump();
    }
    if (s->degraded) {
        return json{{"status", "degraded"}, {"reason", s->last_decision}}.dump();
    }
    if (cluster != nullptr && cluster->fallback) {
        return json{{"status", "degraded"},
                    {"reason",
                     fmt::format("cluster: etcd out of reach for {:.1f} s ({}): the "
                                 "node budget falls back to its floor of {:g} W",
                                 cluster->since_contact_s, cluster->last_error, cluster->floor_w)}}
            .dump();
    }
    if (!s->budget_feasible) {
        return json{
            {"status", "degraded"},
            {"reason", fmt::format("infeasible budget: {:g} W is below the minimum of {:g} W; "
                                   "every power limit is at its minimum",
                                   s->budget_w, s->budget_min_w)}}
            .dump();
    }
    return json{{"status", "ok"}}.dump();
}

std::string state_json(const StateSnapshot& s, const ClusterSnapshot* cluster) {
    json groups = json::array();
    for (const GroupSnapshot& g : s.groups) {
        groups.push_back(
            {{"index", g.index},
             {"gpus", g.gpus},
             {"power_cap_w", g.cap_w},
             {"batch_cap", g.batch_cap},
             {"power_w", g.power_w},
             {"generation_tok_s", g.generation_tok_s},
             {"running", g.running},
             {"waiting", g.waiting},
             {"kv_cache_usage", g.kv_cache_usage},
             {"locked_clock_mhz",
              g.locked_clock_mhz > 0.0 ? json(g.locked_clock_mhz) : json(nullptr)},
             {"batch_cap_requested",
              g.batch_cap_requested > 0 ? json(g.batch_cap_requested) : json(nullptr)},
             {"batch_cap_applied",
              g.batch_cap_applied >= 0 ? json(g.batch_cap_applied) : json(nullptr)},
             {"batch_cap_ack", g.batch_cap_ack},
             {"ttft_miss_share",
              std::isnan(g.ttft_miss_share) ? json(nullptr) : json(g.ttft_miss_share)},
             {"tpot_miss_share",
              std::isnan(g.tpot_miss_share) ? json(nullptr) : json(g.tpot_miss_share)},
             {"engine_max_num_seqs",
              g.engine_max_num_seqs > 0 ? json(g.engine_max_num_seqs) : json(nullptr)},
             {"step_tokens", g.step_tokens > 0 ? json(g.step_tokens) : json(nullptr)},
             {"step_tokens_applied",
              g.step_tokens_applied >= 0 ? json(g.step_tokens_applied) : json(nullptr)},
             {"engine_max_num_batched_tokens", g.engine_max_num_batched_tokens > 0
                                                   ? json(g.engine_max_num_batched_tokens)
                                                   : json(nullptr)}});
    }
    json steps = json::array();
    json schedule = json::array();
    for (const auto& [t, w] : s.budget_steps) {
        steps.push_back({t, w});
        // The same step as a PUT would give it (seconds from now; past steps negative) and as
        // a UTC date.
        json step = {{"watts", w}, {"in_s", t - s.time_s}};
        if (s.wall_time_unix_s > 0.0) {
            step["at"] = utc_timestamp(s.wall_time_unix_s + (t - s.time_s));
        }
        schedule.push_back(std::move(step));
    }
    json out{{"time_s", s.time_s},
             {"policy", s.policy},
             {"degraded", s.degraded},
             {"budget_w", finite_or_null(s.budget_w)},
             {"budget_steps", steps},
             {"budget_schedule", schedule},
             {"budget_min_w", s.budget_min_w},
             {"budget_feasible", s.budget_feasible},
             {"power_w", s.power_w},
             {"energy_j", s.energy_j},
             {"generation_tokens", s.generation_tokens},
             {"groups", groups},
             {"last_decision", s.last_decision},
             {"decisions_total", s.decisions_total},
             {"cap_changes_total", s.cap_changes_total},
             {"batch_cap_changes_total", s.batch_changes_total},
             {"step_tokens_changes_total", s.step_tokens_changes_total},
             {"budget_updates_total", s.budget_updates_total},
             {"batch_cap_faults_total", s.batch_cap_faults_total},
             {"errors_total", s.errors_total}};
    if (cluster != nullptr) {
        out["cluster"] = cluster_object(*cluster);
    }
    return out.dump(2);
}

namespace {

/// Deadlines and limits of the server (pals/common/http_guard.hpp; docs/api.md).
pals::http::GuardOptions guard_options(const ServerOptions& o) {
    pals::http::GuardOptions g;
    g.max_body_bytes = o.max_body_bytes;
    g.header_timeout = o.header_timeout;
    g.body_timeout = o.header_timeout * 2;
    g.read_timeout = o.header_timeout;
    g.threads = o.threads;
    return g;
}

}  // namespace

struct HttpServer::Impl {
    StateStore& store;
    ServerOptions options;
    pals::http::GuardedServer server;
    std::thread thread;

    Impl(StateStore& s, ServerOptions o)
        : store(s), options(std::move(o)), server(guard_options(options)) {}

    /// 403/401 for a write without the right token, decided from the headers alone.
    bool refuse_write(const httplib::Request& req, httplib::Response& res) const {
        if (options.token.empty()) {
            send_error(res, 403, "forbidden", "writes are disabled: the daemon has no token file");
            return true;
        }
        const std::string header = req.get_header_value("Authorization");
        constexpr std::string_view kBearer = "Bearer ";
        const bool bearer =
            header.size() >= kBearer.size() && header.compare(0, kBearer.size(), kBearer) == 0;
        const std::string_view given =
            bearer ? std::string_view(header).substr(kBearer.size()) : std::string_view(header);
        // Both computed, whatever the prefix: the time depends only on the lengths.
        const bool token_ok = pals::http::constant_time_equal(given, options.token);
        if (!bearer || !token_ok) {
            send_error(res, 401, "unauthorized",
                       "a valid \"Authorization: Bearer <token>\" header is required");
            return true;
        }
        return false;
    }

    void routes() {
        // Writes are authenticated from the headers, before any byte of the body is read.
        server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
            if (req.method == "PUT" &&
                (req.path == "/v1/budget" || req.path == "/v1/cluster/budget") &&
                refuse_write(req, res)) {
                pals::http::close_connection_after_response(res);
                return httplib::Server::HandlerResponse::Handled;
            }
            return httplib::Server::HandlerResponse::Unhandled;
        });
        // No exception crosses a handler (llama.cpp's ex_wrapper idea).
        server.set_exception_handler(
            [](const httplib::Request&, httplib::Response& res, const std::exception_ptr& ep) {
                const std::string what = exception_message(ep);
                PALS_LOG_ERROR("http: {}", what);
                send_error(res, 500, "internal", what);
            });
        server.set_error_handler([](const httplib::Request&, httplib::Response& res) {
            if (res.body.empty()) {
                const char* type = res.status == 413   ? "payload_too_large"
                                   : res.status == 404 ? "not_found"
                                                       : "error";
                send_error(res, res.status, type,
                           res.status == 413   ? "body too large"
                           : res.status == 404 ? "no such route"
                                               : "bad request");
            }
        });
        server.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
            auto s = store.latest();
            auto c = store.cluster();
            res.set_content(health_json(s.get(), c.get()), "application/json");
        });
        server.Get("/v1/state", [this](const httplib::Request&, httplib::Response& res) {
            auto s = store.latest();
            if (!s) {
                send_error(res, 503, "unavailable", "no control period has completed yet");
                return;
            }
            auto c = store.cluster();
            res.set_content(state_json(*s, c.get()), "application/json");
        });
        server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
            auto s = store.latest();
            std::string text = render_metrics(s ? *s : StateSnapshot{});
            if (auto c = store.cluster()) {
                text += render_cluster_metrics(*c);
            }
            res.set_content(text, "text/plain; version=0.0.4");
        });
        server.Put("/v1/cluster/budget", [this](const httplib::Request& req, httplib::Response& res,
                                                const httplib::ContentReader& reader) {
            if (refuse_write(req, res)) {
                pals::http::close_connection_after_response(res);
                return;
            }
            std::string body;
            if (pals::http::read_body(req, res, reader, options.max_body_bytes, body) !=
                pals::http::BodyRead::kOk) {
                send_error(res, 400, "invalid_argument", "the body could not be read");
                return;
            }
            if (!options.set_cluster_budget) {
                send_error(res, 404, "not_found",
                           "this node is not a cluster member (no [cluster] endpoints)");
                return;
            }
            Result<BudgetRequest> budget = parse_budget_request(body);
            if (!budget.is_ok()) {
                send_error(res, 400, "invalid_argument", budget.status().message());
                return;
            }
            if (budget->steps.size() > 1 ||
                (budget->steps.size() == 1 && budget->steps.front().first != 0.0)) {
                send_error(res, 400, "invalid_argument",
                           "the cluster budget takes {\"watts\": W} (or null), not steps");
                return;
            }
            const std::optional<double> watts =
                budget->steps.empty() ? std::nullopt
                                      : std::optional<double>(budget->steps.front().second);
            const Status written = options.set_cluster_budget(watts);
            if (!written.is_ok()) {
                const bool unavailable = written.code() == StatusCode::kUnavailable;
                send_error(res, unavailable ? 503 : 500, unavailable ? "unavailable" : "internal",
                           written.message());
                return;
            }
            res.set_content(
                json{{"accepted", true},
                     {"cluster_budget_w",
                      finite_or_null(watts.value_or(std::numeric_limits<double>::infinity()))}}
                    .dump(),
                "application/json");
        });
        server.Put("/v1/budget", [this](const httplib::Request& req, httplib::Response& res,
                                        const httplib::ContentReader& reader) {
            if (refuse_write(req, res)) {  // pre-routing did already; kept for defence in depth
                pals::http::close_connection_after_response(res);
                return;
            }
            std::string body;
            switch (pals::http::read_body(req, res, reader, options.max_body_bytes, body)) {
                case pals::http::BodyRead::kOk:
                    break;
                case pals::http::BodyRead::kTooLarge:
                    send_error(res, 413, "payload_too_large",
                               "the body is larger than " + std::to_string(options.max_body_bytes) +
                                   " bytes");
                    return;
                case pals::http::BodyRead::kFailed:
                    send_error(res, 400, "invalid_argument",
                               "the body could not be read (malformed chunks or timeout)");
                    return;
            }
            if (options.node_budget_from_cluster) {
                send_error(res, 409, "conflict",
                           "this node's budget is allocated by its cluster's coordinator: change "
                           "the cluster budget (PUT /v1/cluster/budget) instead");
                return;
            }
            Result<BudgetRequest> budget = parse_budget_request(body);
            if (!budget.is_ok()) {
                send_error(res, 400, "invalid_argument", budget.status().message());
                return;
            }
            if (Status feasible = check_budget_feasible(*budget, store.budget_min_w());
                !feasible.is_ok()) {
                send_error(res, 409, "infeasible", feasible.message());
                return;
            }
            json steps = json::array();
            for (const auto& [t, w] : budget->steps) {
                steps.push_back({t, w});
            }
            store.request_budget(std::move(budget).value());
            res.set_content(json{{"accepted", true}, {"steps", steps}}.dump(), "application/json");
        });
    }
};

HttpServer::HttpServer(StateStore& store, ServerOptions options)
    : m_impl(std::make_unique<Impl>(store, std::move(options))) {}

HttpServer::~HttpServer() {
    stop();
}

Status HttpServer::start() {
    m_impl->routes();
    PALS_ASSIGN_OR_RETURN(m_port,
                          m_impl->server.bind_listener(m_impl->options.host, m_impl->options.port));
    m_impl->thread = std::thread([this] { m_impl->server.listen_after_bind(); });
    return Status::ok();
}

void HttpServer::stop() {
    if (m_impl && m_impl->thread.joinable()) {
        m_impl->server.stop();
        m_impl->thread.join();
    }
}

}  // namespace pals::api
