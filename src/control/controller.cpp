#include "pals/control/controller.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "pals/common/log.hpp"

namespace pals::control {

Result<BudgetSchedule> BudgetSchedule::from_steps(std::vector<std::pair<double, double>> steps) {
    if (steps.empty()) {
        return Status::invalid_argument("a budget schedule needs at least one [t_s, watts] step");
    }
    for (std::size_t i = 0; i < steps.size(); ++i) {
        if (!std::isfinite(steps[i].second) || steps[i].second <= 0.0) {
            return Status::invalid_argument("budget step " + std::to_string(i) +
                                            ": watts must be > 0");
        }
        if (!std::isfinite(steps[i].first) || (i > 0 && steps[i].first <= steps[i - 1].first)) {
            return Status::invalid_argument("budget step " + std::to_string(i) +
                                            ": times must increase");
        }
    }
    BudgetSchedule b;
    b.m_steps = std::move(steps);
    return b;
}

double BudgetSchedule::at(double t_s) const {
    if (m_steps.empty()) {
        return std::numeric_limits<double>::infinity();
    }
    double watts = m_steps.front().second;
    for (const auto& [t, w] : m_steps) {
        if (t > t_s) {
            break;
        }
        watts = w;
    }
    return watts;
}

Controller::Controller(Clock& clock, power::GpuBackend& gpus,
                       const std::vector<engine::ServingEngine*>& engines,
                       std::unique_ptr<Policy> policy, ControllerConfig config)
    : m_clock(clock), m_gpus(gpus), m_policy(std::move(policy)), m_config(std::move(config)) {
    for (engine::ServingEngine* e : engines) {
        GroupState g;
        g.engine = e;
        g.gpus = e->gpus();
        m_groups.push_back(std::move(g));
    }
}

Status Controller::start() {
    if (m_groups.empty()) {
        return Status::invalid_argument("the controller needs at least one engine");
    }
    PALS_ASSIGN_OR_RETURN(power::PowerLimitRange range,
                          m_gpus.power_limit_range(m_groups.front().gpus.front()));
    m_range = range;
    PALS_ASSIGN_OR_RETURN(std::vector<power::GpuSample> samples, m_gpus.sample_all());
    for (GroupState& g : m_groups) {
        PALS_ASSIGN_OR_RETURN(engine::EngineSnapshot snap, g.engine->snapshot());
        g.snapshots = {snap};
        g.batch_cap = snap.batch_cap > 0 ? snap.batch_cap : g.engine->max_batch_cap();
        const int max_tokens = g.engine->max_step_tokens();
        g.step_tokens =
            snap.step_tokens > 0 && snap.step_tokens < max_tokens ? snap.step_tokens : 0;
        g.energy_j = 0.0;
        // The highest limit of the group's GPUs: the cap is an upper bound of each GPU's limit,
        // so the budget check (cap x GPUs) never underestimates the sum in force.
        g.cap_w = 0.0;
        for (int gpu : g.gpus) {
            const power::GpuSample& s = samples.at(static_cast<std::size_t>(gpu));
            g.energy_j += s.energy_j;
            g.cap_w = std::max(g.cap_w, s.power_limit_w);
        }
    }
    m_last_time_s = m_clock.now().count();
    m_next_tick = m_clock.now() + m_config.period;
    return Status::ok();
}

Result<Observation> Controller::observe() {
    Observation o;
    o.time_s = m_clock.now().count();
    o.period_s = std::max(1e-9, o.time_s - m_last_time_s);
    o.budget_w = m_config.budget.at(o.time_s);
    o.cap_range = m_range;
    o.sm_clock_max_mhz = m_config.sm_clock_max_mhz;
    o.slo_ttft_s = m_config.slo_ttft_s;
    o.slo_tpot_s = m_config.slo_tpot_s;
    PALS_ASSIGN_OR_RETURN(std::vector<power::GpuSample> samples, m_gpus.sample_all());
    const auto latency_snapshots =
        static_cast<std::size_t>(
            std::max(1.0, std::round(m_config.latency_window / m_config.period))) +
        1;
    for (GroupState& g : m_groups) {
        PALS_ASSIGN_OR_RETURN(engine::EngineSnapshot snap, g.engine->snapshot());
        GroupObservation go;
        go.gpus = static_cast<int>(g.gpus.size());
        double energy = 0.0;
        double clock = 0.0;
        for (int gpu : g.gpus) {
            const power::GpuSample& s = samples.at(static_cast<std::size_t>(gpu));
            energy += s.energy_j;
            clock += s.sm_clock_mhz;
        }
        go.power_w = std::max(0.0, energy - g.energy_j) / o.period_s;
        g.energy_j = energy;
        go.sm_clock_mhz = clock / static_cast<double>(g.gpus.size());
        Result<engine::EngineWindow> last = engine::window_between(g.snapshots.back(), snap);
        g.snapshots.push_back(snap);
        if (g.snapshots.size() > latency_snapshots) {
            g.snapshots.erase(g.snapshots.begin());
        }
        Result<engine::EngineWindow> window = engine::window_between(g.snapshots.front(), snap);
        if (!last.is_ok() || !window.is_ok()) {
            return last.is_ok() ? window.status() : last.status();
        }
        go.cap_w = g.cap_w;
        go.batch_cap = g.batch_cap;
        go.max_batch_cap = g.engine->max_batch_cap();
        go.step_tokens = g.step_tokens;
        go.max_step_tokens = g.engine->max_step_tokens();
        go.running = snap.running;
        go.waiting = snap.waiting;
        go.waiting_previous = g.waiting_previous;
        go.kv_cache_usage = snap.kv_cache_usage;
        g.waiting_previous = snap.waiting;
        go.generation_tok_s = last->generation_tok_s();
        go.prompt_tok_s = last->duration_s > 0.0 ? last->prompt_tokens / last->duration_s : 0.0;
        go.avg_output_tokens =
            snap.requests_finished > 0.0 ? snap.generation_tokens / snap.requests_finished : 0.0;
        go.itl_p90_s = window->itl_s.quantile(0.9);
        go.ttft_p90_s = window->ttft_s.quantile(0.9);
        go.tpot_p90_s = window->tpot_s.quantile(0.9);
        go.ttft_miss_share = window->ttft_s.share_above(o.slo_ttft_s);
        go.tpot_miss_share = window->tpot_s.share_above(o.slo_tpot_s);
        go.window_requests = window->ttft_s.count;
        o.groups.push_back(go);
    }
    m_last_time_s = o.time_s;
    return o;
}

namespace {
constexpr double kCapEpsilonW = 0.5;  // skip writes that would not change the limit
}  // namespace

void Controller::fit_caps_to_budget(std::vector<double>& caps_w, double budget_w) const {
    double total = 0.0;
    double floor = 0.0;
    for (std::size_t i = 0; i < caps_w.size(); ++i) {
        const double gpus = static_cast<double>(m_groups[i].gpus.size());
        total += caps_w[i] * gpus;
        floor += m_range.min_w * gpus;
    }
    if (total > budget_w) {
        const double scale = std::max(0.0, (budget_w - floor) / (total - floor));
        for (double& cap : caps_w) {
            cap = m_range.min_w + (cap - m_range.min_w) * scale;
        }
    }
}

Status Controller::write_cap(GroupState& g, double cap_w) {
    for (int gpu : g.gpus) {
        Result<double> set = m_gpus.set_power_limit(gpu, cap_w);
        if (!set.is_ok()) {
            g.cap_w = std::max(g.cap_w, cap_w);  // still an upper bound of every GPU's limit
            return set.status();
        }
    }
    g.cap_w = cap_w;
    return Status::ok();
}

Status Controller::lower_caps(const std::vector<std::pair<std::size_t, double>>& caps) {
    // The GPUs of a group may hold different limits (an operator's, a partial failure), so a
    // group whose cap falls may still raise some GPU: every GPU above its new cap, in every
    // group, is lowered before any GPU below its new cap is raised.
    struct Write {
        std::size_t group;
        int gpu;
        double cap_w;
    };
    std::vector<Write> lowers;
    std::vector<Write> raises;
    for (const auto& [i, cap_w] : caps) {
        const GroupState& g = m_groups[i];
        for (int gpu : g.gpus) {
            Result<double> now =
                g.gpus.size() > 1 ? m_gpus.power_limit_w(gpu) : Result<double>(g.cap_w);
            (now.is_ok() && *now < cap_w ? raises : lowers).push_back({i, gpu, cap_w});
        }
    }
    for (const std::vector<Write>* phase : {&lowers, &raises}) {
        for (const Write& w : *phase) {
            Result<double> set = m_gpus.set_power_limit(w.gpu, w.cap_w);
            if (!set.is_ok()) {
                return set.status();  // the groups keep their old (higher) caps: upper bounds
            }
        }
    }
    for (const auto& [i, cap_w] : caps) {
        m_groups[i].cap_w = cap_w;
    }
    return Status::ok();
}

Status Controller::raise_cap(std::size_t group, double cap_w) {
    GroupState& g = m_groups[group];
    if (!m_policy->honours_budget()) {
        return write_cap(g, cap_w);
    }
    // GPU by GPU, each write only as far as the budget in force *now* allows: a slow write may
    // have let a lower budget step come due since the decision (enforce_budget() lowers next).
    double others_w = 0.0;
    for (std::size_t j = 0; j < m_groups.size(); ++j) {
        others_w +=
            j == group ? 0.0 : m_groups[j].cap_w * static_cast<double>(m_groups[j].gpus.size());
    }
    const double old_w = g.cap_w;
    const auto n = static_cast<double>(g.gpus.size());
    double written = 0.0;
    for (int gpu : g.gpus) {
        const double budget_w = m_config.budget.at(m_clock.now().count());
        if (others_w + (written + 1.0) * cap_w + (n - written - 1.0) * old_w > budget_w + 1e-6) {
            break;
        }
        Result<double> set = m_gpus.set_power_limit(gpu, cap_w);
        if (!set.is_ok()) {
            g.cap_w = written > 0.0 ? cap_w : old_w;  // an upper bound of every GPU's limit
            return set.status();
        }
        written += 1.0;
    }
    g.cap_w = written > 0.0 ? cap_w : old_w;
    return Status::ok();
}

std::vector<double> Controller::caps_w() const {
    std::vector<double> out;
    for (const GroupState& g : m_groups) {
        out.push_back(g.cap_w);
    }
    return out;
}

Status Controller::enforce_budget(bool* lowered) {
    if (lowered != nullptr) {
        *lowered = false;
    }
    const double budget_w = m_config.budget.at(m_clock.now().count());
    if (!m_policy->honours_budget() || !std::isfinite(budget_w) || m_groups.empty()) {
        return Status::ok();
    }
    std::vector<double> caps = caps_w();
    fit_caps_to_budget(caps, budget_w);
    std::vector<std::pair<std::size_t, double>> falling;
    for (std::size_t i = 0; i < caps.size(); ++i) {
        if (caps[i] < m_groups[i].cap_w - kCapEpsilonW) {
            falling.emplace_back(i, caps[i]);
        }
    }
    if (falling.empty()) {
        return Status::ok();
    }
    if (lowered != nullptr) {
        *lowered = true;
    }
    return lower_caps(falling);
}

Status Controller::actuate(const Observation& o, std::vector<GroupDecision> decisions) {
    if (decisions.size() != m_groups.size()) {
        return Status::internal(std::string(m_policy->name()) + " returned " +
                                std::to_string(decisions.size()) + " decisions for " +
                                std::to_string(m_groups.size()) + " groups");
    }
    for (std::size_t i = 0; i < decisions.size(); ++i) {
        GroupDecision& d = decisions[i];
        d.cap_w = m_range.clamp(d.cap_w);
        d.batch_cap = std::clamp(d.batch_cap, 1, m_groups[i].engine->max_batch_cap());
        const int max_tokens = m_groups[i].engine->max_step_tokens();
        // 0 (and the launch value itself) is the launch value.
        d.step_tokens =
            max_tokens > 0 && d.step_tokens > 0 && d.step_tokens < max_tokens ? d.step_tokens : 0;
    }
    // The budget bounds the sum of caps: scale the caps above the minimum down together.
    if (m_policy->honours_budget() && std::isfinite(o.budget_w)) {
        std::vector<double> caps;
        for (const GroupDecision& d : decisions) {
            caps.push_back(d.cap_w);
        }
        fit_caps_to_budget(caps, o.budget_w);
        for (std::size_t i = 0; i < decisions.size(); ++i) {
            // The reason states what is applied: a cap the budget lowered says so.
            if (caps[i] < decisions[i].cap_w - kCapEpsilonW) {
                decisions[i].reason += fmt::format("; cap {:.0f} W fitted to the {:.0f} W budget",
                                                   caps[i], o.budget_w);
            }
            decisions[i].cap_w = caps[i];
        }
    }
    // 1. Caps that fall, first: the budget may just have dropped.
    std::vector<std::pair<std::size_t, double>> falling;
    for (std::size_t i = 0; i < decisions.size(); ++i) {
        if (decisions[i].cap_w < m_groups[i].cap_w - kCapEpsilonW) {
            falling.emplace_back(i, decisions[i].cap_w);
        }
    }
    if (!falling.empty()) {
        PALS_RETURN_IF_ERROR(lower_caps(falling));
    }
    // 2. Batch caps, step-token budgets and clocks.
    for (std::size_t i = 0; i < decisions.size(); ++i) {
        GroupState& g = m_groups[i];
        const GroupDecision& d = decisions[i];
        const bool batch_changes = d.batch_cap != g.batch_cap;
        const bool tokens_change = d.step_tokens != g.step_tokens;
        if (batch_changes) {
            PALS_RETURN_IF_ERROR(g.engine->set_batch_cap(d.batch_cap));
            g.batch_cap = d.batch_cap;
        }
        if (tokens_change) {
            PALS_RETURN_IF_ERROR(g.engine->set_step_tokens(d.step_tokens));
            g.step_tokens = d.step_tokens;
        }
        if (!batch_changes && !tokens_change) {
            // Unchanged: republish them, or an engine whose settings expire would drop them.
            PALS_RETURN_IF_ERROR(g.engine->refresh_controls());
        }
        if (d.locked_clock_mhz >= 0.0 && d.locked_clock_mhz != g.locked_clock_mhz) {
            for (int gpu : g.gpus) {
                PALS_RETURN_IF_ERROR(
                    d.locked_clock_mhz > 0.0
                        ? m_gpus.lock_sm_clocks(gpu, {d.locked_clock_mhz, d.locked_clock_mhz})
                        : m_gpus.reset_sm_clocks(gpu));
            }
            g.locked_clock_mhz = d.locked_clock_mhz;
        }
    }
    // 3. Caps that rise, last.
    for (std::size_t i = 0; i < decisions.size(); ++i) {
        if (decisions[i].cap_w > m_groups[i].cap_w + kCapEpsilonW) {
            PALS_RETURN_IF_ERROR(raise_cap(i, decisions[i].cap_w));
        }
    }
    TickRecord rec;
    rec.time_s = o.time_s;
    rec.budget_w = o.budget_w;
    for (std::size_t i = 0; i < decisions.size(); ++i) {
        rec.power_w += o.groups[i].power_w;
        rec.group_power_w.push_back(o.groups[i].power_w);
        rec.cap_w.push_back(m_groups[i].cap_w);
        rec.batch_cap.push_back(m_groups[i].batch_cap);
        rec.locked_clock_mhz.push_back(m_groups[i].locked_clock_mhz);
        rec.step_tokens.push_back(m_groups[i].step_tokens);
        rec.ttft_miss_share.push_back(o.groups[i].ttft_miss_share);
        rec.tpot_miss_share.push_back(o.groups[i].tpot_miss_share);
        rec.window_requests.push_back(o.groups[i].window_requests);
        rec.generation_tok_s += o.groups[i].generation_tok_s;
    }
    rec.reason = decisions.empty() ? std::string() : decisions.front().reason;
    // One line per change of what is applied (the backends log each GPU write at debug).
    if (!m_history.empty() &&
        (m_history.back().cap_w != rec.cap_w || m_history.back().batch_cap != rec.batch_cap ||
         m_history.back().locked_clock_mhz != rec.locked_clock_mhz ||
         m_history.back().step_tokens != rec.step_tokens)) {
        const double clock = rec.locked_clock_mhz.front();
        const int tokens = rec.step_tokens.front();
        PALS_LOG_INFO("{}: cap {:.0f} W batch {} clock {} step tokens {} ({})", m_policy->name(),
                      rec.cap_w.front(), rec.batch_cap.front(),
                      clock > 0.0 ? fmt::format("{:.0f} MHz", clock) : std::string("free"),
                      tokens > 0 ? std::to_string(tokens) : std::string("launch"), rec.reason);
    }
    m_history.push_back(std::move(rec));
    ++m_decisions_total;
    if (m_config.history_limit > 0 && m_history.size() > m_config.history_limit) {
        m_history.pop_front();
    }
    return Status::ok();
}

Status Controller::tick() {
    PALS_ASSIGN_OR_RETURN(Observation o, observe());
    return actuate(o, m_policy->decide(o));
}

Status Controller::run_until(Seconds t) {
    while (m_next_tick <= t) {
        m_clock.sleep_until(m_next_tick);
        PALS_RETURN_IF_ERROR(tick());
        m_next_tick += m_config.period;
    }
    return Status::ok();
}

}  // namespace pals::control
