#pragma once
/// @file daemon.hpp
/// @brief The live control loop of `pals run`: the Controller plus what a long-running service
/// needs around it (DESIGN.md 1.6, STYLE.md 3.5 degraded mode): save every control before the
/// first write and restore it on the way out; apply budget changes posted through the HTTP API;
/// publish a snapshot per period; on a backend failure stop actuating, restore the saved limits,
/// report "degraded", keep serving, and try to resume control every few periods.
///
/// States: running (the Controller ticks every period) and degraded (no writes; the saved limits
/// are restored once and every batch cap is put back to the engine's launch maximum; every
/// `DaemonOptions::retry_periods` periods the daemon retries: restore what is still saved, save
/// the controls again, Controller::start(); on success it is running again). A permission error
/// (no root / CAP_SYS_ADMIN, an unwritable state or batch-cap file) is not retried: run() restores
/// and returns it.
///
/// Thread-safety: run() owns the backends on the calling thread; StateStore is the only object
/// shared with other threads (and the `stop` flag, which a signal handler may set).

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "pals/api/state.hpp"
#include "pals/control/controller.hpp"
#include "pals/power/saved_controls.hpp"

namespace pals::control {

/// How the daemon behaves around the Controller.
struct DaemonOptions {
    /// In degraded mode, retry starting the Controller every this many control periods (>= 1).
    int retry_periods = 5;
    /// Save (and restore) the locked SM clock state too, for policies that lock clocks.
    bool save_sm_clocks = true;
};

class Daemon {
public:
    /// @param engines one per GPU group; not owned, must outlive the daemon (as must `clock`,
    ///        `gpus`, `store` and `saved`).
    Daemon(Clock& clock, power::GpuBackend& gpus, std::vector<engine::ServingEngine*> engines,
           std::unique_ptr<Policy> policy, ControllerConfig config, api::StateStore& store,
           power::SavedControls& saved, DaemonOptions options = {});

    /// Saves the controls of every GPU of every group, then runs until `stop` is set or the
    /// clock reaches `until`; restores the saved controls (and puts the batch caps back to their
    /// maximum) before returning, also after an error. A failure to start or to tick does not
    /// end the loop (degraded mode, retried).
    /// @return ok when it stopped on `stop`/`until` and the restore succeeded (whether running or
    ///         degraded at that moment: see degraded()); the error when it could not save the
    ///         controls at the start, when a write was refused (kPermissionDenied: not retried),
    ///         or when the final restore failed.
    [[nodiscard]] Status run(const std::atomic<bool>& stop,
                             std::optional<Seconds> until = std::nullopt);

    /// True while the loop does not actuate (after a backend error, until a retry succeeds).
    [[nodiscard]] bool degraded() const { return m_degraded; }
    /// The error that put the daemon in degraded mode (ok while running).
    [[nodiscard]] const Status& last_error() const { return m_last_error; }
    /// Failed ticks and failed retries so far.
    [[nodiscard]] std::uint64_t errors_total() const { return m_errors; }
    /// Times the daemon went from degraded back to running.
    [[nodiscard]] std::uint64_t recoveries_total() const { return m_recoveries; }

private:
    /// Stops actuating after `error`: restores the saved limits, resets batch caps, logs once.
    void enter_degraded(const Status& error);
    /// One retry in degraded mode; ok when the Controller runs again.
    [[nodiscard]] Status try_resume();
    /// Degraded, the policy is not running but the budget still holds: when the limits in force
    /// sum to more than the budget now, every GPU above an even share is lowered to it (the
    /// originals stay saved for the restore on exit). No-op for budget-unaware policies.
    void hold_budget_degraded();
    /// After a refused write: true when the GPUs refuse any power-limit write (probed by
    /// writing the limit in force on the first GPU), so none of this session's writes took effect.
    [[nodiscard]] bool gpu_writes_refused();
    /// Puts every engine's batch cap back to its launch maximum (best effort).
    void reset_batch_caps();
    void apply_budget_request(const api::BudgetRequest& request);
    /// Records each group's cap and batch cap in force (after Controller::start()), so that
    /// count_changes() counts the first decision's writes too.
    void note_controls_in_force();
    /// Counts cap and batch-cap changes (per group) in the history records from `history_before`.
    void count_changes(std::size_t history_before);
    void publish();

    Clock& m_clock;
    power::GpuBackend& m_gpus;
    std::vector<engine::ServingEngine*> m_engines;
    std::vector<int> m_all_gpus;
    Seconds m_period;  ///< before m_controller: read from the config before it is moved in
    Controller m_controller;
    api::StateStore& m_store;
    power::SavedControls& m_saved;
    DaemonOptions m_options;
    std::string m_policy_name;
    bool m_degraded = false;
    Status m_last_error;
    Seconds m_degraded_since{0.0};
    Seconds m_next_retry{0.0};
    std::uint64_t m_failed_retries = 0;     ///< since the last transition to degraded
    bool m_restore_pending = false;         ///< a restore in degraded mode failed: retry it first
    std::vector<bool> m_batch_cap_touched;  ///< per engine: a cap below the maximum was set
    std::vector<double> m_last_cap_w;       ///< per group: the cap last in force
    std::vector<int> m_last_batch_cap;      ///< per group: the batch cap last in force
    std::uint64_t m_errors = 0;
    std::uint64_t m_recoveries = 0;
    std::uint64_t m_budget_updates = 0;
    std::uint64_t m_cap_changes = 0;
    std::uint64_t m_batch_changes = 0;
    // Counters since the daemon started, from cumulative readings (a decrease is a restart).
    std::vector<double> m_gpu_energy_last_j;
    std::vector<double> m_gpu_energy_j;
    std::vector<double> m_tokens_last;
    std::vector<double> m_tokens;
    std::vector<double> m_group_tok_s;
    double m_tokens_time_s = 0.0;
};

}  // namespace pals::control
