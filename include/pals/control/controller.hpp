#pragma once
/// @file controller.hpp
/// @brief The online control loop (DESIGN.md 1.5): every period observe the GPU groups (power
/// from energy counters, engine counters and windowed latencies), ask a Policy for a power cap
/// and a batch cap per group, and actuate them in a safe order. The same loop drives every
/// policy (PALS and the baselines), in simulation and live: it only sees a Clock, a
/// power::GpuBackend and engine::ServingEngines.
///
/// Safety: caps of a policy that honours the budget are scaled so that the sum over GPUs of
/// their caps never exceeds the budget (a cap bounds a GPU's power, so this bounds the node's);
/// caps that fall are written before anything else, caps that rise after the batch caps.
/// Thread-safety: not thread-safe; one thread owns the loop (set_budget included).

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pals/common/clock.hpp"
#include "pals/common/status.hpp"
#include "pals/engine/serving_engine.hpp"
#include "pals/power/gpu_backend.hpp"

namespace pals::control {

/// A node power budget over time: (start time, watts) steps, the first at or before t = 0.
class BudgetSchedule {
public:
    BudgetSchedule() = default;
    explicit BudgetSchedule(double watts) : m_steps{{0.0, watts}} {}
    /// Steps sorted by time; kInvalidArgument if empty, unsorted or a watt value <= 0.
    [[nodiscard]] static Result<BudgetSchedule> from_steps(
        std::vector<std::pair<double, double>> steps);
    /// The budget in force at `t_s`; +inf when there are no steps (no budget).
    [[nodiscard]] double at(double t_s) const;
    [[nodiscard]] const std::vector<std::pair<double, double>>& steps() const { return m_steps; }
    [[nodiscard]] bool empty() const { return m_steps.empty(); }

private:
    std::vector<std::pair<double, double>> m_steps;
};

/// What the loop measured for one group over the last period (latencies: a longer window).
struct GroupObservation {
    int gpus = 0;
    double power_w = 0.0;  ///< all GPUs of the group, from energy-counter deltas
    double cap_w = 0.0;    ///< requested cap per GPU now
    int batch_cap = 0;
    int max_batch_cap = 0;
    int step_tokens = 0;      ///< per-step token budget in force (0: the engine's launch value)
    int max_step_tokens = 0;  ///< the engine's launch budget (0: the engine has no such knob)
    int running = 0;
    int waiting = 0;
    int waiting_previous = 0;       ///< waiting one period earlier
    double kv_cache_usage = 0.0;    ///< 0..1, the engine's KV-cache gauge now
    double generation_tok_s = 0.0;  ///< output tokens/s over the period
    double prompt_tok_s = 0.0;
    double avg_output_tokens = 0.0;  ///< per finished request, since start (0 if none yet)
    double itl_p90_s = 0.0;          ///< over the latency window; NaN when no token was generated
    double ttft_p90_s = 0.0;         ///< over the latency window; NaN when no request started
    double tpot_p90_s = 0.0;         ///< over the latency window; NaN when none finished
    /// Over the latency window, the share of requests whose TTFT (of those that started) and
    /// TPOT (of those that finished) is above its SLO; NaN when there were none. Their sum is
    /// the violation rate to expect if the window's conditions hold (an upper bound of the
    /// share missing either, when both miss).
    double ttft_miss_share = std::numeric_limits<double>::quiet_NaN();
    double tpot_miss_share = std::numeric_limits<double>::quiet_NaN();
    double window_requests = 0.0;  ///< requests that started in the latency window
    double sm_clock_mhz = 0.0;     ///< mean over the group's GPUs
};

/// The share of requests to expect missing an SLO from a group's latency window: the TTFT and
/// TPOT miss shares summed (an upper bound of the share missing either), at most 1; NaN when
/// the window had neither.
[[nodiscard]] inline double expected_violation_share(double ttft_miss_share,
                                                     double tpot_miss_share) {
    if (std::isnan(ttft_miss_share) && std::isnan(tpot_miss_share)) {
        return std::numeric_limits<double>::quiet_NaN();
    }
    return std::min(1.0, (std::isnan(ttft_miss_share) ? 0.0 : ttft_miss_share) +
                             (std::isnan(tpot_miss_share) ? 0.0 : tpot_miss_share));
}

/// Everything a policy sees at one tick.
struct Observation {
    double time_s = 0.0;
    double period_s = 1.0;
    double budget_w = std::numeric_limits<double>::infinity();  ///< node total
    power::PowerLimitRange cap_range;                           ///< per GPU
    double sm_clock_max_mhz = 0.0;
    double slo_ttft_s = 1.0;
    double slo_tpot_s = 0.1;
    std::vector<GroupObservation> groups;
};

/// What a policy wants for one group.
struct GroupDecision {
    double cap_w = 0.0;  ///< per GPU
    int batch_cap = 0;
    double locked_clock_mhz = -1.0;  ///< < 0: leave as is; 0: unlock; > 0: lock SM clock max
    std::string reason;              ///< one line, for logs and /v1/state
    /// Per-step token budget (ServingEngine::set_step_tokens); 0: the engine's launch value.
    /// Ignored for engines without one.
    int step_tokens = 0;
};

/// A control policy. Implementations: PALS and the baselines (policies.hpp).
class Policy {
public:
    virtual ~Policy() = default;
    [[nodiscard]] virtual std::string_view name() const = 0;
    /// True if the loop must keep the sum of caps within the budget (every policy but vLLM's
    /// budget-unaware default).
    [[nodiscard]] virtual bool honours_budget() const { return true; }
    /// One decision per group, in the order of Observation::groups.
    [[nodiscard]] virtual std::vector<GroupDecision> decide(const Observation& observation) = 0;
};

/// One tick of history (for reports and the API).
struct TickRecord {
    double time_s = 0.0;
    double budget_w = 0.0;
    double power_w = 0.0;  ///< node total over the period just ended
    std::vector<double> group_power_w;
    std::vector<double> cap_w;             ///< per group, after actuation
    std::vector<int> batch_cap;            ///< per group, after actuation
    std::vector<double> locked_clock_mhz;  ///< per group, after actuation (0: not locked)
    std::vector<int> step_tokens;          ///< per group, after actuation (0: launch value)
    /// Per group, GroupObservation's ttft_miss_share and tpot_miss_share (empty for runs that
    /// bypass the loop: the oracles).
    std::vector<double> ttft_miss_share;
    std::vector<double> tpot_miss_share;
    std::vector<double> window_requests;  ///< per group, GroupObservation's
    double generation_tok_s = 0.0;
    std::string reason;  ///< the first group's
};

struct ControllerConfig {
    Seconds period{1.0};
    Seconds latency_window{5.0};  ///< windowed quantiles span this many seconds
    double slo_ttft_s = 1.0;
    double slo_tpot_s = 0.1;
    double sm_clock_max_mhz = 1980.0;  ///< for clock-locking policies (NVML cannot report it)
    BudgetSchedule budget;
    /// The most TickRecords history() keeps (the newest); 0 keeps every one (offline runs that
    /// score the whole history). The live daemon bounds it (DaemonOptions::history_limit):
    /// one record per period would otherwise grow forever.
    std::size_t history_limit = 0;
};

/// The control loop over the groups of one node.
class Controller {
public:
    /// @param engines one per GPU group; each names its GPUs. Not owned; they must outlive the
    ///        controller, as must `clock` and `gpus`.
    Controller(Clock& clock, power::GpuBackend& gpus,
               const std::vector<engine::ServingEngine*>& engines, std::unique_ptr<Policy> policy,
               ControllerConfig config);

    /// Reads the initial counters. Call once before tick().
    [[nodiscard]] Status start();
    /// Observe, decide, actuate. Never throws; a backend failure returns its Status.
    [[nodiscard]] Status tick();
    /// Ticks every period until the clock reaches `t` (sleeping on the clock in between).
    [[nodiscard]] Status run_until(Seconds t);

    /// Between periods: if the caps in force sum to more than the budget now (it just dropped),
    /// scales them down as tick() would and writes them at once; the policy decides at the next
    /// period as usual. Returns true in `lowered` when it wrote. No-op for budget-unaware policies.
    [[nodiscard]] Status enforce_budget(bool* lowered = nullptr);
    /// The cap per GPU in force for each group (what was last written).
    [[nodiscard]] std::vector<double> caps_w() const;

    /// Replaces the budget from now on (a single value) or with a schedule.
    void set_budget(BudgetSchedule budget) { m_config.budget = std::move(budget); }
    [[nodiscard]] const BudgetSchedule& budget() const { return m_config.budget; }
    /// The newest ticks, oldest first: every tick, or the last ControllerConfig::history_limit.
    [[nodiscard]] const std::deque<TickRecord>& history() const { return m_history; }
    /// Ticks decided since construction (also those history() dropped).
    [[nodiscard]] std::uint64_t decisions_total() const { return m_decisions_total; }
    [[nodiscard]] const Policy& policy() const { return *m_policy; }
    [[nodiscard]] Seconds next_tick() const { return m_next_tick; }
    /// The newest engine snapshot of group `group` read by start()/tick(); nullptr before start()
    /// or for an unknown group. Valid until the next start()/tick().
    [[nodiscard]] const engine::EngineSnapshot* last_snapshot(std::size_t group) const {
        return group < m_groups.size() && !m_groups[group].snapshots.empty()
                   ? &m_groups[group].snapshots.back()
                   : nullptr;
    }

private:
    struct GroupState {
        engine::ServingEngine* engine = nullptr;
        std::vector<int> gpus;
        std::vector<engine::EngineSnapshot> snapshots;  ///< last few, oldest first
        double energy_j = 0.0;
        double cap_w = 0.0;
        int batch_cap = 0;
        int step_tokens = 0;  ///< 0: the launch value
        double locked_clock_mhz = 0.0;
        int waiting_previous = 0;
    };
    [[nodiscard]] Result<Observation> observe();
    [[nodiscard]] Status actuate(const Observation& observation,
                                 std::vector<GroupDecision> decisions);
    /// Scales caps (per GPU, one per group) above the range's minimum down together so that
    /// their sum over GPUs fits `budget_w`.
    void fit_caps_to_budget(std::vector<double>& caps_w, double budget_w) const;
    [[nodiscard]] Status write_cap(GroupState& group, double cap_w);
    /// Writes the falling caps (group, cap per GPU): every GPU above its new cap first, then
    /// those of the same groups below it.
    [[nodiscard]] Status lower_caps(const std::vector<std::pair<std::size_t, double>>& caps);
    /// Raises group `group` to `cap_w`, GPU by GPU, stopping where the sum of the caps in force
    /// would pass the budget in force at that moment.
    [[nodiscard]] Status raise_cap(std::size_t group, double cap_w);

    Clock& m_clock;
    power::GpuBackend& m_gpus;
    std::unique_ptr<Policy> m_policy;
    ControllerConfig m_config;
    std::vector<GroupState> m_groups;
    power::PowerLimitRange m_range;
    double m_last_time_s = 0.0;
    Seconds m_next_tick{0.0};
    std::deque<TickRecord> m_history;
    std::uint64_t m_decisions_total = 0;
};

}  // namespace pals::control
