#pragma once
/// @file serving_engine.hpp
/// @brief The serving-engine interface (DESIGN.md 1.2): what the profiler and the controller
/// read from an inference engine and what they set on it: the batch cap and the per-step token
/// budget. Implementations:
/// the simulator's engine (SimulatedNode) and vLLM through its /metrics and plugin (later).
///
/// Readings are cumulative, as Prometheus exposes them; a window is the difference of two
/// snapshots (EngineWindow), bucket by bucket for histograms, so a real engine and the simulator
/// are read the same way.

#include <string>
#include <string_view>
#include <vector>

#include "pals/common/clock.hpp"
#include "pals/common/status.hpp"

namespace pals::engine {

/// A cumulative histogram in Prometheus' form: `upper_bounds` (ascending, +inf last) and the
/// number of observations <= each bound.
struct CumulativeHistogram {
    std::vector<double> upper_bounds;
    std::vector<double> cumulative_counts;
    double sum = 0.0;
    double count = 0.0;

    /// Empty histogram with these finite bounds (+inf is appended).
    [[nodiscard]] static CumulativeHistogram with_bounds(std::vector<double> bounds);
    /// Adds `n` observations of `value`.
    void observe(double value, double n = 1.0);
    /// this - earlier, bucket by bucket. kInvalidArgument if the bounds differ; a decrease (an
    /// engine restart) returns this histogram whole, as Prometheus' increase() treats resets.
    [[nodiscard]] Result<CumulativeHistogram> minus(const CumulativeHistogram& earlier) const;
    /// The q-quantile by linear interpolation inside the bucket (Prometheus'
    /// histogram_quantile); NaN when empty; the last finite bound when it falls in +inf.
    [[nodiscard]] double quantile(double q) const;
    [[nodiscard]] double mean() const { return count > 0.0 ? sum / count : 0.0; }
    /// The share of observations above `threshold`, interpolating linearly inside its bucket
    /// as quantile() does (Prometheus' histogram_fraction, complemented); NaN when empty.
    [[nodiscard]] double share_above(double threshold) const;
};

/// vLLM's bucket bounds (seconds) for its latency histograms (v0.11).
[[nodiscard]] std::vector<double> vllm_ttft_buckets();
[[nodiscard]] std::vector<double> vllm_itl_buckets();
[[nodiscard]] std::vector<double> vllm_e2e_buckets();

/// The engine's own account of the batch cap it enforces (vLLM: the acknowledgement file the
/// PALS scheduler writes beside the cap file, docs/vllm.md), and of the per-step token budget
/// (the same record beside the step-token file, in tokens). Engines that give none (the
/// simulator's) leave `state` at kNotReported.
struct BatchCapAck {
    enum class State {
        kNotReported,  ///< this engine has no acknowledgement channel
        kMissing,      ///< none found (or unreadable, malformed): the plugin is not running
        kStale,        ///< found, but not renewed lately: the engine stopped answering
        kFresh,        ///< found and renewed lately
    };
    State state = State::kNotReported;
    int applied = 0;     ///< the batch cap the engine enforces (kStale, kFresh)
    int requested = 0;   ///< the cap it read from PALS's file (0: none)
    int launch = 0;      ///< its launch max_num_seqs (0: unknown)
    double age_s = 0.0;  ///< since it was last renewed, as far as known
    std::string source;  ///< where it was read (for messages)
};

/// Whether an engine applies the batch cap PALS requests, from one snapshot.
enum class BatchCapCheck {
    kUnchecked,  ///< no cap requested, or the engine reports nothing
    kOk,         ///< acknowledged: requested and applied as PALS asked
    kMismatch,   ///< acknowledged, but another cap read or applied
    kMissing,    ///< a cap is requested and no acknowledgement exists
    kStale,      ///< a cap is requested and the acknowledgement is not renewed
};

/// One reading of an engine. Counters and histograms are cumulative since the engine started.
struct EngineSnapshot {
    Seconds time{0.0};
    int running = 0;              ///< sequences in the running batch (gauge)
    int waiting = 0;              ///< requests queued (gauge)
    double kv_cache_usage = 0.0;  ///< 0..1 (gauge)
    int batch_cap = 0;            ///< the batch cap in force (as PALS last set it)
    /// True once PALS has published a batch cap the engine is asked to apply (before that the
    /// engine runs at its launch value and nothing is checked).
    bool batch_cap_requested = false;
    BatchCapAck batch_cap_ack;  ///< what the engine says it applies
    /// The per-step token budget in force (vLLM's max_num_scheduled_tokens, as PALS last set
    /// it, else the launch value); 0 when the engine has no such knob (max_step_tokens() == 0).
    int step_tokens = 0;
    /// What the engine says it applies as the step-token budget (the same record as the batch
    /// cap's, in tokens; kNotReported for engines without an acknowledgement channel).
    BatchCapAck step_tokens_ack;
    double prompt_tokens = 0.0;      ///< counter
    double generation_tokens = 0.0;  ///< counter
    double requests_finished = 0.0;  ///< counter
    double preemptions = 0.0;        ///< counter
    CumulativeHistogram ttft_s;      ///< time to first token per request
    CumulativeHistogram itl_s;       ///< gaps between output tokens
    CumulativeHistogram tpot_s;      ///< per-request mean time per output token
    CumulativeHistogram e2e_s;       ///< request latency
};

/// What happened between two snapshots.
struct EngineWindow {
    double duration_s = 0.0;
    double prompt_tokens = 0.0;
    double generation_tokens = 0.0;
    double requests_finished = 0.0;
    double preemptions = 0.0;
    CumulativeHistogram ttft_s;
    CumulativeHistogram itl_s;
    CumulativeHistogram tpot_s;
    CumulativeHistogram e2e_s;
    int running = 0;  ///< at the end of the window
    int waiting = 0;

    [[nodiscard]] double generation_tok_s() const {
        return duration_s > 0 ? generation_tokens / duration_s : 0.0;
    }
};

/// Compares the cap PALS requests (`batch_cap`, when `batch_cap_requested`) with the engine's
/// acknowledgement: kOk when the engine read that cap and applies min(cap, its launch value).
[[nodiscard]] BatchCapCheck check_batch_cap(const EngineSnapshot& snapshot);
/// "unchecked", "ok", "mismatch", "missing", "stale" (the API's batch_cap_ack values).
[[nodiscard]] std::string_view to_string(BatchCapCheck check);

/// later - earlier. Counters that decreased (a restart) count from zero.
[[nodiscard]] Result<EngineWindow> window_between(const EngineSnapshot& earlier,
                                                  const EngineSnapshot& later);

/// One serving engine (one replica: a TP/EP group of GPUs).
/// Thread-safety: not thread-safe; one owner calls it.
class ServingEngine {
public:
    virtual ~ServingEngine() = default;
    [[nodiscard]] virtual std::string_view engine_name() const = 0;
    /// Reads the engine's counters, gauges and histograms.
    [[nodiscard]] virtual Result<EngineSnapshot> snapshot() = 0;
    /// The largest batch cap PALS may set: the launch --max-num-seqs (the batch cap can only go
    /// below it).
    [[nodiscard]] virtual int max_batch_cap() const = 0;
    /// Sets the batch cap, clamped to [1, max_batch_cap()]. The engine never evicts running
    /// sequences for it: they drain.
    [[nodiscard]] virtual Status set_batch_cap(int batch_cap) = 0;
    /// Republishes the batch cap and step-token budget in force, so that an engine whose
    /// settings expire (the vLLM plugin drops a file not refreshed for a few periods: a daemon
    /// that is gone) keeps them. The controller calls it every period; engines without expiry need
    /// not override it.
    [[nodiscard]] virtual Status refresh_controls() { return Status::ok(); }
    /// The largest per-step token budget PALS may set: the launch --max-num-batched-tokens;
    /// 0 when the engine has no per-step token budget to set (then set_step_tokens() is never
    /// called).
    [[nodiscard]] virtual int max_step_tokens() const { return 0; }
    /// Sets the per-step token budget (the prompt and decode tokens one engine step may
    /// schedule: vLLM's max_num_scheduled_tokens), clamped to [1, max_step_tokens()]; 0
    /// restores the launch value. A lower budget splits long prompts into smaller chunks, so
    /// that the running requests' next tokens wait less behind a prefill (lower TPOT, later
    /// first tokens). The engine never lets it fall below its running batch (each running
    /// request keeps a token per step).
    [[nodiscard]] virtual Status set_step_tokens(int tokens) {
        (void)tokens;
        return Status::invalid_argument("this engine has no per-step token budget");
    }
    /// Indices of the GPUs (in the node's GpuBackend) this engine runs on.
    [[nodiscard]] virtual std::vector<int> gpus() const = 0;
};

}  // namespace pals::engine
