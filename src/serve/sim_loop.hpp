#pragma once
// The simulation side of `pals sim-serve`: the simulator, the thread that advances it in real
// time, and its coupling to the node (the fake NVML state file, the batch-cap file). The HTTP
// routes (sim_server.cpp) only submit, abort and read; they never see the simulator.
//
// Lock order: SimLoop's simulator mutex, then a request's own StreamState::mutex; callers never
// call into SimLoop while holding a stream's mutex.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "pals/common/status.hpp"
#include "pals/serve/sim_server.hpp"
#include "pals/sim/simulator.hpp"
#include "serve/node_coupling.hpp"
#include "serve/vllm_exposition.hpp"

namespace pals::serve {

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

/// One request submitted to the simulator: its handle (for abort()) and what its HTTP handler
/// waits on.
struct Submitted {
    std::size_t handle = 0;
    std::shared_ptr<StreamState> stream;
};

/// The simulator of a SimServer and the thread that advances it to (wall - start) x time_scale
/// every tick. Thread-safety: submit(), abort(), metrics_text() and stats() from any thread;
/// start(), close_streams() and stop() from the owner's thread.
class SimLoop {
public:
    /// Builds the simulator for `node` (no requests) and opens the fake NVML coupling and the
    /// batch-cap file named in `options` (validated by SimServer::create).
    [[nodiscard]] static Result<std::unique_ptr<SimLoop>> create(const sim::NodeConfig& node,
                                                                 const SimServerOptions& options,
                                                                 sim::SloTargets slo);
    SimLoop(const SimLoop&) = delete;
    SimLoop& operator=(const SimLoop&) = delete;
    ~SimLoop();

    /// Sets the launch power cap and locked clock where other processes see them (fake NVML),
    /// then starts the simulation thread with simulated time 0 = now.
    [[nodiscard]] Status start();
    /// Refuses new requests and wakes every request waiting on the simulator (first step of
    /// stopping the server, before its HTTP threads are joined).
    void close_streams();
    /// Stops the simulation thread and reports idle power to the fake NVML. Idempotent.
    void stop();

    /// Submits a request arriving now. kUnavailable while stopping; kInvalidArgument when the
    /// simulator refuses it.
    [[nodiscard]] Result<Submitted> submit(int input_tokens, int output_tokens);
    /// The client went away: the request leaves the simulator (no-op once it ended).
    void abort(std::size_t handle);
    /// vLLM's /metrics text for the served model name.
    [[nodiscard]] std::string metrics_text(const std::string& model_name) const;
    [[nodiscard]] SimServerStats stats() const;
    /// GPUs of the node (replicas x tp).
    [[nodiscard]] int gpu_count() const { return m_gpu_count; }

private:
    using SteadyClock = std::chrono::steady_clock;

    /// The simulation side of one request in flight. Guarded by m_sim_mutex.
    struct RequestRecord {
        std::shared_ptr<StreamState> stream;
        double arrival_s = 0.0;
        double first_token_s = -1.0;
        double last_token_s = -1.0;
        int replica = -1;
    };

    SimLoop(sim::NodeConfig node, SimServerOptions options, sim::Simulator simulator);

    [[nodiscard]] double sim_target(SteadyClock::time_point now) const {
        return std::chrono::duration<double>(now - m_start_wall).count() * m_options.time_scale;
    }
    void on_token(const sim::TokenEvent& e);
    void apply_controls(const std::optional<std::vector<GpuControls>>& controls, int batch_cap,
                        int step_tokens);
    std::vector<power::fake_nvml::ExternalReading> measure_power();
    void tick();
    void sim_loop();

    // ---- immutable after create() ----------------------------------------------------------
    sim::NodeConfig m_node;
    SimServerOptions m_options;
    int m_gpus_per_replica = 1;
    int m_gpu_count = 1;

    // ---- simulation thread only -----------------------------------------------------------
    std::unique_ptr<NvmlCoupling> m_nvml;
    std::optional<PluginFile> m_batch_cap_file;
    std::optional<PluginAckWriter> m_batch_cap_ack;
    std::optional<PluginFile> m_step_tokens_file;
    std::optional<PluginAckWriter> m_step_tokens_ack;
    SteadyClock::time_point m_last_report_wall;
    double m_last_report_sim_s = 0.0;
    bool m_report_failed = false;
    std::thread m_sim_thread;
    std::mutex m_wake_mutex;
    std::condition_variable m_wake_cv;
    bool m_stop_sim = false;  ///< guarded by m_wake_mutex
    bool m_started = false;   ///< owner's thread
    bool m_stopped = false;   ///< owner's thread

    // ---- guarded by m_sim_mutex -----------------------------------------------------------
    mutable std::mutex m_sim_mutex;
    sim::Simulator m_simulator;
    std::unordered_map<std::size_t, RequestRecord> m_records;
    std::vector<std::size_t> m_undecided;   ///< submitted since the last tick
    std::vector<ReplicaMetrics> m_metrics;  ///< histograms, finish counters, power
    std::vector<double> m_energy_at_report_j;
    std::vector<double> m_applied_cap_w;
    std::vector<double> m_applied_clock_mhz;
    int m_applied_batch_cap = -1;
    int m_applied_step_tokens = -1;
    std::vector<std::shared_ptr<StreamState>> m_touched;  ///< to notify after the tick
    SimServerStats m_stats;
    double m_last_arrival_s = 0.0;
    std::uint64_t m_next_request_id = 0;
    bool m_stopping = false;
    SteadyClock::time_point m_start_wall;
};

}  // namespace pals::serve
