#include "pals/control/daemon.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "pals/common/log.hpp"

namespace pals::control {

namespace {
/// The loop wakes at least this often to notice a stop request.
constexpr Seconds kStopPollPeriod{0.1};

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

Daemon::Daemon(Clock& clock, power::GpuBackend& gpus, std::vector<engine::ServingEngine*> engines,
               std::unique_ptr<Policy> policy, ControllerConfig config, api::StateStore& store,
               power::SavedControls& saved, DaemonOptions options)
    : m_clock(clock)
    , m_gpus(gpus)
    , m_engines(engines)
    , m_period(config.period)
    , m_controller(clock, gpus, std::move(engines), std::move(policy), std::move(config))
    , m_store(store)
    , m_saved(saved)
    , m_options(options)
    , m_policy_name(m_controller.policy().name())
    , m_batch_cap_touched(m_engines.size(), false)
    , m_tokens_last(m_engines.size(), std::numeric_limits<double>::quiet_NaN())
    , m_tokens(m_engines.size(), 0.0)
    , m_group_tok_s(m_engines.size(), 0.0) {
    m_options.retry_periods = std::max(1, m_options.retry_periods);
    for (engine::ServingEngine* e : m_engines) {
        for (int g : e->gpus()) {
            m_all_gpus.push_back(g);
        }
    }
}

void Daemon::publish() {
    auto s = std::make_shared<api::StateSnapshot>();
    const double now_s = m_clock.now().count();
    s->time_s = now_s;
    s->policy = m_policy_name;
    s->degraded = m_degraded;
    s->budget_w = m_controller.budget().at(now_s);
    s->budget_steps = m_controller.budget().steps();
    s->errors_total = m_errors;
    s->budget_updates_total = m_budget_updates;
    s->cap_changes_total = m_cap_changes;
    s->batch_changes_total = m_batch_changes;
    const auto& history = m_controller.history();
    s->decisions_total = history.size();

    if (auto samples = m_gpus.sample_all(); samples.is_ok()) {
        const std::size_t n = samples->size();
        m_gpu_energy_last_j.resize(n, std::numeric_limits<double>::quiet_NaN());
        m_gpu_energy_j.resize(n, 0.0);
        for (std::size_t i = 0; i < n; ++i) {
            const power::GpuSample& g = samples.value()[i];
            accumulate(g.energy_j, m_gpu_energy_last_j[i], m_gpu_energy_j[i]);
            s->gpu_power_w.push_back(g.power_w);
            s->gpu_energy_j.push_back(m_gpu_energy_j[i]);
            s->energy_j += m_gpu_energy_j[i];
        }
    }

    // Tokens since the daemon started, per group, and tokens/s since the last publish.
    const double dt_s = now_s - m_tokens_time_s;
    m_tokens_time_s = now_s;
    const TickRecord* tick = !m_degraded && !history.empty() ? &history.back() : nullptr;
    const std::vector<double> caps_now = m_controller.caps_w();
    double node_power_w = 0.0;
    for (std::size_t i = 0; i < m_engines.size(); ++i) {
        engine::ServingEngine& engine = *m_engines[i];
        api::GroupState g;
        g.index = static_cast<int>(i);
        g.gpus = engine.gpus();
        g.batch_cap = engine.max_batch_cap();
        const double tokens_before = m_tokens[i];
        // While controlling, the controller's own reading of this period (one scrape per period);
        // degraded, a fresh one.
        Result<engine::EngineSnapshot> fresh = Status::unavailable("not read");
        const engine::EngineSnapshot* snap = tick != nullptr ? m_controller.last_snapshot(i) : nullptr;
        if (snap == nullptr) {
            fresh = engine.snapshot();
            snap = fresh.is_ok() ? &fresh.value() : nullptr;
        }
        if (snap != nullptr) {
            g.running = snap->running;
            g.waiting = snap->waiting;
            g.batch_cap = snap->batch_cap > 0 ? snap->batch_cap : g.batch_cap;
            accumulate(snap->generation_tokens, m_tokens_last[i], m_tokens[i]);
        }
        m_group_tok_s[i] = dt_s > 0.0 ? (m_tokens[i] - tokens_before) / dt_s : m_group_tok_s[i];
        g.generation_tok_s = m_group_tok_s[i];
        s->generation_tokens += m_tokens[i];
        if (tick != nullptr && i < tick->cap_w.size()) {
            g.cap_w = caps_now[i];  // the period's decision, or lower if the budget dropped since
            g.batch_cap = tick->batch_cap[i];
            g.power_w = tick->group_power_w[i];
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
    }
}

void Daemon::enter_degraded(const Status& error) {
    m_degraded = true;
    m_last_error = error;
    m_degraded_since = m_clock.now();
    m_next_retry = m_clock.now() + m_period * m_options.retry_periods;
    m_failed_retries = 0;
    const Status restored = m_saved.restore(m_gpus);
    m_restore_pending = !restored.is_ok();
    reset_batch_caps();
    if (restored.is_ok()) {
        hold_budget_degraded();
        PALS_LOG_WARN("control degraded: {}; saved limits restored; retrying every {:.3g} s",
                      error.message(), (m_period * m_options.retry_periods).count());
    } else {
        PALS_LOG_WARN(
            "control degraded: {}; restoring the saved limits failed: {}; retrying every {:.3g} s",
            error.message(), restored.message(), (m_period * m_options.retry_periods).count());
    }
}

bool Daemon::gpu_writes_refused() {
    if (m_all_gpus.empty()) {
        return false;
    }
    const int gpu = m_all_gpus.front();
    Result<double> limit = m_gpus.power_limit_w(gpu);
    if (!limit.is_ok()) {
        return false;
    }
    // Writing the limit in force changes nothing; only the permission check matters.
    Result<double> set = m_gpus.set_power_limit(gpu, limit.value());
    return !set.is_ok() && set.status().code() == StatusCode::kPermissionDenied;
}

void Daemon::hold_budget_degraded() {
    const double budget_w = m_controller.budget().at(m_clock.now().count());
    if (!m_controller.policy().honours_budget() || !std::isfinite(budget_w) || m_all_gpus.empty()) {
        return;
    }
    auto hold = [&]() -> Status {
        std::vector<double> limits;
        double total_w = 0.0;
        for (int gpu : m_all_gpus) {
            Result<double> limit = m_gpus.power_limit_w(gpu);
            if (!limit.is_ok()) {
                return limit.status();
            }
            limits.push_back(limit.value());
            total_w += limit.value();
        }
        constexpr double kToleranceW = 0.5;
        if (total_w <= budget_w + kToleranceW) {
            return Status::ok();
        }
        Result<power::PowerLimitRange> range = m_gpus.power_limit_range(m_all_gpus.front());
        if (!range.is_ok()) {
            return range.status();
        }
        const double share_w = range->clamp(budget_w / static_cast<double>(m_all_gpus.size()));
        // Saved again first: a restore on entering degraded mode removed the saved state.
        PALS_RETURN_IF_ERROR(m_saved.save(m_gpus, m_all_gpus, m_options.save_sm_clocks));
        for (std::size_t i = 0; i < m_all_gpus.size(); ++i) {
            if (limits[i] > share_w + kToleranceW) {
                Result<double> set = m_gpus.set_power_limit(m_all_gpus[i], share_w);
                if (!set.is_ok()) {
                    return set.status();
                }
            }
        }
        PALS_LOG_WARN("degraded: limits lowered to {:.0f} W per GPU to hold the budget of {:.0f} W",
                      share_w, budget_w);
        return Status::ok();
    };
    if (const Status held = hold(); !held.is_ok()) {
        ++m_errors;
        PALS_LOG_WARN("degraded: cannot hold the budget of {:.0f} W: {}", budget_w, held.message());
    }
}

Status Daemon::try_resume() {
    if (m_restore_pending) {
        PALS_RETURN_IF_ERROR(m_saved.restore(m_gpus));
        m_restore_pending = false;
    }
    // The controls are saved again before the first write: after a restore the state file is
    // gone, and SavedControls keeps the first value saved anyway.
    PALS_RETURN_IF_ERROR(m_saved.save(m_gpus, m_all_gpus, m_options.save_sm_clocks));
    return m_controller.start();
}

void Daemon::apply_budget_request(const api::BudgetRequest& request) {
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
    for (std::size_t g = 0; g < m_engines.size(); ++g) {
        const std::vector<int> gpus = m_engines[g]->gpus();
        if (!gpus.empty()) {
            if (auto limit = m_gpus.power_limit_w(gpus.front()); limit.is_ok()) {
                m_last_cap_w[g] = limit.value();
            }
        }
        m_last_batch_cap[g] = m_engines[g]->max_batch_cap();
        if (auto snap = m_engines[g]->snapshot(); snap.is_ok() && snap->batch_cap > 0) {
            m_last_batch_cap[g] = snap->batch_cap;
        }
    }
}

void Daemon::count_changes(std::size_t history_before) {
    constexpr double kCapEpsilonW = 0.5;  // the Controller skips writes closer than this
    const auto& history = m_controller.history();
    for (std::size_t i = history_before; i < history.size(); ++i) {
        for (std::size_t g = 0; g < m_engines.size() && g < history[i].cap_w.size(); ++g) {
            const double cap = history[i].cap_w[g];
            const int batch = history[i].batch_cap[g];
            m_cap_changes += !(std::abs(cap - m_last_cap_w[g]) <= kCapEpsilonW) ? 1U : 0U;
            m_batch_changes += batch != m_last_batch_cap[g] ? 1U : 0U;
            m_last_cap_w[g] = cap;
            m_last_batch_cap[g] = batch;
            if (batch != m_engines[g]->max_batch_cap()) {
                m_batch_cap_touched[g] = true;
            }
        }
    }
}

Status Daemon::run(const std::atomic<bool>& stop, std::optional<Seconds> until) {
    if (Status saved = m_saved.save(m_gpus, m_all_gpus, m_options.save_sm_clocks); !saved.is_ok()) {
        return saved.with_prefix("saving the GPU controls before the first write");
    }
    m_degraded = false;
    m_last_error = Status::ok();
    m_restore_pending = false;
    if (Status started = m_controller.start(); !started.is_ok()) {
        ++m_errors;
        enter_degraded(started);
    } else {
        note_controls_in_force();
    }
    publish();
    Status fatal;
    while (!stop.load() && !(until && m_clock.now() >= *until)) {
        const Seconds due = m_degraded ? m_next_retry : m_controller.next_tick();
        Seconds next = std::min(due, m_clock.now() + kStopPollPeriod);
        if (until) {
            next = std::min(next, *until);
        }
        m_clock.sleep_until(next);
        if (std::optional<api::BudgetRequest> request = m_store.take_budget()) {
            apply_budget_request(*request);
            if (m_degraded) {
                hold_budget_degraded();
                publish();  // running: the next period publishes it
            }
        }
        if (m_degraded) {
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
                m_last_error = Status::ok();
            } else {
                ++m_errors;
                ++m_failed_retries;
                m_last_error = resumed;
                hold_budget_degraded();  // a scheduled budget step may have come due
                m_next_retry = m_clock.now() + m_period * m_options.retry_periods;
                PALS_LOG_DEBUG("control still degraded: {}", resumed.message());
                if (resumed.code() == StatusCode::kPermissionDenied) {
                    fatal = resumed;
                    publish();
                    break;
                }
            }
            publish();
            continue;
        }
        // A budget that just dropped (through the API or a scheduled step) bounds the caps at
        // once, not at the next period: a breaker does not wait for the control loop.
        bool lowered = false;
        Status result = m_controller.enforce_budget(&lowered);
        if (lowered) {
            ++m_cap_changes;
            m_last_cap_w = m_controller.caps_w();
            PALS_LOG_INFO("caps lowered to fit the budget of {:.0f} W before the next period",
                          m_controller.budget().at(m_clock.now().count()));
        }
        const bool tick_due = result.is_ok() && m_clock.now() >= m_controller.next_tick();
        if (tick_due) {
            const std::size_t before = m_controller.history().size();
            result = m_controller.run_until(m_clock.now());
            count_changes(before);
        }
        if (!result.is_ok()) {
            ++m_errors;
            if (result.code() == StatusCode::kPermissionDenied && gpu_writes_refused()) {
                // The GPUs refuse every write (no root / CAP_SYS_ADMIN): none of ours took effect,
                // so there is nothing to restore, now or after exit. Retrying cannot help.
                m_degraded = true;
                m_last_error = result;
                if (const Status dropped = m_saved.discard_new(); !dropped.is_ok()) {
                    PALS_LOG_ERROR("dropping the saved controls failed: {}", dropped.message());
                }
                PALS_LOG_ERROR(
                    "no permission to change GPU settings: stopping (nothing was changed)");
                fatal = result;
                publish();
                break;
            }
            enter_degraded(result);
            if (result.code() == StatusCode::kPermissionDenied) {
                // E.g. an unwritable batch-cap file: retrying cannot help either.
                fatal = result;
                publish();
                break;
            }
        }
        if (tick_due || lowered || !result.is_ok()) {
            publish();
        }
    }
    reset_batch_caps();
    const Status restored = m_saved.restore(m_gpus);
    if (!restored.is_ok()) {
        PALS_LOG_ERROR("restoring saved limits failed: {}", restored.message());
        return fatal.is_ok() ? restored : fatal;
    }
    return fatal;
}

}  // namespace pals::control
