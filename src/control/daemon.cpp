#include "pals/control/daemon.hpp"

#include <algorithm>

#include "pals/common/log.hpp"

namespace pals::control {

namespace {
/// The loop wakes at least this often to notice a stop request.
constexpr Seconds kStopPollPeriod{0.1};
}  // namespace

Daemon::Daemon(Clock& clock, power::GpuBackend& gpus, std::vector<engine::ServingEngine*> engines,
               std::unique_ptr<Policy> policy, ControllerConfig config, api::StateStore& store,
               power::SavedControls& saved)
    : m_clock(clock)
    , m_gpus(gpus)
    , m_engines(engines)
    , m_controller(clock, gpus, std::move(engines), std::move(policy), std::move(config))
    , m_store(store)
    , m_saved(saved)
    , m_policy_name(m_controller.policy().name()) {
    for (engine::ServingEngine* e : m_engines) {
        for (int g : e->gpus()) {
            m_all_gpus.push_back(g);
        }
    }
}

void Daemon::publish(bool degraded) {
    auto s = std::make_shared<api::StateSnapshot>();
    s->time_s = m_clock.now().count();
    s->policy = m_policy_name;
    s->degraded = degraded;
    s->budget_w = m_controller.budget().at(s->time_s);
    s->budget_steps = m_controller.budget().steps();
    s->errors_total = m_errors;
    s->budget_updates_total = m_budget_updates;
    s->cap_changes_total = m_cap_changes;
    s->batch_changes_total = m_batch_changes;
    const auto& history = m_controller.history();
    s->decisions_total = history.size();
    if (auto samples = m_gpus.sample_all(); samples.is_ok()) {
        for (const power::GpuSample& g : samples.value()) {
            s->gpu_power_w.push_back(g.power_w);
            s->gpu_energy_j.push_back(g.energy_j);
            s->energy_j += g.energy_j;
        }
    }
    if (!history.empty()) {
        const TickRecord& t = history.back();
        s->power_w = t.power_w;
        s->last_decision = t.reason;
        for (std::size_t i = 0; i < m_engines.size() && i < t.cap_w.size(); ++i) {
            api::GroupState g;
            g.index = static_cast<int>(i);
            g.gpus = m_engines[i]->gpus();
            g.cap_w = t.cap_w[i];
            g.batch_cap = t.batch_cap[i];
            g.power_w = t.group_power_w[i];
            if (auto snap = m_engines[i]->snapshot(); snap.is_ok()) {
                g.running = snap->running;
                g.waiting = snap->waiting;
                s->generation_tokens += snap->generation_tokens;
            }
            s->groups.push_back(std::move(g));
        }
    }
    m_store.publish(std::move(s));
}

Status Daemon::run(const std::atomic<bool>& stop, std::optional<Seconds> until) {
    PALS_RETURN_IF_ERROR(m_saved.save(m_gpus, m_all_gpus));
    Status result = m_controller.start();
    bool degraded = !result.is_ok();
    publish(degraded);
    while (!stop.load() && !(until && m_clock.now() >= *until)) {
        // Degraded: no more ticks, just stay up (serving the API) until stopped.
        const Seconds due = degraded ? m_clock.now() + kStopPollPeriod : m_controller.next_tick();
        const Seconds next = until ? std::min(due, *until) : due;
        m_clock.sleep_until(std::min(next, m_clock.now() + kStopPollPeriod));
        if (std::optional<api::BudgetRequest> request = m_store.take_budget()) {
            std::vector<std::pair<double, double>> steps;
            const double now = m_clock.now().count();
            for (const auto& [t, w] : request->steps) {
                steps.emplace_back(now + t, w);
            }
            if (auto schedule = BudgetSchedule::from_steps(std::move(steps)); schedule.is_ok()) {
                m_controller.set_budget(std::move(schedule).value());
                ++m_budget_updates;
                PALS_LOG_INFO("budget changed to {:.0f} W", request->steps.front().second);
            }
        }
        if (degraded || m_clock.now() < m_controller.next_tick()) {
            continue;
        }
        const std::size_t before = m_controller.history().size();
        const Status tick = m_controller.run_until(m_clock.now());
        if (!tick.is_ok()) {
            ++m_errors;
            degraded = true;
            result = tick;
            PALS_LOG_WARN("controller degraded, saved limits restored: {}", tick.message());
            (void)m_saved.restore(m_gpus);
        }
        const auto& history = m_controller.history();
        for (std::size_t i = std::max<std::size_t>(before, 1); i < history.size(); ++i) {
            m_cap_changes += history[i].cap_w != history[i - 1].cap_w ? 1U : 0U;
            m_batch_changes += history[i].batch_cap != history[i - 1].batch_cap ? 1U : 0U;
        }
        publish(degraded);
    }
    const Status restored = m_saved.restore(m_gpus);
    if (!restored.is_ok()) {
        PALS_LOG_ERROR("restoring saved limits failed: {}", restored.message());
        return result.is_ok() ? restored : result;
    }
    return result;
}

}  // namespace pals::control
