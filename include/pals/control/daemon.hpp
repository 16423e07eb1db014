#pragma once
/// @file daemon.hpp
/// @brief The live control loop of `pals run`: the Controller plus what a long-running service
/// needs around it (DESIGN.md 1.6, STYLE.md 3.5 degraded mode): save every control before the
/// first write and restore it on the way out; apply budget changes posted through the HTTP API;
/// publish a snapshot per period; on a backend failure stop actuating, restore the saved limits,
/// report "degraded" and keep serving.
///
/// Thread-safety: run() owns the backends on the calling thread; StateStore is the only object
/// shared with other threads.

#include <atomic>
#include <memory>
#include <optional>
#include <vector>

#include "pals/api/state.hpp"
#include "pals/control/controller.hpp"
#include "pals/power/saved_controls.hpp"

namespace pals::control {

class Daemon {
public:
    Daemon(Clock& clock, power::GpuBackend& gpus, std::vector<engine::ServingEngine*> engines,
           std::unique_ptr<Policy> policy, ControllerConfig config, api::StateStore& store,
           power::SavedControls& saved);

    /// Saves the controls of every GPU of every group, then runs until `stop` is set or the
    /// clock reaches `until`; restores the saved controls before returning (also after an
    /// error). Returns the first backend error, if the loop ended degraded.
    [[nodiscard]] Status run(const std::atomic<bool>& stop, std::optional<Seconds> until = std::nullopt);

private:
    void publish(bool degraded);

    Clock& m_clock;
    power::GpuBackend& m_gpus;
    std::vector<engine::ServingEngine*> m_engines;
    std::vector<int> m_all_gpus;
    Controller m_controller;
    api::StateStore& m_store;
    power::SavedControls& m_saved;
    std::string m_policy_name;
    std::uint64_t m_errors = 0;
    std::uint64_t m_budget_updates = 0;
    std::uint64_t m_cap_changes = 0;
    std::uint64_t m_batch_changes = 0;
};

}  // namespace pals::control
