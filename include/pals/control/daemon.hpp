#pragma once
/// @file daemon.hpp
/// @brief The live control loop of `pals run`: the Controller plus what a long-running service
/// needs around it (DESIGN.md 1.6, STYLE.md 3.5 degraded mode): save every control before the
/// first write and restore it on the way out; apply budget changes posted through the HTTP API;
/// publish a snapshot per period; on a backend failure stop actuating, restore the saved limits,
/// report "degraded", keep serving, and try to resume control every few periods.
///
/// Batch caps must be seen applied: where an engine acknowledges the cap it applies (vLLM with the
/// PALS scheduler, engine::BatchCapAck), a cap requested but not acknowledged (missing or stale
/// acknowledgement, or another cap read or applied) for `DaemonOptions::batch_cap_fault_periods`
/// periods in a row is a fault: logged, counted (StateSnapshot::batch_cap_faults_total) and
/// handled as a backend failure (degraded mode below). While degraded after such a fault, a retry
/// succeeds only once every engine's acknowledgement is present and fresh again.
///
/// States: running (the Controller ticks every period) and degraded (the policy does not run;
/// every batch cap is put back to the engine's launch maximum; the power limits are held at the
/// saved values, each lowered to its share of the budget in force; every
/// `DaemonOptions::retry_periods` periods the daemon retries: save the controls (a no-op for
/// those saved already), Controller::start(); on success it is running again). A permission
/// error (no root / CAP_SYS_ADMIN, an unwritable state or batch-cap file) is not retried: run()
/// restores what it can and returns it.
///
/// Budget invariant: the sum of the power limits in force never rises above the budget in force
/// through a write of the daemon (start, degraded mode, a partial failure), except while the
/// budget is below the sum of the GPUs' minimum limits (infeasible: every limit at its minimum,
/// reported in the snapshot, /healthz and pals_budget_feasible). Writes that lower a limit come
/// before writes that raise one, and a raise is cut to what the budget leaves. A GPU whose limit
/// cannot be read (lost) counts at its last known limit. On exit the saved limits are restored
/// (the budget no longer applies); the saved state stays on disk while a GPU differs from it.
///
/// Thread-safety: run() owns the backends on the calling thread; StateStore is the only object
/// shared with other threads (and the `stop` flag, which a signal handler may set).

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "pals/control/controller.hpp"
#include "pals/control/state.hpp"
#include "pals/power/saved_controls.hpp"

namespace pals::control {

/// How the daemon behaves around the Controller.
struct DaemonOptions {
    /// In degraded mode, retry starting the Controller every this many control periods (>= 1).
    int retry_periods = 5;
    /// Save (and restore) the locked SM clock state too, for policies that lock clocks.
    bool save_sm_clocks = true;
    /// The Controller keeps this many tick records (ControllerConfig::history_limit, >= 1): the
    /// daemon only needs the newest, and runs for months.
    std::size_t history_limit = 600;
    /// A requested batch cap the engine does not acknowledge for this many periods in a row is
    /// a fault (degraded mode); 0 never makes it one (it is still reported per group).
    int batch_cap_fault_periods = 3;
    /// On the way out, instead of restoring the saved limits: hold them within this node
    /// budget, W (lowers first), and keep the saved state on disk for `pals power restore`.
    /// 0: restore them (the default). A cluster member sets its floor here: restoring uncapped
    /// limits would break the cluster budget (docs/cluster.md).
    double exit_budget_w = 0.0;
};

/// The least node budget `gpus` can hold: the sum of their minimum power limits, W.
[[nodiscard]] Result<double> min_budget_w(power::GpuBackend& backend, const std::vector<int>& gpus);

class Daemon {
public:
    /// @param engines one per GPU group; not owned, must outlive the daemon (as must `clock`,
    ///        `gpus`, `store` and `saved`).
    Daemon(Clock& clock, power::GpuBackend& gpus,
           const std::vector<engine::ServingEngine*>& engines, std::unique_ptr<Policy> policy,
           ControllerConfig config, StateStore& store, power::SavedControls& saved,
           DaemonOptions options = {});

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
    /// Tick records the Controller keeps now (at most DaemonOptions::history_limit).
    [[nodiscard]] std::size_t history_size() const { return m_controller.history().size(); }
    /// Times the daemon went from degraded back to running.
    [[nodiscard]] std::uint64_t recoveries_total() const { return m_recoveries; }

private:
    /// Stops actuating after `error`: resets batch caps, holds the limits (hold_limits()), logs
    /// once.
    void enter_degraded(const Status& error);
    /// One retry in degraded mode; ok when the Controller runs again.
    [[nodiscard]] Status try_resume();
    /// Degraded, the policy does not run but the budget still holds: writes each GPU's saved
    /// limit, lowered to its share of the budget in force (water-filling over the saved values;
    /// all at the minimum when the budget is infeasible); lowers first, raises only within what
    /// the budget leaves. The originals stay saved for the restore on exit. A failure is counted
    /// and retried at the next retry (m_hold_pending).
    void hold_limits();
    void hold_limits_once();
    /// Controller::enforce_budget(), again when a slow write let a budget step come due.
    [[nodiscard]] Status enforce_budget(bool* lowered);
    /// The limits hold_limits() aims at, per entry of m_all_gpus.
    [[nodiscard]] std::vector<double> hold_targets(double budget_w) const;
    /// Reads each GPU's power-limit range (once at start and on every resume) and publishes the
    /// least feasible budget to the StateStore.
    void read_limit_ranges();
    /// The limit in force on m_all_gpus[i]: read, else the last one known (never below it).
    [[nodiscard]] double limit_in_force_w(std::size_t i);
    /// Puts every engine's batch cap back to its launch maximum (best effort).
    void reset_batch_caps();
    void apply_budget_request(const BudgetRequest& request);
    /// Puts the SM clocks back to their saved state (no effect on the budget).
    void restore_clocks();
    /// The exit with DaemonOptions::exit_budget_w: limits held within it, clocks restored.
    [[nodiscard]] Status hold_for_exit();
    /// Records each group's cap and batch cap in force (after Controller::start()), so that
    /// count_changes() counts the first decision's writes too.
    void note_controls_in_force();
    /// Counts cap and batch-cap changes (per group) in the records decided after
    /// `decisions_before` (Controller::decisions_total()).
    void count_changes(std::uint64_t decisions_before);
    /// After a tick: counts, per group, the periods in a row whose reading shows a requested
    /// batch cap not acknowledged; the fault (kUnavailable naming the group, what was requested
    /// and what the engine says) once one reaches batch_cap_fault_periods.
    [[nodiscard]] Status check_batch_caps();
    /// The budget in force now, +inf when none or when the policy ignores budgets.
    [[nodiscard]] double budget_to_hold_w() const;
    void publish();

    Clock& m_clock;
    power::GpuBackend& m_gpus;
    std::vector<engine::ServingEngine*> m_engines;
    std::vector<int> m_all_gpus;
    Seconds m_period;  ///< before m_controller: read from the config before it is moved in
    Controller m_controller;
    StateStore& m_store;
    power::SavedControls& m_saved;
    DaemonOptions m_options;
    std::string m_policy_name;
    bool m_degraded = false;
    Status m_last_error;
    Seconds m_degraded_since{0.0};
    Seconds m_next_retry{0.0};
    std::uint64_t m_failed_retries = 0;  ///< since the last transition to degraded
    bool m_hold_pending = false;         ///< a hold in degraded mode failed: retry it first
    double m_held_budget_w = 0.0;        ///< the budget the last hold aimed at
    std::vector<power::PowerLimitRange> m_ranges;  ///< per entry of m_all_gpus
    std::vector<double> m_known_limit_w;  ///< per entry of m_all_gpus: last read or written
    double m_budget_min_w = 0.0;          ///< sum of the minimum limits (0: unknown)
    bool m_budget_feasible = true;        ///< as last published
    /// Per engine: a batch cap below the maximum, or a step-token budget, was set.
    std::vector<bool> m_batch_cap_touched;
    std::vector<double> m_last_cap_w;          ///< per group: the cap last in force
    std::vector<int> m_last_batch_cap;         ///< per group: the batch cap last in force
    std::vector<int> m_last_step_tokens;       ///< per group: the step-token budget (0: launch)
    std::vector<int> m_batch_cap_bad_periods;  ///< per group: periods in a row not acknowledged
    bool m_batch_cap_fault = false;            ///< degraded because of a batch-cap fault
    std::uint64_t m_batch_cap_faults = 0;
    std::uint64_t m_errors = 0;
    std::uint64_t m_recoveries = 0;
    std::uint64_t m_budget_updates = 0;
    std::uint64_t m_cap_changes = 0;
    std::uint64_t m_batch_changes = 0;
    std::uint64_t m_step_tokens_changes = 0;
    // Counters since the daemon started, from cumulative readings (a decrease is a restart).
    std::vector<double> m_gpu_energy_last_j;
    std::vector<double> m_gpu_energy_j;
    std::vector<double> m_tokens_last;
    std::vector<double> m_tokens;
    std::vector<double> m_group_tok_s;
    double m_tokens_time_s = 0.0;
    std::vector<double> m_rate_tokens;  ///< per group: m_tokens at the last tokens/s update
    double m_rate_time_s = 0.0;
    std::uint64_t m_rate_decisions = 0;  ///< Controller::decisions_total() at that update
    double m_over_budget_s = 0.0;        ///< time the node drew more than the budget in force
};

}  // namespace pals::control
