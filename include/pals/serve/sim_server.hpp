#pragma once
/// @file sim_server.hpp
/// @brief `pals sim-serve`: an OpenAI-compatible HTTP server (what `vllm serve` exposes) whose
/// tokens come from the discrete-event simulator running in real time (docs/sim-serve.md).
///
/// Endpoints: GET /health, GET /v1/models, POST /v1/completions, POST /v1/chat/completions
/// (streaming as vLLM: `data: <json>\n\n` per token, `data: [DONE]\n\n`), GET /metrics (vLLM V1
/// metric names, one `engine` label set per replica, plus `pals_sim_*` gauges).
///
/// Coupling with other processes, as a real vLLM node would be coupled:
/// - the simulated GPUs are visible through the fake libnvidia-ml.so.1: the server reads the
///   power limits and locked clocks that other processes set in the fake NVML state file and
///   reports each GPU's power there (load kind "external");
/// - the batch cap is read from the file the PALS vLLM plugin reads (8 bytes, little-endian
///   uint64), once per tick, and acknowledged as the plugin does (`<file>.ack`, 40 bytes, on a
///   change and every second; BatchCapMode for engines that do not); so is the per-step token
///   budget, from `<file>.step_tokens` (the plugin's default path), never applied below the
///   batch cap, as the plugin does.
///
/// Time: a simulation thread advances the simulator to (wall - start) * time_scale every tick.
/// Latencies in /metrics are simulated seconds; power is simulated watts.
///
/// Thread-safety: create(), start() and stop() from one thread. HTTP handlers run on the
/// server's worker threads; the simulator is owned by the simulation thread and guarded by one
/// mutex that handlers take briefly (submit, abort, metrics).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "pals/common/status.hpp"
#include "pals/sim/simulator.hpp"

namespace pals::serve {

/// How the simulated engine treats the batch-cap file: as vLLM with the PALS scheduler, or as
/// a misconfigured engine (to test that PALS reports one).
enum class BatchCapMode {
    kApply,   ///< apply the cap and acknowledge it (`<file>.ack`), as the PALS scheduler does
    kIgnore,  ///< read and acknowledge it, but run at max_num_seqs: an engine ignoring the cap
    kNone,    ///< neither read nor acknowledge it: vLLM without the PALS scheduler
};

/// Options of a SimServer. Durations are wall time.
struct SimServerOptions {
    std::string host = "127.0.0.1";
    int port = 0;  ///< 0: any free port (see SimServer::port())
    /// The model name clients must send (and /v1/models lists); empty: the model config's name.
    std::string served_model_name;
    /// Simulated seconds per wall second (> 0). Only 1 makes the fake NVML energy counters,
    /// which integrate the reported power over wall time, meaningful for `pals run`.
    double time_scale = 1.0;
    /// How often the simulation thread advances the simulator (token timing resolution).
    std::chrono::microseconds tick_period{2000};
    /// Smallest wall interval between two power reports to the fake NVML state file.
    std::chrono::microseconds report_period{50000};
    /// max_tokens of a request that gives neither max_tokens nor max_completion_tokens.
    int default_max_tokens = 128;
    /// Fake NVML configuration JSON (its load kind must be "external"); empty: no NVML coupling
    /// (caps and clocks stay those of the node config, no power is reported).
    std::string fake_nvml_config_path;
    /// Fake NVML state file (shared with other processes through $PALS_FAKE_NVML_STATE).
    std::string fake_nvml_state_path;
    /// Index of this node's first GPU among the fake NVML GPUs (replica r, TP rank k is GPU
    /// gpu_offset + r * tp + k).
    int gpu_offset = 0;
    /// The batch-cap file (8 bytes, little-endian uint64; 0, absent or malformed: the launch
    /// max_num_seqs); empty: none.
    std::string batch_cap_path;
    /// What the engine does with the batch-cap file (with a batch_cap_path), and with the
    /// step-token file beside it (batch_cap_path + ".step_tokens").
    BatchCapMode batch_cap_mode = BatchCapMode::kApply;
    /// Worker threads of the HTTP server: the most concurrent connections (streams) served.
    int max_connections = 512;
    /// Larger request bodies are refused with 400.
    std::size_t max_body_bytes = std::size_t{32} * 1024 * 1024;
    /// The request line and headers must arrive within this (whole request; slow clients are
    /// disconnected); also the per-read timeout.
    std::chrono::milliseconds header_timeout{5000};
    /// Finished requests whose timings the simulator keeps (the newest N to 2N); the state of
    /// requests that ended is dropped, so memory stays flat however long the server runs
    /// (>= 1).
    std::size_t max_finished_requests = 1000;
};

/// Counters of the simulation thread (for tests and the measured numbers in the docs).
struct SimServerStats {
    std::uint64_t ticks = 0;             ///< simulator advances
    std::uint64_t nvml_reports = 0;      ///< power reports written to the fake NVML state
    std::uint64_t nvml_state_reads = 0;  ///< fake NVML state files parsed (changed on disk)
    std::uint64_t requests_submitted = 0;
    std::uint64_t requests_rejected = 0;
    std::uint64_t requests_aborted = 0;        ///< clients that went away before the last token
    std::uint64_t requests_held = 0;           ///< request states the simulator holds now
    std::uint64_t requests_finished_held = 0;  ///< finished timings the simulator holds now
    double sim_time_s = 0.0;                   ///< simulated time reached
};

/// The server. Owns the simulator, the simulation thread and the HTTP server.
class SimServer {
public:
    /// Builds the simulator for `node` (no requests) and validates the options: the fake NVML
    /// configuration (readable, load "external", the node's GPU type, GPUs gpu_offset ..
    /// gpu_offset + replicas * tp - 1 inside its count) and the state file. Errors:
    /// kInvalidArgument / kNotFound naming the option.
    [[nodiscard]] static Result<std::unique_ptr<SimServer>> create(const sim::NodeConfig& node,
                                                                   SimServerOptions options,
                                                                   sim::SloTargets slo = {});
    ~SimServer();
    SimServer(const SimServer&) = delete;
    SimServer& operator=(const SimServer&) = delete;

    /// Binds the port, starts the simulation thread (simulated time 0 = now) and serves in
    /// background threads. kUnavailable if the address cannot be bound.
    [[nodiscard]] Status start();
    /// The bound port (after start()).
    [[nodiscard]] int port() const;
    /// Ends open streams, stops serving and the simulation thread, reports idle power to the
    /// fake NVML. Idempotent; also run by the destructor.
    void stop();

    [[nodiscard]] const std::string& served_model_name() const;
    /// The longest request (prompt + max_tokens) accepted, tokens.
    [[nodiscard]] int max_model_len() const;
    /// GPUs of the node (replicas * tp).
    [[nodiscard]] int gpu_count() const;
    [[nodiscard]] SimServerStats stats() const;

private:
    struct Impl;
    explicit SimServer(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> m_impl;
};

}  // namespace pals::serve
