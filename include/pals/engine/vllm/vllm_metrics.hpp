#pragma once
/// @file vllm_metrics.hpp
/// @brief Turns a parsed vLLM /metrics exposition into an engine::EngineSnapshot (docs/vllm.md).
///
/// Accepts both generations of vLLM metric names and prefers the new one when both are present:
/// `vllm:kv_cache_usage_perc` over `vllm:gpu_cache_usage_perc`, `vllm:inter_token_latency_seconds`
/// over `vllm:time_per_output_token_seconds`. Where vLLM reports several label sets for a metric
/// (several `engine` DP ranks, several `finished_reason`s, several models) the values are summed,
/// bucket by bucket for histograms; the KV-cache fraction is averaged over the label sets instead.
/// Series that are not vLLM's (python_gc_*, process_*, http_*) and vLLM metrics PALS does not read
/// are ignored.
///
/// Thread-safety: free functions over value types; safe to call from any thread.

#include <string>
#include <string_view>

#include "pals/common/clock.hpp"
#include "pals/common/status.hpp"
#include "pals/engine/serving_engine.hpp"
#include "pals/engine/vllm/prometheus_text.hpp"

namespace pals::engine::vllm {

/// Metric names, new generation first (vLLM 0.11+), then the older ones still accepted.
inline constexpr std::string_view kRunningMetric = "vllm:num_requests_running";
inline constexpr std::string_view kWaitingMetric = "vllm:num_requests_waiting";
inline constexpr std::string_view kKvCacheUsageMetric = "vllm:kv_cache_usage_perc";
inline constexpr std::string_view kKvCacheUsageOldMetric = "vllm:gpu_cache_usage_perc";
inline constexpr std::string_view kPromptTokensMetric = "vllm:prompt_tokens_total";
inline constexpr std::string_view kGenerationTokensMetric = "vllm:generation_tokens_total";
inline constexpr std::string_view kRequestSuccessMetric = "vllm:request_success_total";
inline constexpr std::string_view kPreemptionsMetric = "vllm:num_preemptions_total";
inline constexpr std::string_view kTtftMetric = "vllm:time_to_first_token_seconds";
inline constexpr std::string_view kItlMetric = "vllm:inter_token_latency_seconds";
inline constexpr std::string_view kItlOldMetric = "vllm:time_per_output_token_seconds";
inline constexpr std::string_view kTpotMetric = "vllm:request_time_per_output_token_seconds";
inline constexpr std::string_view kE2eMetric = "vllm:e2e_request_latency_seconds";

/// Which series belong to the engine being read. Empty strings match every value.
struct VllmSeriesFilter {
    std::string model_name;  ///< keep only samples whose `model_name` label equals this
    std::string engine;      ///< keep only samples whose `engine` label (DP rank) equals this
};

/// Builds a snapshot taken at `time` from a parsed exposition. `batch_cap` is left 0 (vLLM does
/// not export it; VllmEngine fills in the cap it published). `vllm:request_time_per_output_token_
/// seconds` is optional (older servers lack it: the histogram is then empty, with vLLM's ITL
/// bounds); every other metric above is required, and its absence is kInvalidArgument naming it.
/// Histograms need a `le="+Inf"` bucket and the same bounds in every summed label set.
[[nodiscard]] Result<EngineSnapshot> snapshot_from_metrics(const ParsedMetrics& metrics,
                                                           const VllmSeriesFilter& filter,
                                                           Seconds time);

/// parse_prometheus_text() then snapshot_from_metrics().
[[nodiscard]] Result<EngineSnapshot> snapshot_from_text(std::string_view text,
                                                        const VllmSeriesFilter& filter,
                                                        Seconds time);

/// The histogram `family` (from its `_bucket`, `_sum` and `_count` series) summed over the label
/// sets that pass `filter`: buckets sorted by `le`, +Inf last. kNotFound if it has no buckets;
/// kInvalidArgument if it is malformed (no +Inf bucket, a bad `le`, bounds that differ between
/// label sets, decreasing cumulative counts).
[[nodiscard]] Result<CumulativeHistogram> histogram_from_metrics(const ParsedMetrics& metrics,
                                                                 std::string_view family,
                                                                 const VllmSeriesFilter& filter);

}  // namespace pals::engine::vllm
