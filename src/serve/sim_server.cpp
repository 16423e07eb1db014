// `pals sim-serve`: the OpenAI-compatible routes over the simulation (SimLoop, sim_loop.hpp).
//
// Threads: SimLoop's thread advances the simulator every tick (after applying the batch cap
// file and the fake NVML limits, and before reporting power); cpp-httplib's worker threads here
// parse requests, submit them to the SimLoop and stream their tokens, waiting on each request's
// StreamState. The routes hold no simulation state and take no simulator lock themselves.
#include "pals/serve/sim_server.hpp"

#include <fmt/format.h>
#include <httplib.h>
#include <pthread.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <ctime>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "pals/common/http_guard.hpp"
#include "pals/common/log.hpp"
#include "serve/openai_protocol.hpp"
#include "serve/sim_loop.hpp"

namespace pals::serve {

namespace {

using SteadyClock = std::chrono::steady_clock;

/// How long a streaming handler waits for a token before checking its connection again.
constexpr std::chrono::milliseconds kStreamPoll{100};
/// How long start() waits for the HTTP thread to accept connections.
constexpr std::chrono::seconds kStartTimeout{10};
/// Idle keep-alive connections are closed after this (it also bounds stop()'s wait).
constexpr time_t kKeepAliveTimeoutS = 2;
/// Requests served on one keep-alive connection before it is closed.
constexpr std::size_t kKeepAliveMaxRequests = 100000;

void send_error(httplib::Response& res, const ApiError& error) {
    res.status = error.status;
    res.set_content(error_body(error), "application/json");
}

/// Model configs in the shared folder are named `org__name.json`: serve them as `org/name`.
std::string default_model_name(const std::string& config_name) {
    const auto pos = config_name.find("__");
    if (pos == std::string::npos) {
        return config_name;
    }
    // Appended piecewise (std::string::replace here trips GCC 12's -Wrestrict false positive).
    std::string out;
    out.reserve(config_name.size() - 1);
    out.append(config_name, 0, pos).append(1, '/').append(config_name, pos + 2, std::string::npos);
    return out;
}

/// Deadlines and limits of the HTTP server (pals/common/http_guard.hpp).
pals::http::GuardOptions guard_options(const SimServerOptions& o) {
    pals::http::GuardOptions g;
    g.max_body_bytes = o.max_body_bytes;
    g.header_timeout = o.header_timeout;
    g.read_timeout = o.header_timeout;
    g.body_timeout = std::chrono::milliseconds{30000};
    g.keep_alive_timeout = std::chrono::seconds{kKeepAliveTimeoutS};
    g.keep_alive_max_count = kKeepAliveMaxRequests;
    // One thread per connection: max_connections concurrent streams.
    g.threads = static_cast<std::size_t>(std::max(1, o.max_connections));
    return g;
}

std::int64_t unix_now_s() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace

struct SimServer::Impl {
    Impl(SimServerOptions opts, std::unique_ptr<SimLoop> sim_loop)
        : options(std::move(opts)), loop(std::move(sim_loop)), http(guard_options(options)) {}

    // ---- immutable after create() ----------------------------------------------------------
    SimServerOptions options;
    std::string model_name;
    int max_model_len = 0;
    std::uint64_t id_seed = 0;

    /// The simulator and its thread; the routes only submit, abort and read metrics.
    std::unique_ptr<SimLoop> loop;

    // ---- HTTP ------------------------------------------------------------------------------
    pals::http::GuardedServer http;
    std::thread http_thread;
    std::atomic<bool> http_done{false};  ///< the listen loop returned
    std::atomic<std::uint64_t> next_response_id{0};
    int port = 0;
    bool started = false;
    bool stopped = false;

    std::string make_id(Endpoint endpoint) {
        const std::uint64_t n = next_response_id.fetch_add(1);
        return fmt::format("{}-{:016x}{:016x}",
                           endpoint == Endpoint::kCompletions ? "cmpl" : "chatcmpl", id_seed, n);
    }

    void handle_generation(const httplib::Request& req, httplib::Response& res,
                           const httplib::ContentReader& reader, Endpoint endpoint) {
        std::string body;
        switch (pals::http::read_body(req, res, reader, options.max_body_bytes, body)) {
            case pals::http::BodyRead::kOk:
                break;
            case pals::http::BodyRead::kTooLarge:
                send_error(res, bad_request(fmt::format("the request body is larger than {} bytes",
                                                        options.max_body_bytes)));
                return;
            case pals::http::BodyRead::kFailed:
                send_error(res, bad_request("the request body could not be read (malformed "
                                            "chunks or timeout)"));
                return;
        }
        Result<GenerationRequest> parsed = endpoint == Endpoint::kCompletions
                                               ? parse_completion_request(body)
                                               : parse_chat_request(body);
        if (!parsed.is_ok()) {
            send_error(res, bad_request(parsed.status().message()));
            return;
        }
        const GenerationRequest& g = parsed.value();
        if (g.model && *g.model != model_name) {
            send_error(res, model_not_found(*g.model));
            return;
        }
        const int max_tokens = g.max_tokens.value_or(options.default_max_tokens);
        const std::int64_t total = std::int64_t{g.prompt_tokens} + max_tokens;
        if (g.prompt_tokens >= max_model_len || total > max_model_len) {
            send_error(res, bad_request(fmt::format(
                                "This model's maximum context length is {} tokens. However, you "
                                "requested {} tokens ({} in the messages, {} in the completion). "
                                "Please reduce the length of the messages or completion.",
                                max_model_len, total, g.prompt_tokens, max_tokens)));
            return;
        }
        Result<Submitted> submitted = loop->submit(g.prompt_tokens, max_tokens);
        if (!submitted.is_ok()) {
            const bool stopping_now = submitted.status().code() == StatusCode::kUnavailable;
            send_error(
                res,
                stopping_now
                    ? ApiError{503, "ServiceUnavailableError", submitted.status().message(), {}}
                    : bad_request(submitted.status().message()));
            return;
        }
        const std::size_t handle = submitted->handle;
        std::shared_ptr<StreamState> stream = submitted->stream;
        {
            // The next tick dispatches it to a replica, or rejects it.
            std::unique_lock<std::mutex> lock(stream->mutex);
            stream->cv.wait(lock, [&] { return stream->decided || stream->closed; });
            if (stream->rejected) {
                lock.unlock();
                send_error(res, bad_request(fmt::format(
                                    "The request needs {} tokens of KV cache ({} prompt + {} "
                                    "max_tokens), more than one replica of the simulated engine "
                                    "holds. Please reduce the length of the messages or "
                                    "completion.",
                                    total, g.prompt_tokens, max_tokens)));
                return;
            }
            if (!stream->decided) {
                lock.unlock();
                loop->abort(handle);
                send_error(res,
                           {503, "ServiceUnavailableError", "the server is shutting down", {}});
                return;
            }
        }
        ResponseHeader header{endpoint, make_id(endpoint), unix_now_s(), model_name,
                              g.prompt_tokens};
        if (!g.stream) {
            std::unique_lock<std::mutex> lock(stream->mutex);
            stream->cv.wait(lock, [&] { return stream->finished || stream->closed; });
            if (!stream->finished) {
                lock.unlock();
                loop->abort(handle);
                send_error(res,
                           {503, "ServiceUnavailableError", "the server is shutting down", {}});
                return;
            }
            lock.unlock();
            res.set_content(full_response(header, max_tokens), "application/json");
            return;
        }
        auto encoder =
            std::make_shared<StreamEncoder>(std::move(header), g.include_usage, g.continuous_usage);
        auto sent = std::make_shared<int>(-1);  // -1: nothing sent yet
        res.set_chunked_content_provider(
            "text/event-stream",
            [stream, encoder, sent](std::size_t /*offset*/, httplib::DataSink& sink) {
                std::string out;
                if (*sent < 0) {
                    out = encoder->begin();
                    *sent = 0;
                }
                int generated = 0;
                bool finished = false;
                bool closed = false;
                {
                    std::unique_lock<std::mutex> lock(stream->mutex);
                    if (out.empty()) {
                        stream->cv.wait_for(lock, kStreamPoll, [&] {
                            return stream->generated > *sent || stream->closed;
                        });
                    }
                    generated = stream->generated;
                    finished = stream->finished;
                    closed = stream->closed;
                }
                // One chunk per token, as vLLM with --stream-interval 1.
                for (int i = *sent + 1; i <= generated; ++i) {
                    out += encoder->token(i, finished && i == generated);
                }
                *sent = generated;
                if (finished) {
                    out += encoder->end(generated);
                }
                if (!out.empty() && !sink.write(out.data(), out.size())) {
                    return false;  // the client went away: the releaser aborts the request
                }
                if (finished) {
                    sink.done();
                    return true;
                }
                return !closed;
            },
            [this, handle, stream](bool /*success*/) {
                bool finished = false;
                {
                    std::lock_guard<std::mutex> lock(stream->mutex);
                    finished = stream->finished;
                }
                if (!finished) {
                    loop->abort(handle);
                }
            });
    }

    void routes() {
        // Body limits, deadlines, keep-alive and the thread pool: guard_options().
        http.set_socket_options([](socket_t sock) {
            int yes = 1;
            // SO_REUSEADDR only (no SO_REUSEPORT): a port in use must fail to bind.
            ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
        });
        http.set_exception_handler(
            [](const httplib::Request&, httplib::Response& res, const std::exception_ptr& ep) {
                const std::string what = exception_message(ep);
                PALS_LOG_ERROR("sim-serve: http: {}", what);
                send_error(res, {500, "InternalServerError", what, {}});
            });
        http.set_error_handler([this](const httplib::Request&, httplib::Response& res) {
            if (!res.body.empty()) {
                return;
            }
            if (res.status == 413) {
                send_error(res, bad_request(fmt::format("the request body is larger than {} bytes",
                                                        options.max_body_bytes)));
            } else if (res.status == 404) {
                send_error(res, {404, "NotFoundError", "Not Found", {}});
            } else {
                send_error(res, {res.status, "Error", fmt::format("HTTP {}", res.status), {}});
            }
        });
        http.Get("/health",
                 [](const httplib::Request&, httplib::Response& res) { res.status = 200; });
        http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
            res.set_content(models_response(model_name, max_model_len, unix_now_s()),
                            "application/json");
        });
        http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
            res.set_content(loop->metrics_text(model_name),
                            "text/plain; version=0.0.4; charset=utf-8");
        });
        http.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res,
                                            const httplib::ContentReader& reader) {
            handle_generation(req, res, reader, Endpoint::kCompletions);
        });
        http.Post("/v1/chat/completions",
                  [this](const httplib::Request& req, httplib::Response& res,
                         const httplib::ContentReader& reader) {
                      handle_generation(req, res, reader, Endpoint::kChatCompletions);
                  });
    }
};

SimServer::SimServer(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}

SimServer::~SimServer() {
    stop();
}

Result<std::unique_ptr<SimServer>> SimServer::create(const sim::NodeConfig& node,
                                                     SimServerOptions options,
                                                     sim::SloTargets slo) {
    if (!(options.time_scale > 0.0) || !std::isfinite(options.time_scale)) {
        return Status::invalid_argument("--time-scale must be > 0");
    }
    if (options.tick_period.count() <= 0) {
        return Status::invalid_argument("the tick period must be > 0");
    }
    if (options.default_max_tokens < 1) {
        return Status::invalid_argument("--default-max-tokens must be >= 1");
    }
    if (options.max_connections < 1) {
        return Status::invalid_argument("--max-connections must be >= 1");
    }
    if (options.port < 0 || options.port > USHRT_MAX) {
        return Status::invalid_argument("--port must be in 0..65535");
    }
    if (options.max_finished_requests < 1) {
        return Status::invalid_argument("--max-finished-requests must be >= 1");
    }
    if (options.header_timeout.count() < 1) {
        return Status::invalid_argument("--header-timeout must be > 0");
    }
    PALS_ASSIGN_OR_RETURN(std::unique_ptr<SimLoop> loop, SimLoop::create(node, options, slo));
    auto impl = std::make_unique<Impl>(std::move(options), std::move(loop));
    Impl& s = *impl;
    s.model_name = s.options.served_model_name.empty() ? default_model_name(node.model.name)
                                                       : s.options.served_model_name;
    s.max_model_len = node.engine.max_model_len > 0            ? node.engine.max_model_len
                      : node.model.max_position_embeddings > 0 ? node.model.max_position_embeddings
                                                               : INT_MAX;
    s.id_seed =
        static_cast<std::uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
    return std::unique_ptr<SimServer>(new SimServer(std::move(impl)));
}

Status SimServer::start() {
    Impl& s = *m_impl;
    if (s.started) {
        return Status::invalid_argument("the server was already started");
    }
    s.routes();
    // Also raises cpp-httplib's listen backlog of 5: many clients connecting at once need more.
    PALS_ASSIGN_OR_RETURN(s.port, s.http.bind_listener(s.options.host, s.options.port));
    PALS_RETURN_IF_ERROR(s.loop->start());
    s.started = true;
    s.http_thread = std::thread([&s] {
        // Writes to a socket the client closed must fail with EPIPE, not kill the process; the
        // worker threads the server creates from this thread inherit the mask.
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &set, nullptr);
        if (!s.http.listen_after_bind()) {
            PALS_LOG_ERROR("sim-serve: the HTTP server stopped with an error");
        }
        s.http_done = true;
    });
    const auto deadline = SteadyClock::now() + kStartTimeout;
    while (!s.http.is_running() && !s.http_done.load() && SteadyClock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return Status::ok();
}

int SimServer::port() const {
    return m_impl->port;
}

void SimServer::stop() {
    if (!m_impl) {
        return;
    }
    Impl& s = *m_impl;
    if (!s.started || s.stopped) {
        return;
    }
    s.stopped = true;
    s.loop->close_streams();
    // httplib's stop() is a no-op until the listen loop runs: wait for it (start() did already,
    // unless the loop failed at once).
    while (!s.http.is_running() && !s.http_done.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    s.http.stop();
    if (s.http_thread.joinable()) {
        s.http_thread.join();
    }
    s.loop->stop();
}

const std::string& SimServer::served_model_name() const {
    return m_impl->model_name;
}

int SimServer::max_model_len() const {
    return m_impl->max_model_len;
}

int SimServer::gpu_count() const {
    return m_impl->loop->gpu_count();
}

SimServerStats SimServer::stats() const {
    return m_impl->loop->stats();
}

}  // namespace pals::serve
