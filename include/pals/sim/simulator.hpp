#pragma once
/// @file simulator.hpp
/// @brief Discrete-event simulator of one LLM serving node: replicas of a vLLM-like engine
/// (continuous batching, chunked prefill, paged KV cache with preemption) on GPUs under power
/// caps (DESIGN.md 1.3).
///
/// Time is simulated seconds from 0. The simulator advances only when asked (run_until), so a
/// controller can observe and actuate between periods; run_to_completion() drains all requests.
/// Thread-safety: not thread-safe; one owner drives it.

#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pals/common/status.hpp"
#include "pals/model/model_spec.hpp"
#include "pals/sim/cost_model.hpp"
#include "pals/sim/gpu_physics.hpp"
#include "pals/sim/latency_histogram.hpp"
#include "pals/workload/workload.hpp"

namespace pals::sim {

/// The engine's launch settings (vLLM names).
struct EngineConfig {
    int max_num_seqs =
        1024;  ///< --max-num-seqs: the launch batch cap (vLLM's default on H100-class GPUs)
    int max_num_batched_tokens = 8192;  ///< --max-num-batched-tokens: token budget per step
    bool enable_chunked_prefill = true;
    int block_size = 16;  ///< KV-cache block size in tokens
    double gpu_memory_utilization = 0.9;
    int max_model_len = 0;                    ///< 0: the model's max_position_embeddings
    double activation_reserve_bytes = 1.5e9;  ///< per GPU: activations, CUDA graphs, workspace
};

/// How the node's front end spreads requests over its replicas.
enum class Router {
    kLeastLoaded,  ///< the replica with the fewest running + waiting requests
    kRoundRobin,   ///< each replica in turn
    kSessionHash,  ///< sticky: each request belongs to a session (popularity Zipf-distributed),
                   ///< and a session's requests all go to the replica its id hashes to
};

struct RouterConfig {
    Router mode = Router::kLeastLoaded;
    int sessions = 256;         ///< kSessionHash: distinct sessions
    double session_skew = 1.0;  ///< kSessionHash: Zipf exponent of session popularity
};

/// "least-loaded", "round-robin", "session-hash".
[[nodiscard]] std::string_view router_name(Router router);
[[nodiscard]] Result<Router> parse_router(std::string_view name);

/// A serving node: `replicas` copies of the model, each on `parallel.tp` GPUs.
struct NodeConfig {
    model::ModelSpec model;
    GpuSpec gpu;
    ParallelConfig parallel;
    int replicas = 1;
    EngineConfig engine;
    double power_cap_w = 0.0;       ///< per GPU; 0: the GPU's default limit
    double locked_clock_mhz = 0.0;  ///< 0: not locked
    RouterConfig router;
};

/// Per-request latency targets.
struct SloTargets {
    double ttft_s = 1.0;
    double tpot_s = 0.1;
};

/// Statistics over the saturated steady state of a closed-loop run (ML.ENERGY's window: from
/// the first pure-decode step with a non-empty queue until the queue empties).
struct SteadyStateReport {
    double start_s = 0.0;
    double duration_s = 0.0;
    double output_tokens = 0.0;
    double throughput_tok_s = 0.0;
    double avg_power_w = 0.0;  ///< all GPUs
    double j_per_token = 0.0;
    double avg_batch = 0.0;
    LatencySummary itl_s;
};

/// The outcome of a run. Energy and power cover all GPUs of the node, idle time included.
struct SimulationReport {
    std::uint64_t requests_total = 0;
    std::uint64_t requests_completed = 0;
    std::uint64_t requests_rejected = 0;  ///< longer than max_model_len or the KV cache
    std::uint64_t preemptions = 0;
    std::uint64_t steps = 0;
    std::uint64_t events = 0;  ///< steps + arrivals
    double output_tokens = 0.0;
    double prompt_tokens = 0.0;
    double duration_s = 0.0;
    double throughput_tok_s = 0.0;
    double energy_j = 0.0;
    double avg_power_w = 0.0;
    double tokens_per_joule = 0.0;
    double j_per_token = 0.0;
    double avg_batch = 0.0;         ///< time-weighted running sequences per replica
    double sm_clock_mhz_avg = 0.0;  ///< time-weighted over busy steps
    LatencySummary ttft_s;
    LatencySummary tpot_s;
    LatencySummary itl_s;
    LatencySummary e2e_s;
    double slo_attainment = 0.0;  ///< share of completed requests meeting both SLOs
    std::optional<SteadyStateReport> steady;
    double sim_wall_s = 0.0;  ///< wall time spent simulating
};

/// Counters and gauges of one replica, as an engine's /metrics and NVML would show them.
struct ReplicaObservation {
    double now_s = 0.0;
    int running = 0;
    int waiting = 0;
    double kv_usage = 0.0;          ///< fraction of KV blocks in use
    double energy_j = 0.0;          ///< cumulative, all GPUs of the replica
    double output_tokens = 0.0;     ///< cumulative
    double prompt_tokens = 0.0;     ///< cumulative, computed prefill tokens
    std::uint64_t completed = 0;    ///< cumulative
    std::uint64_t preemptions = 0;  ///< cumulative
    double power_w = 0.0;           ///< per GPU, of the last step (idle power when idle)
    double sm_clock_mhz = 0.0;      ///< of the last step
    unsigned clock_limits = 0;      ///< ClockLimit bits of the last step (0 when idle)
    bool busy = false;              ///< a step is running now
    double power_cap_w = 0.0;       ///< per GPU
    int batch_cap = 0;
    int step_tokens = 0;  ///< per-step token budget in force
    int gpus = 0;
};

/// Which per-replica latency distribution (cumulative since the start of the run).
enum class LatencyKind { kTtft, kItl, kTpot, kE2e };

/// A finished request's timings (seconds).
struct RequestTiming {
    std::uint64_t id = 0;
    int replica = 0;
    double arrival_s = 0.0;
    double first_token_s = 0.0;
    double finish_s = 0.0;
    int output_tokens = 0;

    [[nodiscard]] double ttft_s() const { return first_token_s - arrival_s; }
    /// Time per output token after the first (0 for a single token).
    [[nodiscard]] double tpot_s() const {
        return output_tokens > 1 ? (finish_s - first_token_s) / (output_tokens - 1) : 0.0;
    }
    /// Both SLOs met (a request violates when either is missed).
    [[nodiscard]] bool meets(const SloTargets& slo) const {
        return ttft_s() <= slo.ttft_s && tpot_s() <= slo.tpot_s;
    }
};

/// A token (or a rejection) of one request, reported as the simulator produces it (online use:
/// `pals sim-serve` streams tokens and builds vLLM's histograms from these).
struct TokenEvent {
    enum class Kind { kToken, kRejected };
    Kind kind = Kind::kToken;
    std::size_t handle = 0;  ///< index of the request (create() order, then submit() order)
    int replica = 0;
    double time_s = 0.0;
    int generated = 0;      ///< output tokens so far, this one included
    bool finished = false;  ///< this was the request's last token
};

class Simulator {
public:
    /// Validates the node (model fits in memory, layout) and the requests (sorted by arrival).
    [[nodiscard]] static Result<Simulator> create(const NodeConfig& node,
                                                  std::vector<workload::Request> requests,
                                                  SloTargets slo = {});
    Simulator(Simulator&&) noexcept;
    /// A deep copy of the whole state, to explore "what if" from here (the window oracle).
    [[nodiscard]] Simulator clone() const;
    Simulator& operator=(Simulator&&) noexcept;
    ~Simulator();

    /// Power cap of every GPU of `replica` (W per GPU, clamped to the GPU's range), from the
    /// next step on.
    void set_power_cap(int replica, double power_cap_w);
    /// Batch cap (max running sequences) of `replica`, at most the launch max_num_seqs. Running
    /// sequences are never evicted: a lower cap only stops admissions until they drain.
    void set_batch_cap(int replica, int batch_cap);
    /// Per-step token budget of `replica` (the tokens one step may schedule), clamped to
    /// [1, max_num_batched_tokens]; 0 restores max_num_batched_tokens. Never below the running
    /// batch when scheduled (each running request keeps its token), as the PALS vLLM plugin.
    void set_step_tokens(int replica, int tokens);
    /// Locks the SM clock of `replica`'s GPUs (0 unlocks).
    void set_locked_clock(int replica, double clock_mhz);

    /// Adds a request online; it arrives at max(request.arrival_s, now()) (never before a request
    /// already queued). Returns its handle for abort() and TokenEvent. kInvalidArgument unless
    /// input_tokens and output_tokens are >= 1.
    [[nodiscard]] Result<std::size_t> submit(workload::Request request);
    /// Drops a request (the client went away): out of the queue at once; a running request frees
    /// its KV blocks at the end of the step in flight, without another token. No effect once it
    /// has finished, been rejected or aborted. Aborted requests are not counted as finished.
    void abort(std::size_t handle);
    /// Called for every token and rejection from now on (empty: none). Runs inside run_until().
    void set_token_listener(std::function<void(const TokenEvent&)> listener);

    /// Advances simulated time to `t_s` (no-op if already there).
    void run_until(double t_s);
    /// Runs until every request has finished or been rejected.
    void run_to_completion();
    [[nodiscard]] bool done() const;
    [[nodiscard]] double now() const;
    [[nodiscard]] int replica_count() const;
    [[nodiscard]] ReplicaObservation observe(int replica) const;
    /// Latencies observed so far on `replica` (ITL: one entry per token gap).
    [[nodiscard]] const LatencyHistogram& latency(int replica, LatencyKind kind) const;
    /// Timings of requests finished so far, in completion order (after limit_history(n): the
    /// newest n to 2n of them).
    [[nodiscard]] const std::vector<RequestTiming>& finished_requests() const;
    /// For a long-running online simulation (`pals sim-serve`): memory stays flat instead of
    /// growing with every request served. Requests that ended and that no replica refers to any
    /// more are dropped (in batches of 1024; their handles are never reused, abort() ignores
    /// them) and only the newest `max_finished` .. 2 * `max_finished` finished timings are kept,
    /// so report()'s latency/SLO figures cover those. 0 (the default) keeps everything.
    void limit_history(std::size_t max_finished);
    /// Requests whose state is held (all of them, unless limit_history() drops ended ones).
    [[nodiscard]] std::size_t requests_held() const;
    [[nodiscard]] SimulationReport report() const;
    [[nodiscard]] const NodeConfig& node() const;

private:
    struct Impl;
    explicit Simulator(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> m_impl;
};

}  // namespace pals::sim
