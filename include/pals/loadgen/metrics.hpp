#pragma once
/// @file metrics.hpp
/// @brief Per-request outcomes of a load-generator run and the aggregate metrics, computed
/// exactly as `vllm bench serve` does (`calculate_metrics` in vllm/benchmarks/serve.py; summary
/// in docs/research/integration.md §3.2 and docs/loadgen.md).
///
/// Units: per-request times are seconds (`_s`); aggregate latencies are milliseconds (`_ms`),
/// as vLLM reports them. Thread-safety: all functions are pure and thread-safe.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pals/common/status.hpp"

namespace pals::loadgen {

/// What happened to one request (vLLM's `RequestFuncOutput`).
struct RequestOutcome {
    std::uint64_t id = 0;    ///< the workload request's id
    double arrival_s = 0.0;  ///< scheduled arrival, seconds from the run's start
    double send_s = 0.0;     ///< when it was sent, seconds from the run's start
    bool success = false;
    std::string error;                ///< why it failed (empty on success)
    int requested_input_tokens = 0;   ///< prompt length the workload asked for
    int requested_output_tokens = 0;  ///< max_tokens / max_completion_tokens sent
    /// Prompt tokens counted in the metrics: `usage.prompt_tokens` when the server reported it,
    /// else requested_input_tokens.
    int input_tokens = 0;
    /// `usage.completion_tokens`, else the number of choice-bearing chunks; 0 on failure.
    int output_tokens = 0;
    double ttft_s = 0.0;        ///< first choice-bearing chunk - send time (0 on failure)
    std::vector<double> itl_s;  ///< gaps between consecutive choice-bearing chunks
    double e2el_s = 0.0;        ///< last chunk - send time (vLLM's `latency`)
};

/// Per-request TPOT (seconds): (e2el - ttft) / (output_tokens - 1) when output_tokens > 1,
/// nullopt otherwise (such requests count as TPOT 0 for goodput, and are left out of the TPOT
/// statistics).
[[nodiscard]] std::optional<double> request_tpot_s(const RequestOutcome& outcome);

/// The latency metrics vLLM can report percentiles for (`--percentile-metrics`).
enum class LatencyMetric { kTtft, kTpot, kItl, kE2el };

/// "ttft", "tpot", "itl", "e2el".
[[nodiscard]] std::string_view metric_name(LatencyMetric metric);

/// Parses a comma-separated list such as "ttft,tpot,itl" (vLLM's default). Errors name the
/// unknown entry; duplicates are dropped; the order given is kept.
[[nodiscard]] Result<std::vector<LatencyMetric>> parse_percentile_metrics(std::string_view text);

/// Parses a comma-separated list of percentiles such as "50,90,99.9", each in [0, 100].
[[nodiscard]] Result<std::vector<double>> parse_metric_percentiles(std::string_view text);

/// Goodput SLOs in milliseconds (`--goodput ttft:<ms> tpot:<ms> e2el:<ms>`); unset ones do not
/// constrain. A request is good when every set SLO holds (value <= SLO).
struct GoodputSlo {
    std::optional<double> ttft_ms;
    std::optional<double> tpot_ms;
    std::optional<double> e2el_ms;

    [[nodiscard]] bool empty() const { return !ttft_ms && !tpot_ms && !e2el_ms; }
};

/// Parses "KEY:MS" items (each item may also hold several, comma-separated). Only the keys
/// ttft, tpot and e2el are allowed, values must be finite and >= 0.
[[nodiscard]] Result<GoodputSlo> parse_goodput(const std::vector<std::string>& items);

/// True when a *successful* request meets every SLO in `slo` (TPOT 0 when output <= 1).
[[nodiscard]] bool is_good_request(const RequestOutcome& outcome, const GoodputSlo& slo);

/// numpy.percentile with the default linear interpolation; `p` in [0, 100]. 0 when empty (vLLM
/// computes `np.percentile(values or 0, p)`).
[[nodiscard]] double percentile(std::vector<double> values, double p);
/// Arithmetic mean; 0 when empty.
[[nodiscard]] double mean(const std::vector<double>& values);
/// Population standard deviation (numpy's default ddof = 0); 0 when empty.
[[nodiscard]] double stddev(const std::vector<double>& values);
/// numpy.median; 0 when empty.
[[nodiscard]] double median(std::vector<double> values);

/// Mean, median, standard deviation and selected percentiles of one latency metric, in ms.
struct LatencyStats {
    double mean_ms = 0.0;
    double median_ms = 0.0;
    double std_ms = 0.0;
    std::vector<std::pair<double, double>> percentiles_ms;  ///< (percentile, value)
};

/// Summarises `values_s` (seconds) in milliseconds.
[[nodiscard]] LatencyStats summarize_latency(const std::vector<double>& values_s,
                                             const std::vector<double>& percentiles);

/// Peak values over 1-second buckets from the first send to the last end (vLLM's
/// `max_output_tokens_per_s` and `max_concurrent_requests`). Each choice-bearing chunk counts as
/// one token at send + ttft + sum(itl[..i]); a request counts as concurrent in every bucket from
/// its send to its end, both included. Only successful requests count.
struct PeakStats {
    double max_output_tokens_per_s = 0.0;
    int max_concurrent_requests = 0;
};
[[nodiscard]] PeakStats compute_peaks(const std::vector<RequestOutcome>& outcomes);

/// What the metrics are asked for.
struct MetricsConfig {
    std::vector<LatencyMetric> percentile_metrics = {LatencyMetric::kTtft, LatencyMetric::kTpot,
                                                     LatencyMetric::kItl};
    std::vector<double> percentiles = {99.0};
    GoodputSlo goodput;
};

/// The aggregate result of a run (vLLM's `BenchmarkMetrics`).
struct BenchmarkMetrics {
    int completed = 0;
    int failed = 0;
    std::int64_t total_input = 0;   ///< prompt tokens of completed requests
    std::int64_t total_output = 0;  ///< output tokens of completed requests
    double duration_s = 0.0;
    double request_throughput = 0.0;        ///< completed / duration (req/s)
    std::optional<double> request_goodput;  ///< good / duration (req/s), with goodput SLOs only
    std::optional<double> slo_attainment;   ///< good / completed, with goodput SLOs only
    int good_completed = 0;
    double output_throughput = 0.0;       ///< total_output / duration (tok/s)
    double total_token_throughput = 0.0;  ///< (total_input + total_output) / duration (tok/s)
    double max_output_tokens_per_s = 0.0;
    int max_concurrent_requests = 0;
    LatencyStats ttft;
    LatencyStats tpot;  ///< over requests with output > 1
    LatencyStats itl;   ///< over every gap of every completed request
    LatencyStats e2el;

    [[nodiscard]] const LatencyStats& stats(LatencyMetric metric) const;
};

/// Computes every aggregate from the outcomes of one run that lasted `duration_s` (> 0).
[[nodiscard]] BenchmarkMetrics compute_metrics(const std::vector<RequestOutcome>& outcomes,
                                               double duration_s, const MetricsConfig& config);

}  // namespace pals::loadgen
