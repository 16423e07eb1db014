#include "pals/control/daemon.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <string>

#include "pals/common/log.hpp"

namespace pals::control {

namespace {
/// The loop wakes at least this often to notice a stop request.
constexpr Seconds kStopPollPeriod{0.1};

/// Writes closer than this to the limit in force change nothing (NVML's mW rounding), W.
constexpr double kLimitEpsilonW = 0.5;
/// A lower is written unless the limit in force is within 1 mW of it: the budget is a hard bound.
constexpr double kLowerEpsilonW = 1e-3;
/// A budget this close above the minimum counts as feasible (float sums), W.
constexpr double kBudgetToleranceW = 1e-6;

/// What an engine that does not acknowledge its batch cap shows, for the log and the API.
std::string describe_batch_cap_fault(std::size_t group, const engine::EngineSnapshot& snap,
                                     engine::BatchCapCheck check, int periods) {
    const engine::BatchCapAck& ack = snap.batch_cap_ack;
    const std::string for_periods =
        periods > 0 ? fmt::format(" for {} periods", periods) : std::string();
    switch (check) {
        case engine::BatchCapCheck::kMissing:
            return fmt::format(
                "group {}: batch cap {} requested but not acknowledged{} (no {}): is vLLM running "
                "the PALS scheduler (--scheduler-cls pals_vllm.scheduler.PalsScheduler) with "
                "PALS_BATCH_CAP_FILE set to this group's batch_cap_file, in a folder it can "
                "write?",
                group, snap.batch_cap, for_periods, ack.source);
        case engine::BatchCapCheck::kStale:
            return fmt::format(
                "group {}: batch cap {} requested but the engine's acknowledgement {} was last "
                "renewed {:.0f} s ago: its scheduler is not running",
                group, snap.batch_cap, ack.source, ack.age_s);
        default:
            return fmt::format(
                "group {}: batch cap {} requested{} but the engine applies {} (it read {}, launch "
                "max_num_seqs {}; {})",
                group, snap.batch_cap, for_periods, ack.applied,
                ack.requested > 0 ? std::to_string(ack.requested) : std::string("no cap"),
                ack.launch, ack.source);
    }
}

ControllerConfig with_history_limit(ControllerConfig config, const DaemonOptions& options) {
    config.history_limit = std::max<std::size_t>(1, options.history_limit);
    return config;
}

/// Adds the increase of a cumulative reading to `total`; a decrease means the source restarted
/// from zero (Prometheus' increase() rule), so the new reading counts whole.
void accumulate(double reading, double& last, double& total) {
    if (!std::isfinite(reading)) {
        return;
    }
    if (std::isfinite(last)) {
        total += reading >= last ? reading - last : reading;
    }
    last = reading;
}
}  // namespace

Result<double> min_budget_w(power::GpuBackend& backend, const std::vector<int>& gpus) {
    double total_w = 0.0;
    for (int gpu : gpus) {
        PALS_ASSIGN_OR_RETURN(power::PowerLimitRange range, backend.power_limit_range(gpu));
        total_w += range.min_w;
    }
    return total_w;
}

Daemon::Daemon(Clock& clock, power::GpuBackend& gpus,
               const std::vector<engine::ServingEngine*>& engines, std::unique_ptr<Policy> policy,
               ControllerConfig config, StateStore& store, power::SavedControls& saved,
               DaemonOptions options)
    : m_clock(clock)
    , m_gpus(gpus)
    , m_engines(engines)
    , m_period(config.period)
    , m_controller(clock, gpus, engines, std::move(policy),
                   with_history_limit(std::move(config), options))
    , m_store(store)
    , m_saved(saved)
    , m_options(options)
    , m_policy_name(m_controller.policy().name())
    , m_batch_cap_touched(m_engines.size(), false)
    , m_batch_cap_bad_periods(m_engines.size(), 0)
    , m_tokens_last(m_engines.size(), std::numeric_limits<double>::quiet_NaN())
    , m_tokens(m_engines.size(), 0.0)
    , m_group_tok_s(m_engines.size(), 0.0)
    , m_rate_tokens(m_engines.size(), 0.0) {
    m_options.retry_periods = std::max(1, m_options.retry_periods);
    for (engine::ServingEngine* e : m_engines) {
        for (int g : e->gpus()) {
            m_all_gpus.push_back(g);
        }
    }
    m_ranges.resize(m_all_gpus.size());
    m_known_limit_w.assign(m_all_gpus.size(), std::numeric_limits<double>::quiet_NaN());
}

void Daemon::publish() {
    auto s = std::make_shared<StateSnapshot>();
    const double now_s = m_clock.now().count();
    s->time_s = now_s;
    s->wall_time_unix_s =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    s->policy = m_policy_name;
    s->degraded = m_degraded;
    s->budget_w = m_controller.budget().at(now_s);
    s->budget_min_w = m_budget_min_w;
    s->budget_feasible = !(s->budget_w < m_budget_min_w - kBudgetToleranceW);
    if (s->budget_feasible != m_budget_feasible) {
        m_budget_feasible = s->budget_feasible;
        if (m_budget_feasible) {
            PALS_LOG_INFO("the budget of {:.0f} W is feasible again", s->budget_w);
        } else {
            PALS_LOG_WARN(
                "infeasible budget: {:.0f} W is below the {:.0f} W the GPUs draw at their minimum "
                "power limits; every limit is held at its minimum (best effort)",
                s->budget_w, m_budget_min_w);
        }
    }
    s->budget_steps = m_controller.budget().steps();
    s->errors_total = m_errors;
    s->budget_updates_total = m_budget_updates;
    s->cap_changes_total = m_cap_changes;
    s->batch_changes_total = m_batch_changes;
    s->step_tokens_changes_total = m_step_tokens_changes;
    s->batch_cap_faults_total = m_batch_cap_faults;
    const auto& history = m_controller.history();
    s->decisions_total = m_controller.decisions_total();

    if (auto samples = m_gpus.sample_all(); samples.is_ok()) {
        const std::size_t n = samples->size();
        m_gpu_energy_last_j.resize(n, std::numeric_limits<double>::quiet_NaN());
        m_gpu_energy_j.resize(n, 0.0);
        for (std::size_t i = 0; i < n; ++i) {
            const power::GpuSample& g = samples.value()[i];
            accumulate(g.energy_j, m_gpu_energy_last_j[i], m_gpu_energy_j[i]);
            for (std::size_t k = 0; k < m_all_gpus.size(); ++k) {
                if (static_cast<std::size_t>(m_all_gpus[k]) == i) {
                    m_known_limit_w[k] = g.power_limit_w;
                }
            }
            s->gpu_power_w.push_back(g.power_w);
            s->gpu_energy_j.push_back(m_gpu_energy_j[i]);
            s->energy_j += m_gpu_energy_j[i];
        }
    }

    // Tokens since the daemon started, per group, and tokens/s since the last publish.
    const double dt_s = now_s - m_tokens_time_s;
    m_tokens_time_s = now_s;
    // Tokens/s from new engine readings only: a publish between ticks (a budget change) sees
    // the tick's reading again and would show 0 tokens/s. Degraded, each publish reads afresh.
    const bool controlling = !m_degraded && !m_controller.history().empty();
    const double rate_dt_s = now_s - m_rate_time_s;
    const bool new_rate =
        rate_dt_s > 0.0 && (controlling ? m_controller.decisions_total() != m_rate_decisions
                                        : rate_dt_s >= 0.5 * m_period.count());
    if (new_rate) {
        m_rate_time_s = now_s;
        m_rate_decisions = m_controller.decisions_total();
    }
    const TickRecord* tick = !m_degraded && !history.empty() ? &history.back() : nullptr;
    const std::vector<double> caps_now = m_controller.caps_w();
    double node_power_w = 0.0;
    for (std::size_t i = 0; i < m_engines.size(); ++i) {
        engine::ServingEngine& engine = *m_engines[i];
        GroupSnapshot g;
        g.index = static_cast<int>(i);
        g.gpus = engine.gpus();
        g.batch_cap = engine.max_batch_cap();
        // While controlling, the controller's own reading of this period (one scrape per period);
        // degraded, a fresh one.
        Result<engine::EngineSnapshot> fresh = Status::unavailable("not read");
        const engine::EngineSnapshot* snap =
            tick != nullptr ? m_controller.last_snapshot(i) : nullptr;
        if (snap == nullptr) {
            fresh = engine.snapshot();
            snap = fresh.is_ok() ? &fresh.value() : nullptr;
        }
        if (snap != nullptr) {
            g.running = snap->running;
            g.waiting = snap->waiting;
            g.kv_cache_usage = snap->kv_cache_usage;
            g.batch_cap = snap->batch_cap > 0 ? snap->batch_cap : g.batch_cap;
            g.batch_cap_requested = snap->batch_cap_requested ? g.batch_cap : 0;
            const engine::BatchCapAck& ack = snap->batch_cap_ack;
            if (ack.state == engine::BatchCapAck::State::kFresh ||
                ack.state == engine::BatchCapAck::State::kStale) {
                g.batch_cap_applied = ack.applied;
                g.engine_max_num_seqs = ack.launch;
            }
            g.batch_cap_ack = std::string(engine::to_string(engine::check_batch_cap(*snap)));
            g.step_tokens = snap->step_tokens;
            const engine::BatchCapAck& tokens_ack = snap->step_tokens_ack;
            if (tokens_ack.state == engine::BatchCapAck::State::kFresh ||
                tokens_ack.state == engine::BatchCapAck::State::kStale) {
                g.step_tokens_applied = tokens_ack.applied;
                g.engine_max_num_batched_tokens = tokens_ack.launch;
            }
            accumulate(snap->generation_tokens, m_tokens_last[i], m_tokens[i]);
        }
        if (new_rate) {
            m_group_tok_s[i] = (m_tokens[i] - m_rate_tokens[i]) / rate_dt_s;
            m_rate_tokens[i] = m_tokens[i];
        }
        g.generation_tok_s = m_group_tok_s[i];
        s->generation_tokens += m_tokens[i];
        if (tick != nullptr && i < tick->cap_w.size()) {
            g.cap_w = caps_now[i];  // the period's decision, or lower if the budget dropped since
            g.batch_cap = tick->batch_cap[i];  // batch_cap_requested stays the reading's
            if (i < tick->step_tokens.size() && tick->step_tokens[i] > 0) {
                g.step_tokens = tick->step_tokens[i];
            }
            g.power_w = tick->group_power_w[i];
            g.locked_clock_mhz =
                i < tick->locked_clock_mhz.size() ? tick->locked_clock_mhz[i] : 0.0;
            if (i < tick->ttft_miss_share.size() && i < tick->tpot_miss_share.size()) {
                g.ttft_miss_share = tick->ttft_miss_share[i];
                g.tpot_miss_share = tick->tpot_miss_share[i];
            }
        } else {
            // Not controlled right now: report what the GPUs hold and draw.
            auto limit = g.gpus.empty() ? Result<double>(Status::not_found("no GPU"))
                                        : m_gpus.power_limit_w(g.gpus.front());
            g.cap_w = limit.is_ok() ? limit.value() : std::numeric_limits<double>::quiet_NaN();
            for (int gpu : g.gpus) {
                const auto index = static_cast<std::size_t>(gpu);
                g.power_w += index < s->gpu_power_w.size() ? s->gpu_power_w[index] : 0.0;
            }
        }
        node_power_w += g.power_w;
        s->groups.push_back(std::move(g));
    }
    if (tick != nullptr) {
        s->power_w = tick->power_w;
        s->last_decision = tick->reason;
    } else {
        s->power_w = node_power_w;
        s->last_decision = m_degraded ? "degraded: " + m_last_error.message() : std::string();
    }
    constexpr double kOverBudgetToleranceW = 1e-6;
    if (dt_s > 0.0 && s->power_w > s->budget_w + kOverBudgetToleranceW) {
        m_over_budget_s += dt_s;
    }
    s->time_over_budget_s = m_over_budget_s;
    m_store.publish(std::move(s));
}

void Daemon::reset_batch_caps() {
    for (std::size_t i = 0; i < m_engines.size(); ++i) {
        if (!m_batch_cap_touched[i]) {
            continue;
        }
        engine::ServingEngine& e = *m_engines[i];
        if (const Status s = e.set_batch_cap(e.max_batch_cap()); s.is_ok()) {
            m_batch_cap_touched[i] = false;
        } else {
            PALS_LOG_WARN("group {}: could not put the batch cap back to {}: {}", i,
                          e.max_batch_cap(), s.message());
        }
        if (e.max_step_tokens() > 0) {
            if (const Status s = e.set_step_tokens(0); !s.is_ok()) {
                PALS_LOG_WARN("group {}: could not put the step-token budget back to {}: {}", i,
                              e.max_step_tokens(), s.message());
            }
        }
    }
}

void Daemon::enter_degraded(const Status& error) {
    m_degraded = true;
    m_last_error = error;
    m_degraded_since = m_clock.now();
    std::fill(m_batch_cap_bad_periods.begin(), m_batch_cap_bad_periods.end(), 0);
    m_next_retry = m_clock.now() + m_period * m_options.retry_periods;
    m_failed_retries = 0;
    // What the Controller wrote last is an upper bound of a limit that can no longer be read.
    const std::vector<double> caps = m_controller.caps_w();
    for (std::size_t g = 0, k = 0; g < m_engines.size() && g < caps.size(); ++g) {
        for (std::size_t n = m_engines[g]->gpus().size(); n > 0 && k < m_known_limit_w.size();
             --n, ++k) {
            if (caps[g] > 0.0 && !(m_known_limit_w[k] >= caps[g])) {
                m_known_limit_w[k] = caps[g];
            }
        }
    }
    reset_batch_caps();
    hold_limits();
    restore_clocks();
    PALS_LOG_WARN(
        "control degraded: {}; limits {}; retrying every {:.3g} s", error.message(),
        m_hold_pending ? "not all held (retried)" : "held at the saved values within the budget",
        (m_period * m_options.retry_periods).count());
}

void Daemon::restore_clocks() {
    for (const power::SavedGpuControls& e : m_saved.entries()) {
        if (e.sm_clocks_saved &&
            std::find(m_all_gpus.begin(), m_all_gpus.end(), e.index) != m_all_gpus.end()) {
            const Status st = e.locked_sm_clocks
                                  ? m_gpus.lock_sm_clocks(e.index, *e.locked_sm_clocks)
                                  : m_gpus.reset_sm_clocks(e.index);
            if (!st.is_ok()) {
                PALS_LOG_WARN("gpu {}: cannot restore the SM clocks: {}", e.index, st.message());
            }
        }
    }
}

Status Daemon::hold_for_exit() {
    m_controller.set_budget(BudgetSchedule(m_options.exit_budget_w));
    hold_limits();
    restore_clocks();
    if (m_hold_pending) {
        return Status::unavailable(
            fmt::format("the GPU limits could not all be held within the exit budget of {:.0f} W",
                        m_options.exit_budget_w));
    }
    PALS_LOG_INFO(
        "limits held within the exit budget of {:.0f} W (saved limits kept in {} for "
        "`pals power restore`)",
        m_options.exit_budget_w, m_saved.path().string());
    return Status::ok();
}

double Daemon::budget_to_hold_w() const {
    const double budget_w = m_controller.budget().at(m_clock.now().count());
    return m_controller.policy().honours_budget() && std::isfinite(budget_w)
               ? budget_w
               : std::numeric_limits<double>::infinity();
}

void Daemon::read_limit_ranges() {
    double min_total_w = 0.0;
    for (std::size_t i = 0; i < m_all_gpus.size(); ++i) {
        if (Result<power::PowerLimitRange> r = m_gpus.power_limit_range(m_all_gpus[i]); r.is_ok()) {
            m_ranges[i] = r.value();
        } else if (m_ranges[i].max_w <= 0.0 && i > 0) {
            m_ranges[i] = m_ranges[i - 1];  // same model in one node: the best guess
        }
        min_total_w += m_ranges[i].min_w;
    }
    m_budget_min_w = min_total_w;
    m_store.set_budget_min_w(min_total_w);
}

double Daemon::limit_in_force_w(std::size_t i) {
    if (Result<double> limit = m_gpus.power_limit_w(m_all_gpus[i]); limit.is_ok()) {
        m_known_limit_w[i] = limit.value();
        return limit.value();
    }
    // Unreadable (lost): the last limit known, else the most it can be.
    if (std::isfinite(m_known_limit_w[i])) {
        return m_known_limit_w[i];
    }
    return m_ranges[i].max_w > 0.0 ? m_ranges[i].max_w : std::numeric_limits<double>::infinity();
}

std::vector<double> Daemon::hold_targets(double budget_w) const {
    const std::size_t n = m_all_gpus.size();
    std::vector<double> target(n);
    for (std::size_t i = 0; i < n; ++i) {
        auto saved = std::find_if(m_saved.entries().begin(), m_saved.entries().end(),
                                  [&](const auto& e) { return e.index == m_all_gpus[i]; });
        target[i] = saved != m_saved.entries().end() ? saved->power_limit_w : m_known_limit_w[i];
        if (!std::isfinite(target[i])) {
            target[i] = m_ranges[i].max_w;
        }
        if (m_ranges[i].max_w > 0.0) {
            target[i] = m_ranges[i].clamp(target[i]);
        }
    }
    if (!std::isfinite(budget_w)) {
        return target;
    }
    double total_w = 0.0;
    double floor_w = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        total_w += target[i];
        floor_w += std::min(m_ranges[i].min_w, target[i]);
    }
    if (total_w <= budget_w) {
        return target;
    }
    auto level_sum = [&](double level_w) {
        double sum = 0.0;
        for (std::size_t i = 0; i < n; ++i) {
            sum += std::max(std::min(m_ranges[i].min_w, target[i]), std::min(target[i], level_w));
        }
        return sum;
    };
    // Water-filling: one level caps every saved value; GPUs saved below it keep theirs. Below
    // the floor (infeasible) every GPU sits at its minimum.
    double lo = 0.0;
    double hi = *std::max_element(target.begin(), target.end());
    if (floor_w < budget_w) {
        constexpr int kBisections = 60;
        for (int k = 0; k < kBisections; ++k) {
            const double mid = 0.5 * (lo + hi);
            (level_sum(mid) <= budget_w ? lo : hi) = mid;
        }
    }
    for (std::size_t i = 0; i < n; ++i) {
        const double w = std::max(std::min(m_ranges[i].min_w, target[i]), std::min(target[i], lo));
        target[i] = std::floor(w * 1000.0) / 1000.0;  // whole mW, never above the level
    }
    return target;
}

void Daemon::hold_limits() {
    // A slow write may let a scheduled step come due meanwhile: hold again for it (bounded).
    constexpr int kMaxRounds = 3;
    for (int round = 0; round < kMaxRounds; ++round) {
        hold_limits_once();
        if (budget_to_hold_w() == m_held_budget_w) {
            break;
        }
    }
}

void Daemon::hold_limits_once() {
    if (m_all_gpus.empty()) {
        m_hold_pending = false;
        return;
    }
    const double budget_w = budget_to_hold_w();
    m_held_budget_w = budget_w;
    const std::vector<double> target = hold_targets(budget_w);
    const std::size_t n = m_all_gpus.size();
    std::vector<double> in_force(n);
    for (std::size_t i = 0; i < n; ++i) {
        in_force[i] = limit_in_force_w(i);
    }
    Status first_error;
    int writes = 0;
    auto write = [&](std::size_t i, double limit_w) {
        Result<double> set = m_gpus.set_power_limit(m_all_gpus[i], limit_w);
        if (!set.is_ok()) {
            // Not known to have changed: it still counts at what it held.
            if (first_error.is_ok()) {
                first_error = set.status().with_prefix("gpu " + std::to_string(m_all_gpus[i]));
            }
            return;
        }
        in_force[i] = limit_w;
        m_known_limit_w[i] = limit_w;
        ++m_cap_changes;
        ++writes;
    };
    // 1. Lowers, so that the sum only falls ...
    for (std::size_t i = 0; i < n; ++i) {
        if (target[i] < in_force[i] - kLowerEpsilonW) {
            write(i, target[i]);
        }
    }
    // 2. ... then raises, each cut to what the budget in force now leaves (a GPU that could not
    // be lowered still counts at its old limit; a slow call may have let a lower step come due).
    for (std::size_t i = 0; i < n; ++i) {
        if (target[i] <= in_force[i] + kLimitEpsilonW) {
            continue;
        }
        const double budget_now_w = budget_to_hold_w();
        double others_w = 0.0;
        for (std::size_t k = 0; k < n; ++k) {
            others_w += k == i ? 0.0 : in_force[k];
        }
        const double room_w = std::floor((budget_now_w - others_w) * 1000.0) / 1000.0;
        const double limit_w = std::min(target[i], room_w);
        if (limit_w > in_force[i] + kLimitEpsilonW) {
            write(i, limit_w);
        }
        if (limit_w < target[i] && first_error.is_ok()) {
            first_error = Status::unavailable(
                fmt::format("gpu {}: held at {:.0f} W, not its target {:.0f} W: the budget of "
                            "{:.0f} W leaves no more",
                            m_all_gpus[i], in_force[i], target[i], budget_now_w));
        }
    }
    const bool was_pending = m_hold_pending;
    m_hold_pending = !first_error.is_ok();
    if (m_hold_pending && was_pending) {
        PALS_LOG_DEBUG("degraded: still cannot hold every limit: {}", first_error.message());
    } else if (m_hold_pending) {
        ++m_errors;
        PALS_LOG_WARN("degraded: cannot hold every limit within the budget of {:.0f} W: {}",
                      budget_w, first_error.message());
    } else if (writes > 0 || was_pending) {
        PALS_LOG_INFO("degraded: limits held at the saved values{}",
                      std::isfinite(budget_w)
                          ? fmt::format(" within the budget of {:.0f} W", budget_w)
                          : std::string());
    }
}

Status Daemon::enforce_budget(bool* lowered) {
    constexpr int kMaxRounds = 3;
    for (int round = 0; round < kMaxRounds; ++round) {
        const double budget_w = budget_to_hold_w();
        bool wrote = false;
        PALS_RETURN_IF_ERROR(m_controller.enforce_budget(&wrote));
        if (lowered != nullptr) {
            *lowered = *lowered || wrote;
        }
        if (budget_to_hold_w() == budget_w) {
            break;
        }
    }
    return Status::ok();
}

Status Daemon::try_resume() {
    if (m_hold_pending) {
        hold_limits();
        if (m_hold_pending) {
            return Status::unavailable("the power limits could not be held: " +
                                       m_last_error.message());
        }
    }
    // The controls are saved again before the first write: a GPU that was not answering at the
    // start may be back (SavedControls keeps the first value saved anyway).
    PALS_RETURN_IF_ERROR(m_saved.save(m_gpus, m_all_gpus, m_options.save_sm_clocks));
    read_limit_ranges();
    PALS_RETURN_IF_ERROR(m_controller.start());
    if (m_batch_cap_fault) {
        // Degraded for a batch cap not applied: control resumes once every engine answers.
        for (std::size_t i = 0; i < m_engines.size(); ++i) {
            const engine::EngineSnapshot* snap = m_controller.last_snapshot(i);
            const engine::BatchCapCheck check = snap != nullptr ? engine::check_batch_cap(*snap)
                                                                : engine::BatchCapCheck::kUnchecked;
            if (check == engine::BatchCapCheck::kMissing ||
                check == engine::BatchCapCheck::kStale) {
                return Status::unavailable("still " + describe_batch_cap_fault(i, *snap, check, 0));
            }
        }
    }
    // The limits in force may exceed a budget that dropped meanwhile: lower them at once.
    return enforce_budget(nullptr);
}

Status Daemon::check_batch_caps() {
    const int limit = m_options.batch_cap_fault_periods;
    Status fault;
    std::size_t faulty = 0;
    for (std::size_t i = 0; i < m_engines.size(); ++i) {
        const engine::EngineSnapshot* snap = m_controller.last_snapshot(i);
        const engine::BatchCapCheck check =
            snap != nullptr ? engine::check_batch_cap(*snap) : engine::BatchCapCheck::kUnchecked;
        if (check == engine::BatchCapCheck::kOk || check == engine::BatchCapCheck::kUnchecked) {
            m_batch_cap_bad_periods[i] = 0;
            continue;
        }
        const int periods = ++m_batch_cap_bad_periods[i];
        if (periods == 1) {
            PALS_LOG_DEBUG("group {}: batch cap not acknowledged yet ({})", i,
                           engine::to_string(check));
        }
        if (limit > 0 && periods >= limit) {
            ++faulty;
            if (fault.is_ok()) {
                fault = Status::unavailable(describe_batch_cap_fault(i, *snap, check, periods));
            }
        }
    }
    if (fault.is_ok()) {
        return fault;
    }
    ++m_batch_cap_faults;
    m_batch_cap_fault = true;
    if (faulty > 1) {
        return {fault.code(), fmt::format("{} (and {} more groups)", fault.message(), faulty - 1)};
    }
    return fault;
}

void Daemon::apply_budget_request(const BudgetRequest& request) {
    if (request.steps.empty()) {
        m_controller.set_budget(BudgetSchedule{});
        ++m_budget_updates;
        PALS_LOG_INFO("budget cleared: no budget from now on");
        return;
    }
    std::vector<std::pair<double, double>> steps;
    const double now = m_clock.now().count();
    for (const auto& [t, w] : request.steps) {
        steps.emplace_back(now + t, w);
    }
    auto schedule = BudgetSchedule::from_steps(std::move(steps));
    if (!schedule.is_ok()) {
        PALS_LOG_WARN("budget change ignored: {}", schedule.status().message());
        return;
    }
    m_controller.set_budget(std::move(schedule).value());
    ++m_budget_updates;
    if (request.steps.size() == 1) {
        PALS_LOG_INFO("budget changed to {:.0f} W", request.steps.front().second);
    } else {
        PALS_LOG_INFO("budget schedule set: {} steps, {:.0f} W now, {:.0f} W from t+{:.0f} s",
                      request.steps.size(), request.steps.front().second,
                      request.steps.back().second, request.steps.back().first);
    }
}

void Daemon::note_controls_in_force() {
    m_last_cap_w.assign(m_engines.size(), std::numeric_limits<double>::quiet_NaN());
    m_last_batch_cap.assign(m_engines.size(), 0);
    m_last_step_tokens.assign(m_engines.size(), 0);
    for (std::size_t g = 0; g < m_engines.size(); ++g) {
        const std::vector<int> gpus = m_engines[g]->gpus();
        if (!gpus.empty()) {
            if (auto limit = m_gpus.power_limit_w(gpus.front()); limit.is_ok()) {
                m_last_cap_w[g] = limit.value();
            }
        }
        m_last_batch_cap[g] = m_engines[g]->max_batch_cap();
        if (auto snap = m_engines[g]->snapshot(); snap.is_ok()) {
            m_last_batch_cap[g] = snap->batch_cap > 0 ? snap->batch_cap : m_last_batch_cap[g];
            const int launch = m_engines[g]->max_step_tokens();
            m_last_step_tokens[g] =
                snap->step_tokens > 0 && snap->step_tokens < launch ? snap->step_tokens : 0;
        }
    }
}

void Daemon::count_changes(std::uint64_t decisions_before) {
    constexpr double kCapEpsilonW = 0.5;  // the Controller skips writes closer than this
    const auto& history = m_controller.history();
    const auto added = static_cast<std::size_t>(
        std::min<std::uint64_t>(m_controller.decisions_total() - decisions_before, history.size()));
    for (std::size_t i = history.size() - added; i < history.size(); ++i) {
        for (std::size_t g = 0; g < m_engines.size() && g < history[i].cap_w.size(); ++g) {
            const double cap = history[i].cap_w[g];
            const int batch = history[i].batch_cap[g];
            m_cap_changes += !(std::abs(cap - m_last_cap_w[g]) <= kCapEpsilonW) ? 1U : 0U;
            m_batch_changes += batch != m_last_batch_cap[g] ? 1U : 0U;
            m_last_cap_w[g] = cap;
            m_last_batch_cap[g] = batch;
            if (batch != m_engines[g]->max_batch_cap() ||
                (g < history[i].step_tokens.size() && history[i].step_tokens[g] > 0)) {
                m_batch_cap_touched[g] = true;
            }
            if (g < history[i].step_tokens.size()) {
                const int tokens = history[i].step_tokens[g];
                m_step_tokens_changes += tokens != m_last_step_tokens[g] ? 1U : 0U;
                m_last_step_tokens[g] = tokens;
            }
        }
    }
}

Status Daemon::run(const std::atomic<bool>& stop, std::optional<Seconds> until) {
    read_limit_ranges();
    if (Status saved = m_saved.save(m_gpus, m_all_gpus, m_options.save_sm_clocks); !saved.is_ok()) {
        return saved.with_prefix("saving the GPU controls before the first write");
    }
    m_degraded = false;
    m_last_error = Status::ok();
    m_hold_pending = false;
    Status fatal;
    Status started = m_controller.start();
    if (started.is_ok()) {
        // The limits found may exceed the budget: lower them now, not one period later.
        started = enforce_budget(nullptr);
    }
    if (!started.is_ok()) {
        ++m_errors;
        enter_degraded(started);
        if (started.code() == StatusCode::kPermissionDenied) {
            fatal = started;
        }
    } else {
        note_controls_in_force();
    }
    publish();
    while (fatal.is_ok() && !stop.load() && !(until && m_clock.now() >= *until)) {
        const Seconds due = m_degraded ? m_next_retry : m_controller.next_tick();
        Seconds next = std::min(due, m_clock.now() + kStopPollPeriod);
        if (until) {
            next = std::min(next, *until);
        }
        m_clock.sleep_until(next);
        bool budget_applied = false;
        if (std::optional<BudgetRequest> request = m_store.take_budget()) {
            apply_budget_request(*request);
            budget_applied = true;
            if (m_degraded) {
                hold_limits();
                publish();  // running: the next period publishes it
            }
        }
        if (m_degraded) {
            if (m_hold_pending || budget_to_hold_w() != m_held_budget_w) {
                // A scheduled step came due, or a write failed: at every wake-up, not only at
                // the next retry, so that an overshoot lasts one poll period.
                hold_limits();
                publish();
            }
            if (m_clock.now() < m_next_retry) {
                continue;
            }
            const Status resumed = try_resume();
            if (resumed.is_ok()) {
                note_controls_in_force();
                ++m_recoveries;
                PALS_LOG_INFO("control resumed after {:.1f} s degraded ({} failed retries)",
                              (m_clock.now() - m_degraded_since).count(), m_failed_retries);
                m_degraded = false;
                m_batch_cap_fault = false;
                m_last_error = Status::ok();
            } else {
                ++m_errors;
                ++m_failed_retries;
                m_last_error = resumed;
                m_next_retry = m_clock.now() + m_period * m_options.retry_periods;
                PALS_LOG_DEBUG("control still degraded: {}", resumed.message());
                // A failed start may have written (enforce_budget): hold again.
                hold_limits();
                if (resumed.code() == StatusCode::kPermissionDenied) {
                    fatal = resumed;
                }
            }
            publish();
            continue;
        }
        // A budget that just dropped (through the API or a scheduled step) bounds the caps at
        // once, not at the next period: a breaker does not wait for the control loop.
        bool lowered = false;
        Status result = enforce_budget(&lowered);
        if (lowered) {
            ++m_cap_changes;
            m_last_cap_w = m_controller.caps_w();
            PALS_LOG_INFO("caps lowered to fit the budget of {:.0f} W before the next period",
                          m_controller.budget().at(m_clock.now().count()));
        }
        const bool tick_due = result.is_ok() && m_clock.now() >= m_controller.next_tick();
        if (tick_due) {
            const std::uint64_t before = m_controller.decisions_total();
            result = m_controller.run_until(m_clock.now());
            count_changes(before);
            bool lowered_after = false;
            if (result.is_ok()) {
                // A step that came due during a slow write of the tick is held now.
                result = enforce_budget(&lowered_after);
            }
            if (lowered_after) {
                ++m_cap_changes;
                m_last_cap_w = m_controller.caps_w();
            }
            if (result.is_ok()) {
                result = check_batch_caps();
            }
        }
        if (!result.is_ok()) {
            ++m_errors;
            enter_degraded(result);
            if (result.code() == StatusCode::kPermissionDenied) {
                // No root / CAP_SYS_ADMIN, an unwritable batch-cap file: retrying cannot help.
                fatal = result;
            }
        }
        // A new budget is published at once (with the caps it lowered): a cluster agent
        // acknowledges it from the snapshot.
        if (tick_due || lowered || budget_applied || !result.is_ok()) {
            publish();
        }
    }
    reset_batch_caps();
    // Every GPU whose controls differ from the saved ones is written back (lowers first); one
    // that already holds its saved values needs no write. Entries not restored stay on disk.
    // With an exit budget (a cluster member), the limits are held within it instead.
    const Status restored =
        m_options.exit_budget_w > 0.0 ? hold_for_exit() : m_saved.restore(m_gpus);
    if (!fatal.is_ok()) {
        if (restored.is_ok()) {
            PALS_LOG_ERROR("{}: stopping; the GPU limits hold their saved values", fatal.message());
            return fatal;
        }
        PALS_LOG_ERROR("{}: stopping; {}", fatal.message(), restored.message());
        return {fatal.code(),
                fmt::format("{}; stopping, and the GPU limits could not all be restored: {}; "
                            "restore them with `pals power restore --state-file {}` (as root)",
                            fatal.message(), restored.message(), m_saved.path().string())};
    }
    if (!restored.is_ok()) {
        PALS_LOG_ERROR("restoring saved limits failed: {}", restored.message());
        return restored.with_prefix(
            fmt::format("restoring the saved GPU limits (kept in {}; retry with `pals power "
                        "restore --state-file {}`)",
                        m_saved.path().string(), m_saved.path().string()));
    }
    return Status::ok();
}

}  // namespace pals::control
