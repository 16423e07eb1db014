#pragma once
/// @file live_session_factory.hpp
/// @brief Profiling a live server (`pals profile --backend live`): the GPUs through a
/// power::GpuBackend (NVML), the engine through an engine::ServingEngine (vLLM's /metrics and
/// the batch-cap file), and the load from a built-in closed-loop client on the server's
/// OpenAI-compatible API that keeps more requests in flight than the largest batch cap, so the
/// engine stays saturated with the mix being profiled (DESIGN.md 1.4). Works the same against
/// `vllm serve` and `pals sim-serve`.
///
/// Thread-safety: one owner; the load runs on its own threads.

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "pals/loadgen/loadgen.hpp"
#include "pals/profile/profiler.hpp"

namespace pals::profile {

struct LiveLoadConfig {
    loadgen::ClientConfig client;  ///< URL, endpoint, served model name
    /// Requests kept in flight; 0: the largest swept batch cap + max(16, a quarter of it).
    int concurrency = 0;
};

class LiveSessionFactory final : public SessionFactory {
public:
    /// `clock`, `gpus` and `engine` are not owned and must outlive the factory. `max_batch_cap`
    /// is the largest batch cap of the sweep (sizes the load).
    [[nodiscard]] static Result<std::unique_ptr<LiveSessionFactory>> create(
        Clock& clock, power::GpuBackend& gpus, engine::ServingEngine& engine, ModelShape shape,
        LiveLoadConfig load, int max_batch_cap);
    ~LiveSessionFactory() override;
    LiveSessionFactory(const LiveSessionFactory&) = delete;
    LiveSessionFactory& operator=(const LiveSessionFactory&) = delete;

    [[nodiscard]] std::string backend_name() const override { return "live"; }
    [[nodiscard]] ModelShape model_shape() const override { return m_shared.model_shape(); }
    /// Starts (or keeps) the closed-loop load of `mix`, then returns a session on the shared
    /// node. A different mix stops the previous load first; `attempt` > 0 restarts it.
    [[nodiscard]] Result<std::unique_ptr<ProfileSession>> open(const WorkloadMix& mix,
                                                               const SweepPoint& point,
                                                               int attempt) override;
    [[nodiscard]] int max_attempts() const override { return 2; }
    /// Stops the load and waits for the requests in flight.
    void stop_load();

private:
    LiveSessionFactory(Clock& clock, power::GpuBackend& gpus, engine::ServingEngine& engine,
                       ModelShape shape, loadgen::RequestSender sender, int concurrency);
    void start_load(const WorkloadMix& mix);

    Clock& m_clock;
    SharedSessionFactory m_shared;
    loadgen::RequestSender m_sender;
    int m_concurrency;
    std::optional<std::string> m_running_mix;
    std::atomic<bool> m_stop{false};
    std::thread m_load;
};

}  // namespace pals::profile
