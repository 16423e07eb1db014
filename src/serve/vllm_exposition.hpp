#pragma once
/// @file vllm_exposition.hpp
/// @brief The /metrics text of `pals sim-serve`: Prometheus text format 0.0.4 in vLLM V1's
/// names, types, labels (`engine`, `model_name`, sorted as prometheus_client sorts them) and
/// histogram buckets, one label set per replica, plus the simulator-only `pals_sim_*` gauges.
///
/// Thread-safety: free functions over value types.

#include <string>
#include <string_view>
#include <vector>

#include "pals/engine/serving_engine.hpp"

namespace pals::serve {

/// What one replica (vLLM engine) exposes. Latencies are simulated seconds.
struct ReplicaMetrics {
    int running = 0;
    int waiting = 0;
    double kv_cache_usage = 0.0;  ///< 0..1
    double prompt_tokens = 0.0;
    double generation_tokens = 0.0;
    double finished_length = 0.0;  ///< request_success_total{finished_reason="length"}
    double finished_abort = 0.0;   ///< {finished_reason="abort"}: clients that went away
    double preemptions = 0.0;
    engine::CumulativeHistogram ttft_s =
        engine::CumulativeHistogram::with_bounds(engine::vllm_ttft_buckets());
    engine::CumulativeHistogram itl_s =
        engine::CumulativeHistogram::with_bounds(engine::vllm_itl_buckets());
    engine::CumulativeHistogram tpot_s =
        engine::CumulativeHistogram::with_bounds(engine::vllm_itl_buckets());
    engine::CumulativeHistogram e2e_s =
        engine::CumulativeHistogram::with_bounds(engine::vllm_e2e_buckets());
    // Simulator-only gauges.
    int batch_cap = 0;
    int step_tokens = 0;       ///< per-step token budget in force
    double power_cap_w = 0.0;  ///< per GPU
    double power_w = 0.0;      ///< all GPUs of the replica
};

/// A float as prometheus_client writes it: `3.0`, `0.42`, `1.5e-05`, `NaN`, `+Inf`.
[[nodiscard]] std::string format_prometheus_float(double value);
/// A label value with `\`, `"` and newlines escaped.
[[nodiscard]] std::string escape_label_value(std::string_view value);

/// The whole exposition; replica i has `engine="i"`.
[[nodiscard]] std::string render_vllm_metrics(const std::string& model_name,
                                              const std::vector<ReplicaMetrics>& replicas);

}  // namespace pals::serve
