#pragma once
/// @file loadgen.hpp
/// @brief `pals loadgen`: replays a trace or synthetic arrivals against any OpenAI-compatible
/// endpoint (vLLM, SGLang, `pals sim-serve`, ...) with streaming requests, and measures TTFT,
/// TPOT, ITL, E2EL and goodput exactly as `vllm bench serve` defines them (docs/loadgen.md).
///
/// Pieces, each usable alone:
/// - ClientConfig / RequestSender: one streamed request, timed on the injected
///   clock, every failure recorded in the outcome (never thrown).
/// - vllm_arrival_times / build_load: the arrival process (trace replay, vLLM's gamma process,
///   closed batch).
/// - run_load: sends every request at its arrival time, many in flight at once.
/// - format_*: vLLM's "Serving Benchmark Result" table, its result JSON, per-request JSONL.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pals/common/clock.hpp"
#include "pals/common/status.hpp"
#include "pals/common/url.hpp"
#include "pals/loadgen/metrics.hpp"
#include "pals/loadgen/sse_parser.hpp"
#include "pals/workload/workload.hpp"

namespace pals::loadgen {

/// Which request and chunk format an endpoint speaks.
enum class EndpointKind {
    kCompletions,      ///< /v1/completions: prompt = token ids, `max_tokens`, `choices[].text`
    kChatCompletions,  ///< /v1/chat/completions: user message, `max_completion_tokens`, deltas
};

/// Everything a RequestSender needs.
struct ClientConfig {
    Url url;  ///< the server (pals::Url: scheme, host, port, path prefix)
    std::string endpoint_path = "/v1/completions";  ///< appended to url.path_prefix
    EndpointKind kind = EndpointKind::kCompletions;
    std::string model;
    std::string api_key;     ///< sent as `Authorization: Bearer <key>` when not empty
    bool ignore_eos = true;  ///< vLLM/SGLang extension: generate exactly max_tokens
    /// A JSON object whose fields are merged into every request body (they win over ours).
    std::string extra_body_json;
    /// Fail a request that has not finished after this long (and any read that stalls as
    /// long). Without it a read may stall for kDefaultReadTimeoutS (vLLM's aiohttp: 6 h).
    std::optional<double> request_timeout_s;
    /// Seed of the synthetic prompts (token ids / words), mixed with each request's id.
    std::uint64_t prompt_seed = 0;
};

/// Default per-read timeout without --request-timeout (vLLM's AIOHTTP_TIMEOUT).
inline constexpr double kDefaultReadTimeoutS = 6.0 * 3600.0;
/// Connect timeout of every request.
inline constexpr double kConnectTimeoutS = 10.0;

/// "/v1/chat/completions" (any path ending in "chat/completions") -> kChatCompletions, every
/// other path -> kCompletions.
[[nodiscard]] EndpointKind endpoint_kind_for(std::string_view endpoint_path);

/// Sends one streamed request and times it (vLLM's `async_request_openai_completions` /
/// `async_request_openai_chat_completions`). Each send() opens its own connection, so the TCP
/// connect (sub-millisecond on a LAN) is inside TTFT.
/// Thread-safety: send() is const and may be called from many threads at once.
class RequestSender {
public:
    /// Validates the config (extra body must be a JSON object, model not empty).
    [[nodiscard]] static Result<RequestSender> create(ClientConfig config);

    /// The JSON body for `request` (stream, stream_options.include_usage, ignore_eos, extra).
    [[nodiscard]] std::string build_body(const workload::Request& request) const;

    /// Sends `request` now and returns its outcome; `clock` times it (send_s and every chunk are
    /// clock.now() values; the runner makes send_s relative to the run's start). Never throws:
    /// connect errors, non-200 answers (with the body's error message), in-band error events,
    /// a stream without `[DONE]`, and timeouts become `success = false` with `error` set.
    [[nodiscard]] RequestOutcome send(const workload::Request& request, const Clock& clock) const;

    [[nodiscard]] const ClientConfig& config() const { return m_config; }

private:
    explicit RequestSender(ClientConfig config) : m_config(std::move(config)) {}
    ClientConfig m_config;
};

/// `GET /v1/models` and the first model's id (what `vllm bench serve` uses without --model).
/// kUnavailable when the server cannot be reached; kNotFound when it answers without a model.
[[nodiscard]] Result<std::string> fetch_first_model(const Url& url, const std::string& api_key);

/// Checks that something accepts connections at `url` (kUnavailable with the reason if not).
[[nodiscard]] Status check_reachable(const Url& url);

/// vLLM's `get_request()` arrival times for `n` requests at `rate_rps` (finite, > 0): each of the
/// n delays is gamma(shape = burstiness, scale = 1 / (rate * burstiness)), the delays are
/// accumulated (so the first request also waits one gap), then all are rescaled so the last
/// arrival is exactly n / rate. Seeded with `seed` (std::mt19937_64, not numpy's generator, so
/// the values differ from vLLM's while the distribution is the same).
[[nodiscard]] std::vector<double> vllm_arrival_times(std::size_t n, double rate_rps,
                                                     double burstiness, std::uint64_t seed);

/// The requests to send: workload::build_workload(spec), except that synthetic arrivals are
/// replaced by vllm_arrival_times() at rate_rps * rate_scale / time_scale (build_workload's
/// process starts at 0 and does not rescale). A synthetic spec with an infinite rate becomes a
/// closed batch (all at t = 0), as `--request-rate inf` does in vLLM.
[[nodiscard]] Result<std::vector<workload::Request>> build_load(workload::WorkloadSpec spec);

/// How requests are sent.
struct RunOptions {
    /// At most this many requests in flight (vLLM's client semaphore); nullopt: unbounded.
    /// A request waiting for a slot is sent (and its TTFT starts) when it gets one.
    std::optional<int> max_concurrency;
    /// Called after each request finishes with (finished, total), from worker threads, one call
    /// at a time.
    std::function<void(std::size_t finished, std::size_t total)> on_progress;
    /// When set (from any thread), no further request is sent; those in flight finish. The
    /// outcomes of requests never sent keep error "not sent". Not owned; may be null.
    const std::atomic<bool>* stop = nullptr;
};

/// Without max_concurrency, at most this many requests are in flight (one thread each); more
/// wait for a slot and a warning is logged once.
inline constexpr int kMaxInFlight = 4096;

/// The outcome of a run.
struct RunResult {
    std::vector<RequestOutcome> outcomes;  ///< in the order of the requests given
    double duration_s = 0.0;  ///< from the start of dispatch until the last request finished
};

/// Sends each request at clock start + arrival_s (sorted or not), each on a worker thread from
/// a pool that grows to the number in flight, and waits for all to finish.
[[nodiscard]] Result<RunResult> run_load(const RequestSender& sender,
                                         const std::vector<workload::Request>& requests,
                                         const RunOptions& options, Clock& clock);

/// Descriptive fields of a run, for the reports.
struct RunInfo {
    std::string model;
    std::string base_url;
    std::string endpoint;
    std::size_t num_prompts = 0;
    std::optional<double> request_rate;  ///< nullopt: "inf" (batch) or trace replay
    std::string arrival;                 ///< "trace", "poisson/gamma", "batch"
    double burstiness = 1.0;
    std::optional<int> max_concurrency;
};

/// vLLM's "Serving Benchmark Result" table (same labels and layout), plus "SLO attainment (%)"
/// with goodput SLOs and a count of failures by error message.
[[nodiscard]] std::string format_result_table(const BenchmarkMetrics& metrics,
                                              const MetricsConfig& config, const RunInfo& info,
                                              const std::vector<RequestOutcome>& outcomes);

/// vLLM's result JSON (same field names: completed, failed, duration, request_throughput,
/// request_goodput, ..., mean_ttft_ms, median_ttft_ms, std_ttft_ms, p99_ttft_ms, ...) plus
/// slo_attainment. `detailed` adds vLLM's per-request lists (input_lens, output_lens, ttfts,
/// itls, errors), as its --save-detailed does. Pretty-printed, ending in a newline.
[[nodiscard]] std::string format_result_json(const BenchmarkMetrics& metrics,
                                             const MetricsConfig& config, const RunInfo& info,
                                             const std::vector<RequestOutcome>& outcomes,
                                             bool detailed);

/// One JSON object per line per request: id, arrival_s, send_s, success, error, input_tokens,
/// requested_input_tokens, output_tokens, requested_output_tokens, ttft_s, tpot_s, e2el_s, itl_s.
[[nodiscard]] std::string format_requests_jsonl(const std::vector<RequestOutcome>& outcomes);

}  // namespace pals::loadgen
