// `pals sim-serve`: the simulator behind an OpenAI-compatible server, in real time.
//
// Threads: one simulation thread advances the simulator every tick (after applying the batch cap
// file and the fake NVML limits, and before reporting power); cpp-httplib's worker threads parse
// requests, submit them and stream their tokens. Lock order: m_sim_mutex, then a request's own
// StreamState::mutex; handlers never take m_sim_mutex while holding a stream's mutex.
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
#include "serve/node_coupling.hpp"
#include "serve/openai_protocol.hpp"
#include "serve/vllm_exposition.hpp"

namespace pals::serve {

namespace {

using SteadyClock = std::chrono::steady_clock;
namespace fake = power::fake_nvml;

/// How long a streaming handler waits for a token before checking its connection again.
constexpr std::chrono::milliseconds kStreamPoll{100};
/// How long start() waits for the HTTP thread to accept connections.
constexpr std::chrono::seconds kStartTimeout{10};
/// Idle keep-alive connections are closed after this (it also bounds stop()'s wait).
constexpr time_t kKeepAliveTimeoutS = 2;
/// Average power this close to the idle power counts as an idle interval, W.
constexpr double kIdleToleranceW = 0.5;
/// Requests served on one keep-alive connection before it is closed.
constexpr std::size_t kKeepAliveMaxRequests = 100000;

/// What the HTTP side of one request sees of it. Guarded by `mutex`.
struct StreamState {
    std::mutex mutex;
    std::condition_variable cv;
    int generated = 0;      ///< tokens produced so far (all due in wall time)
    bool decided = false;   ///< dispatched to a replica or rejected
    bool rejected = false;  ///< does not fit in the KV cache
    bool finished = false;  ///< the last token is out
    bool closed = false;    ///< the server is stopping
};

/// The simulation side of one request in flight. Guarded by m_sim_mutex.
struct RequestRecord {
    std::shared_ptr<StreamState> stream;
    double arrival_s = 0.0;
    double first_token_s = -1.0;
    double last_token_s = -1.0;
    int replica = -1;
};

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
    Impl(sim::NodeConfig node_config, SimServerOptions opts, sim::Simulator sim)
        : node(std::move(node_config))
        , options(std::move(opts))
        , simulator(std::move(sim))
        , http(guard_options(options)) {}

    // ---- immutable after create() ----------------------------------------------------------
    sim::NodeConfig node;
    SimServerOptions options;
    std::string model_name;
    int max_model_len = 0;
    int gpus_per_replica = 1;
    int gpu_count = 1;
    std::uint64_t id_seed = 0;

    // ---- simulation thread only -----------------------------------------------------------
    std::unique_ptr<NvmlCoupling> nvml;
    std::optional<BatchCapFile> batch_cap_file;
    SteadyClock::time_point last_report_wall;
    double last_report_sim_s = 0.0;
    bool report_failed = false;
    std::thread sim_thread;
    std::mutex wake_mutex;
    std::condition_variable wake_cv;
    bool stop_sim = false;  ///< guarded by wake_mutex

    // ---- guarded by sim_mutex -------------------------------------------------------------
    mutable std::mutex sim_mutex;
    sim::Simulator simulator;
    std::unordered_map<std::size_t, RequestRecord> records;
    std::vector<std::size_t> undecided;   ///< submitted since the last tick
    std::vector<ReplicaMetrics> metrics;  ///< histograms, finish counters, power
    std::vector<double> energy_at_report_j;
    std::vector<double> applied_cap_w;
    std::vector<double> applied_clock_mhz;
    int applied_batch_cap = -1;
    std::vector<std::shared_ptr<StreamState>> touched;  ///< to notify after the tick
    SimServerStats stats;
    double last_arrival_s = 0.0;
    std::uint64_t next_request_id = 0;
    bool stopping = false;
    SteadyClock::time_point start_wall;

    // ---- HTTP ------------------------------------------------------------------------------
    pals::http::GuardedServer http;
    std::thread http_thread;
    std::atomic<bool> http_done{false};  ///< the listen loop returned
    std::atomic<std::uint64_t> next_response_id{0};
    int port = 0;
    bool started = false;
    bool stopped = false;

    [[nodiscard]] double sim_target(SteadyClock::time_point now) const {
        return std::chrono::duration<double>(now - start_wall).count() * options.time_scale;
    }

    // ---- simulation side ------------------------------------------------------------------

    /// The token listener: runs inside run_until(), under sim_mutex.
    void on_token(const sim::TokenEvent& e) {
        auto it = records.find(e.handle);
        if (it == records.end()) {
            return;  // aborted
        }
        RequestRecord& rec = it->second;
        std::shared_ptr<StreamState> stream = rec.stream;
        if (e.kind == sim::TokenEvent::Kind::kRejected) {
            ++stats.requests_rejected;
            {
                std::lock_guard<std::mutex> lock(stream->mutex);
                stream->rejected = true;
                stream->decided = true;
            }
            touched.push_back(std::move(stream));
            records.erase(it);
            return;
        }
        ReplicaMetrics& m = metrics.at(static_cast<std::size_t>(e.replica));
        if (rec.first_token_s < 0.0) {
            m.ttft_s.observe(e.time_s - rec.arrival_s);
            rec.first_token_s = e.time_s;
        } else {
            m.itl_s.observe(e.time_s - rec.last_token_s);
        }
        rec.last_token_s = e.time_s;
        rec.replica = e.replica;
        if (e.finished) {
            m.e2e_s.observe(e.time_s - rec.arrival_s);
            // vLLM: decode time / (tokens - 1); 0 for a one-token request.
            m.tpot_s.observe(e.generated > 1 ? (e.time_s - rec.first_token_s) / (e.generated - 1)
                                             : 0.0);
            m.finished_length += 1.0;
        }
        {
            std::lock_guard<std::mutex> lock(stream->mutex);
            stream->generated = e.generated;
            stream->finished = e.finished;
            stream->decided = true;
        }
        touched.push_back(std::move(stream));
        if (e.finished) {
            records.erase(it);
        }
    }

    /// Applies the NVML controls (when they changed) and the batch cap. Under sim_mutex.
    void apply_controls(const std::optional<std::vector<GpuControls>>& controls, int batch_cap) {
        if (controls) {
            for (int r = 0; r < simulator.replica_count(); ++r) {
                // A TP group runs at its lowest member's limit and slowest locked clock.
                double cap_w = std::numeric_limits<double>::infinity();
                double clock_mhz = 0.0;
                for (int k = 0; k < gpus_per_replica; ++k) {
                    const GpuControls& c =
                        (*controls)[static_cast<std::size_t>(r * gpus_per_replica + k)];
                    cap_w = std::min(cap_w, c.enforced_limit_w);
                    if (c.locked_max_mhz > 0.0) {
                        clock_mhz = clock_mhz > 0.0 ? std::min(clock_mhz, c.locked_max_mhz)
                                                    : c.locked_max_mhz;
                    }
                }
                const auto ri = static_cast<std::size_t>(r);
                if (cap_w != applied_cap_w[ri]) {
                    simulator.set_power_cap(r, cap_w);
                    applied_cap_w[ri] = cap_w;
                    PALS_LOG_INFO("sim-serve: replica {} power cap {:.1f} W per GPU", r,
                                  simulator.observe(r).power_cap_w);
                }
                if (clock_mhz != applied_clock_mhz[ri]) {
                    simulator.set_locked_clock(r, clock_mhz);
                    applied_clock_mhz[ri] = clock_mhz;
                    PALS_LOG_INFO("sim-serve: replica {} locked SM clock {:.0f} MHz (0: unlocked)",
                                  r, clock_mhz);
                }
            }
        }
        if (batch_cap != applied_batch_cap) {
            for (int r = 0; r < simulator.replica_count(); ++r) {
                simulator.set_batch_cap(r, batch_cap);
            }
            if (applied_batch_cap >= 0) {
                PALS_LOG_INFO("sim-serve: batch cap {}", batch_cap);
            }
            applied_batch_cap = batch_cap;
        }
    }

    /// Average power over the interval since the last report, from the energy counters.
    /// Under sim_mutex. Returns one reading per GPU of the node.
    std::vector<fake::ExternalReading> measure_power() {
        const double now_s = simulator.now();
        const double dt_s = now_s - last_report_sim_s;
        std::vector<fake::ExternalReading> readings;
        readings.reserve(static_cast<std::size_t>(gpu_count));
        for (int r = 0; r < simulator.replica_count(); ++r) {
            const auto ri = static_cast<std::size_t>(r);
            const sim::ReplicaObservation o = simulator.observe(r);
            const double replica_w = dt_s > 0.0 ? (o.energy_j - energy_at_report_j[ri]) / dt_s
                                                : o.power_w * gpus_per_replica;
            energy_at_report_j[ri] = o.energy_j;
            metrics[ri].power_w = replica_w;
            const double gpu_w = replica_w / gpus_per_replica;
            // An idle interval shows the idle clock, not the last step's.
            const double clock_mhz = gpu_w <= node.gpu.idle_power_w + kIdleToleranceW
                                         ? node.gpu.sm_clock_min_mhz
                                         : o.sm_clock_mhz;
            for (int k = 0; k < gpus_per_replica; ++k) {
                readings.push_back({gpu_w, clock_mhz});
            }
        }
        last_report_sim_s = now_s;
        return readings;
    }

    void tick() {
        // File I/O happens outside the simulator's lock.
        std::optional<std::vector<GpuControls>> controls;
        if (nvml) {
            controls = nvml->read_if_changed();
        }
        const int batch_cap = batch_cap_file ? batch_cap_file->read() : node.engine.max_num_seqs;
        std::optional<std::vector<fake::ExternalReading>> readings;
        std::vector<std::shared_ptr<StreamState>> wake;
        {
            std::lock_guard<std::mutex> lock(sim_mutex);
            apply_controls(controls, batch_cap);
            const SteadyClock::time_point now = SteadyClock::now();
            simulator.run_until(sim_target(now));
            ++stats.ticks;
            stats.sim_time_s = simulator.now();
            stats.requests_held = simulator.requests_held();
            stats.requests_finished_held = simulator.finished_requests().size();
            if (nvml) {
                stats.nvml_state_reads = nvml->state_reads();
            }
            // Every request submitted before this tick has arrived: it was dispatched (or
            // rejected, which on_token() saw).
            for (const std::size_t handle : undecided) {
                auto it = records.find(handle);
                if (it == records.end()) {
                    continue;
                }
                {
                    std::lock_guard<std::mutex> stream_lock(it->second.stream->mutex);
                    it->second.stream->decided = true;
                }
                touched.push_back(it->second.stream);
            }
            undecided.clear();
            if (now - last_report_wall >= options.report_period) {
                readings = measure_power();
                last_report_wall = now;
            }
            wake.swap(touched);
        }
        for (const auto& stream : wake) {
            stream->cv.notify_all();
        }
        if (nvml && readings) {
            const Status status = nvml->report(*readings);
            if (!status.is_ok() && !report_failed) {
                PALS_LOG_WARN("sim-serve: {}", status.message());
            }
            report_failed = !status.is_ok();
            if (status.is_ok()) {
                std::lock_guard<std::mutex> lock(sim_mutex);
                ++stats.nvml_reports;
            }
        }
    }

    void sim_loop() {
        SteadyClock::time_point next = SteadyClock::now();
        while (true) {
            try {
                tick();
            } catch (const std::exception& e) {  // nothing crosses a tick
                PALS_LOG_ERROR("sim-serve: simulation tick failed: {}", e.what());
            }
            next += options.tick_period;
            const SteadyClock::time_point now = SteadyClock::now();
            if (next < now) {
                next = now;  // behind (a slow tick): no burst of catch-up ticks
            }
            std::unique_lock<std::mutex> lock(wake_mutex);
            if (wake_cv.wait_until(lock, next, [this] { return stop_sim; })) {
                return;
            }
        }
    }

    // ---- HTTP side ------------------------------------------------------------------------

    struct Submitted {
        std::size_t handle = 0;
        std::shared_ptr<StreamState> stream;
    };

    Result<Submitted> submit(int input_tokens, int output_tokens) {
        std::lock_guard<std::mutex> lock(sim_mutex);
        if (stopping) {
            return Status::unavailable("the server is shutting down");
        }
        // The request arrives at its wall-clock instant in simulated time (never before one
        // already queued, as Simulator::submit does too).
        const double arrival_s =
            std::max({sim_target(SteadyClock::now()), simulator.now(), last_arrival_s});
        PALS_ASSIGN_OR_RETURN(std::size_t handle, simulator.submit({next_request_id++, arrival_s,
                                                                    input_tokens, output_tokens}));
        last_arrival_s = arrival_s;
        auto stream = std::make_shared<StreamState>();
        records.emplace(handle, RequestRecord{stream, arrival_s});
        undecided.push_back(handle);
        ++stats.requests_submitted;
        return Submitted{handle, std::move(stream)};
    }

    /// The client went away: the request leaves the simulator.
    void abort(std::size_t handle) {
        std::lock_guard<std::mutex> lock(sim_mutex);
        auto it = records.find(handle);
        if (it == records.end()) {
            return;  // finished, rejected or already aborted
        }
        simulator.abort(handle);
        const int replica = std::max(0, it->second.replica);
        metrics.at(static_cast<std::size_t>(replica)).finished_abort += 1.0;
        ++stats.requests_aborted;
        records.erase(it);
    }

    std::string metrics_text() const {
        std::vector<ReplicaMetrics> out;
        {
            std::lock_guard<std::mutex> lock(sim_mutex);
            out = metrics;
            for (int r = 0; r < simulator.replica_count(); ++r) {
                const sim::ReplicaObservation o = simulator.observe(r);
                ReplicaMetrics& m = out[static_cast<std::size_t>(r)];
                m.running = o.running;
                m.waiting = o.waiting;
                m.kv_cache_usage = o.kv_usage;
                m.prompt_tokens = o.prompt_tokens;
                m.generation_tokens = o.output_tokens;
                m.preemptions = static_cast<double>(o.preemptions);
                m.batch_cap = o.batch_cap;
                m.power_cap_w = o.power_cap_w;
            }
        }
        return render_vllm_metrics(model_name, out);
    }

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
        Result<Submitted> submitted = submit(g.prompt_tokens, max_tokens);
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
                abort(handle);
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
                abort(handle);
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
                    abort(handle);
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
            [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
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
            res.set_content(metrics_text(), "text/plain; version=0.0.4; charset=utf-8");
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

    /// Wakes every request waiting on the simulator, for stop().
    void close_streams() {
        std::vector<std::shared_ptr<StreamState>> streams;
        {
            std::lock_guard<std::mutex> lock(sim_mutex);
            stopping = true;
            for (auto& [handle, rec] : records) {
                {
                    std::lock_guard<std::mutex> stream_lock(rec.stream->mutex);
                    rec.stream->closed = true;
                }
                streams.push_back(rec.stream);
            }
        }
        for (const auto& s : streams) {
            s->cv.notify_all();
        }
    }
};

SimServer::SimServer(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}

SimServer::~SimServer() {
    stop();
}

Result<std::unique_ptr<SimServer>> SimServer::create(sim::NodeConfig node, SimServerOptions options,
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
    PALS_ASSIGN_OR_RETURN(sim::Simulator simulator, sim::Simulator::create(node, {}, slo));
    auto impl = std::make_unique<Impl>(node, std::move(options), std::move(simulator));
    Impl& s = *impl;
    s.model_name = s.options.served_model_name.empty() ? default_model_name(node.model.name)
                                                       : s.options.served_model_name;
    s.max_model_len = node.engine.max_model_len > 0            ? node.engine.max_model_len
                      : node.model.max_position_embeddings > 0 ? node.model.max_position_embeddings
                                                               : INT_MAX;
    s.gpus_per_replica = node.parallel.tp;
    s.gpu_count = node.replicas * node.parallel.tp;
    s.id_seed =
        static_cast<std::uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
    if (!s.options.fake_nvml_config_path.empty()) {
        PALS_ASSIGN_OR_RETURN(
            std::unique_ptr<NvmlCoupling> nvml,
            NvmlCoupling::open(s.options.fake_nvml_config_path, s.options.fake_nvml_state_path,
                               s.options.gpu_offset, s.gpu_count, node.gpu));
        s.nvml = std::move(nvml);
    }
    if (!s.options.batch_cap_path.empty()) {
        s.batch_cap_file.emplace(s.options.batch_cap_path, node.engine.max_num_seqs);
    }
    const auto replicas = static_cast<std::size_t>(s.simulator.replica_count());
    s.metrics.resize(replicas);
    s.energy_at_report_j.assign(replicas, 0.0);
    s.applied_cap_w.assign(replicas, std::numeric_limits<double>::quiet_NaN());
    s.applied_clock_mhz.assign(replicas, node.locked_clock_mhz);
    for (std::size_t r = 0; r < replicas; ++r) {
        s.metrics[r].power_w = node.gpu.idle_power_w * s.gpus_per_replica;
    }
    // Memory stays flat over hours of serving: ended requests are dropped.
    s.simulator.limit_history(s.options.max_finished_requests);
    Impl* raw = impl.get();
    s.simulator.set_token_listener([raw](const sim::TokenEvent& e) { raw->on_token(e); });
    return std::unique_ptr<SimServer>(new SimServer(std::move(impl)));
}

Status SimServer::start() {
    Impl& s = *m_impl;
    if (s.started) {
        return Status::invalid_argument("the server was already started");
    }
    s.routes();
    const int port =
        s.options.port == 0
            ? s.http.bind_to_any_port(s.options.host)
            : (s.http.bind_to_port(s.options.host, s.options.port) ? s.options.port : -1);
    if (port <= 0) {
        return Status::unavailable("cannot listen on " + s.options.host + ":" +
                                   std::to_string(s.options.port) +
                                   " (address in use or not available)");
    }
    // cpp-httplib listens with a backlog of 5; many clients connecting at once need more.
    s.http.raise_listen_backlog();
    s.port = port;
    if (s.nvml && (s.node.power_cap_w > 0.0 || s.node.locked_clock_mhz > 0.0)) {
        // --power-cap / --locked-clock at launch: set them where other processes see them.
        PALS_RETURN_IF_ERROR(s.nvml->set_controls(s.node.power_cap_w, s.node.locked_clock_mhz));
    }
    s.started = true;
    {
        std::lock_guard<std::mutex> lock(s.sim_mutex);
        s.start_wall = SteadyClock::now();
    }
    s.last_report_wall = s.start_wall;
    s.sim_thread = std::thread([&s] { s.sim_loop(); });
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
    s.close_streams();
    // httplib's stop() is a no-op until the listen loop runs: wait for it (start() did already,
    // unless the loop failed at once).
    while (!s.http.is_running() && !s.http_done.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    s.http.stop();
    if (s.http_thread.joinable()) {
        s.http_thread.join();
    }
    {
        std::lock_guard<std::mutex> lock(s.wake_mutex);
        s.stop_sim = true;
    }
    s.wake_cv.notify_all();
    if (s.sim_thread.joinable()) {
        s.sim_thread.join();
    }
    if (s.nvml) {
        // Idle from now on (other processes would see it after kExternalStaleS anyway).
        const std::vector<fake::ExternalReading> idle(
            static_cast<std::size_t>(s.gpu_count),
            {s.node.gpu.idle_power_w, s.node.gpu.sm_clock_min_mhz});
        const Status status = s.nvml->report(idle);
        if (!status.is_ok()) {
            PALS_LOG_WARN("sim-serve: {}", status.message());
        }
    }
}

const std::string& SimServer::served_model_name() const {
    return m_impl->model_name;
}

int SimServer::max_model_len() const {
    return m_impl->max_model_len;
}

int SimServer::gpu_count() const {
    return m_impl->gpu_count;
}

SimServerStats SimServer::stats() const {
    std::lock_guard<std::mutex> lock(m_impl->sim_mutex);
    return m_impl->stats;
}

}  // namespace pals::serve
