#include "pals/control/evaluation.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <tuple>

#include "pals/common/log.hpp"
#include "pals/control/pals_policy.hpp"
#include "pals/control/policies.hpp"
#include "pals/control/policy_registry.hpp"
#include "pals/sim/simulated_node.hpp"

namespace pals::control {

namespace {

constexpr double kWindowS = 10.0;        ///< the protocol's throughput windows
constexpr double kServedShare = 0.95;    ///< a window is missed below this share of offered load
constexpr double kOracleWindowS = 10.0;  ///< the window oracle re-plans this often
/// The oracles' objective is fewest violations, then most tokens/J: SLO attainments within this
/// of the best count as equally few (0.1 point: one request in a thousand).
constexpr double kOracleSloTolerance = 0.001;
/// The window oracle scores each point over its window and this long after it.
constexpr double kOracleLookAheadS = 20.0;
constexpr double kDrainLimitS = 3600.0;  ///< stop a run this long after the last arrival

double last_arrival(const std::vector<workload::Request>& requests) {
    return requests.empty() ? 0.0 : requests.back().arrival_s;
}

/// The protocol's figures from a finished simulation and the tick history.
PolicyMetrics score(const Scenario& sc, const std::vector<workload::Request>& requests,
                    const sim::Simulator& sim, const std::vector<TickRecord>& history,
                    PolicyRun& run) {
    PolicyMetrics m;
    const sim::SimulationReport report = sim.report();
    m.output_tokens = report.output_tokens;
    m.energy_j = report.energy_j;
    m.duration_s = report.duration_s;
    m.tokens_per_joule = report.tokens_per_joule;

    // QoS per request (requests arriving during warm-up are not counted).
    std::uint64_t counted = 0;
    for (const workload::Request& r : requests) {
        counted += r.arrival_s >= sc.warmup_s ? 1U : 0U;
    }
    std::uint64_t met = 0;
    double good_tokens = 0.0;
    for (const sim::RequestTiming& f : sim.finished_requests()) {
        if (f.arrival_s < sc.warmup_s) {
            continue;
        }
        run.ttft_s.push_back(f.ttft_s());
        if (f.output_tokens > 1) {
            run.tpot_s.push_back(f.tpot_s());
        }
        m.ttft_violations += f.ttft_s() > sc.slo.ttft_s ? 1U : 0U;
        m.tpot_violations += f.tpot_s() > sc.slo.tpot_s ? 1U : 0U;
        if (f.meets(sc.slo)) {
            ++met;
            good_tokens += f.output_tokens;
        }
    }
    std::sort(run.ttft_s.begin(), run.ttft_s.end());
    std::sort(run.tpot_s.begin(), run.tpot_s.end());
    m.requests = counted;
    m.qos_violations = counted - std::min(counted, met);
    m.slo_attainment = counted ? static_cast<double>(met) / static_cast<double>(counted) : 1.0;
    m.qos_violation_rate = 1.0 - m.slo_attainment;
    // What the loop expected from its latency window, period by period and group by group,
    // weighted by the requests each window saw.
    double expected_sum = 0.0;
    double expected_weight = 0.0;
    for (const TickRecord& tick : history) {
        if (tick.time_s < sc.warmup_s) {
            continue;
        }
        const std::size_t groups =
            std::min({tick.ttft_miss_share.size(), tick.tpot_miss_share.size(),
                      tick.window_requests.size()});
        for (std::size_t g = 0; g < groups; ++g) {
            const double e =
                expected_violation_share(tick.ttft_miss_share[g], tick.tpot_miss_share[g]);
            if (!std::isnan(e) && tick.window_requests[g] > 0.0) {
                expected_sum += e * tick.window_requests[g];
                expected_weight += tick.window_requests[g];
            }
        }
    }
    m.expected_violation_rate = expected_weight > 0.0 ? expected_sum / expected_weight : kNoRatio;
    const double scored_s = m.duration_s - sc.warmup_s;
    m.goodput_tok_s = scored_s > 0.0 ? good_tokens / scored_s : 0.0;

    // Served vs offered throughput per 10-s window, over the arrival span after warm-up.
    const double end = last_arrival(requests);
    double offered_total = 0.0;
    double served_total = 0.0;
    for (double t0 = sc.warmup_s; t0 + kWindowS <= end + 1e-9; t0 += kWindowS) {
        double offered = 0.0;
        if (sc.target_tok_s > 0.0) {
            offered = sc.target_tok_s * kWindowS;
        } else {
            for (const workload::Request& r : requests) {
                if (r.arrival_s >= t0 && r.arrival_s < t0 + kWindowS) {
                    offered += r.output_tokens;
                }
            }
        }
        double served = 0.0;
        for (const TickRecord& tick : history) {
            if (tick.time_s > t0 && tick.time_s <= t0 + kWindowS + 1e-9) {
                served += tick.generation_tok_s * sc.period_s;
            }
        }
        ++m.windows_total;
        if (served < kServedShare * offered) {
            ++m.windows_missed;
        }
        offered_total += offered;
        served_total += served;
    }
    // Served over offered across the span: a policy that keeps up only lags by its latency
    // (latency / span: ~0.3 % on the 600-s suite), one that falls behind shows its shortfall.
    m.served_deficit =
        offered_total > 0.0 ? std::max(0.0, 1.0 - served_total / offered_total) : 0.0;

    // Actuation: per group, periods whose settings differ from the period before.
    double changes = 0.0;
    std::size_t groups = 1;
    const auto setting = [](const auto& values, std::size_t g) {
        return g < values.size() ? static_cast<double>(values[g]) : 0.0;
    };
    for (std::size_t i = 1; i < history.size(); ++i) {
        const TickRecord& a = history[i - 1];
        const TickRecord& b = history[i];
        groups = std::max<std::size_t>(1, b.cap_w.size());
        if (b.time_s < sc.warmup_s) {
            continue;
        }
        for (std::size_t g = 0; g < groups; ++g) {
            changes += setting(a.cap_w, g) != setting(b.cap_w, g) ||
                               setting(a.batch_cap, g) != setting(b.batch_cap, g) ||
                               setting(a.locked_clock_mhz, g) != setting(b.locked_clock_mhz, g)
                           ? 1.0
                           : 0.0;
        }
    }
    m.actuations_per_min =
        scored_s > 0.0 ? 60.0 * changes / static_cast<double>(groups) / scored_s : 0.0;

    // Budget tracking: each tick's power is the mean over the period that just ended.
    if (!sc.budget.empty()) {
        for (const TickRecord& tick : history) {
            if (tick.time_s < sc.warmup_s) {
                continue;
            }
            const double budget = sc.budget.at(tick.time_s - 0.5 * sc.period_s);
            m.budget_energy_j += budget * sc.period_s;
            const double excess = tick.power_w - budget;
            if (excess > 1e-6) {
                m.budget_excess_j += excess * sc.period_s;
                m.budget_peak_excess_w = std::max(m.budget_peak_excess_w, excess);
                m.time_over_budget_s += sc.period_s;
            }
        }
        const auto& steps = sc.budget.steps();
        for (std::size_t i = 0; i < steps.size(); ++i) {
            const double t_step = steps[i].first;
            const double t_next =
                i + 1 < steps.size() ? steps[i + 1].first : std::numeric_limits<double>::infinity();
            double settled = t_step;
            for (const TickRecord& tick : history) {
                const double mid = tick.time_s - 0.5 * sc.period_s;
                if (mid >= t_step && mid < t_next && tick.power_w > steps[i].second + 1e-6) {
                    settled = tick.time_s;
                }
            }
            m.settle_time_s = std::max(m.settle_time_s, settled - t_step);
        }
    }
    return m;
}

Result<PolicyRun> run_controlled(const Scenario& sc, const std::vector<workload::Request>& requests,
                                 std::unique_ptr<Policy> policy) {
    if (!policy) {
        return Status::internal("no policy to run");
    }
    PALS_ASSIGN_OR_RETURN(auto node, sim::SimulatedNode::create(sc.node, requests, sc.slo));
    sim::SimulatedNode& n = *node;
    std::vector<engine::ServingEngine*> engines;
    for (int r = 0; r < n.replica_count(); ++r) {
        engines.push_back(&n.engine(r));
    }
    ControllerConfig config;
    config.period = Seconds{sc.period_s};
    config.slo_ttft_s = sc.slo.ttft_s;
    config.slo_tpot_s = sc.slo.tpot_s;
    config.sm_clock_max_mhz = sc.node.gpu.sm_clock_max_mhz;
    config.budget = sc.budget;
    PolicyRun run;
    run.policy = std::string(policy->name());
    Controller controller(n.clock(), n.gpus(), engines, std::move(policy), config);
    PALS_RETURN_IF_ERROR(controller.start());
    // The GPUs start at their launch limits (the maximum). Bound them by the budget in force at
    // t = 0 before the simulation serves anything, as the daemon does on its first poll: the
    // caps above the minimum are scaled down together, i.e. an even share of the budget clamped
    // to the cap range, until the policy's first decision one period later.
    PALS_RETURN_IF_ERROR(controller.enforce_budget());
    const double stop = last_arrival(requests) + kDrainLimitS;
    double t = sc.period_s;
    while (!(n.simulator().done() && t > last_arrival(requests)) && t < stop) {
        PALS_RETURN_IF_ERROR(controller.run_until(Seconds{t}));
        t += sc.period_s;
    }
    run.history.assign(controller.history().begin(), controller.history().end());
    run.metrics = score(sc, requests, n.simulator(), run.history, run);
    return run;
}

/// The grid's locks under a lower cap: (cap, lock MHz) pairs.
std::vector<std::pair<double, double>> capped_locks(const OracleGrid& grid) {
    std::vector<std::pair<double, double>> out;
    for (double cap : grid.capped_lock_caps_w) {
        for (double clock : grid.capped_lock_clocks_mhz) {
            out.emplace_back(cap, clock);
        }
    }
    return out;
}

/// A grid point as `chosen` shows it: "300 W x 64", "990 MHz x 64" (a lock at the highest cap
/// the budget allows) or "300 W, 990 MHz x 1024" (a lock under a lower cap); `compact`, as the
/// window oracle tallies its windows: "300x64", "990MHz x64", "300W 990MHz x1024".
std::string point_label(const OracleGrid& grid, double cap, int batch, double clock_mhz,
                        int step_tokens, bool compact = false) {
    const std::string tokens =
        step_tokens <= 0
            ? std::string()
            : fmt::format(fmt::runtime(compact ? " t{}" : ", {} tokens/step"), step_tokens);
    if (clock_mhz <= 0.0) {
        return fmt::format(fmt::runtime(compact ? "{:.0f}x{}" : "{:.0f} W x {}"), cap, batch) +
               tokens;
    }
    if (cap < grid.caps_w.back()) {
        return fmt::format(
                   fmt::runtime(compact ? "{:.0f}W {:.0f}MHz x{}" : "{:.0f} W, {:.0f} MHz x {}"),
                   cap, clock_mhz, batch) +
               tokens;
    }
    return fmt::format(fmt::runtime(compact ? "{:.0f}MHz x{}" : "{:.0f} MHz x {}"), clock_mhz,
                       batch) +
           tokens;
}

/// The best fixed point in hindsight: every grid point (cap x batch with a free clock, SM clock
/// lock x batch at the highest allowed cap, and lock x lower cap at the launch batch) run whole;
/// fewest violations (SLO attainment within kOracleSloTolerance of the best any point reached),
/// then the most efficient.
Result<PolicyRun> static_oracle(const Scenario& sc,
                                const std::vector<workload::Request>& requests) {
    const OracleGrid grid = oracle_grid(sc);
    std::vector<PolicyRun> candidates;
    double best_attainment = 0.0;
    struct Point {
        double cap = 0.0;
        int batch = 0;
        double clock_mhz = 0.0;
    };
    std::vector<Point> points;
    auto try_point = [&](const Point& p, int step_tokens) -> Status {
        PALS_ASSIGN_OR_RETURN(
            auto run, run_controlled(sc, requests,
                                     make_fixed_policy("static-oracle", p.cap, p.batch, p.clock_mhz,
                                                       step_tokens)));
        run.metrics.chosen = point_label(grid, p.cap, p.batch, p.clock_mhz, step_tokens);
        best_attainment = std::max(best_attainment, run.metrics.slo_attainment);
        candidates.push_back(std::move(run));
        points.push_back(p);
        return Status::ok();
    };
    for (int batch : grid.batch_caps) {
        for (double cap : grid.caps_w) {
            PALS_RETURN_IF_ERROR(try_point({cap, batch, 0.0}, 0));
        }
        // A lock at the highest cap: the controller scales it to the budget.
        for (double clock : grid.clocks_mhz) {
            PALS_RETURN_IF_ERROR(try_point({grid.caps_w.back(), batch, clock}, 0));
        }
    }
    for (const auto& [cap, clock] : capped_locks(grid)) {
        PALS_RETURN_IF_ERROR(try_point({cap, grid.batch_caps.back(), clock}, 0));
    }
    auto best_index = [&] {
        std::size_t best = 0;
        for (std::size_t i = 1; i < candidates.size(); ++i) {
            const PolicyMetrics& c = candidates[i].metrics;
            if (c.slo_attainment + kOracleSloTolerance >= best_attainment &&
                (candidates[best].metrics.slo_attainment + kOracleSloTolerance < best_attainment ||
                 c.tokens_per_joule > candidates[best].metrics.tokens_per_joule)) {
                best = i;
            }
        }
        return best;
    };
    // The second stage: the chosen point with each smaller per-step token budget.
    const Point chosen = points[best_index()];
    for (int tokens : grid.step_tokens) {
        PALS_RETURN_IF_ERROR(try_point(chosen, tokens));
    }
    return candidates[best_index()];
}

/// The bound over schedules: every window, each grid point is simulated from the same state,
/// held over the window and a look-ahead of kOracleLookAheadS, and the one with the fewest
/// violations over that horizon, then the most tokens/J, is applied for the window.
Result<PolicyRun> window_oracle(const Scenario& sc,
                                const std::vector<workload::Request>& requests) {
    PALS_ASSIGN_OR_RETURN(auto created, sim::Simulator::create(sc.node, requests, sc.slo));
    sim::Simulator real = std::move(created);
    const OracleGrid grid = oracle_grid(sc);
    const int replicas = real.replica_count();
    const double gpus = static_cast<double>(sc.node.parallel.tp * replicas);
    PolicyRun run;
    run.policy = "window-oracle";
    std::vector<TickRecord> history;
    struct Outcome {
        double cap = 0.0;
        int batch = 0;
        double clock_mhz = 0.0;  ///< 0: free
        int step_tokens = 0;     ///< 0: the launch value
        double tokens = 0.0;
        double energy = 0.0;
        int waiting = 0;  ///< queued at the end of the horizon
        std::uint64_t violations = 0;
    };
    auto totals = [](const sim::Simulator& s, double& tokens, double& energy, int& waiting) {
        tokens = energy = 0.0;
        waiting = 0;
        for (int r = 0; r < s.replica_count(); ++r) {
            const sim::ReplicaObservation o = s.observe(r);
            tokens += o.output_tokens;
            energy += o.energy_j;
            waiting += o.waiting;
        }
    };
    // Fewest violations, counting the requests still queued at the horizon's end beyond the
    // shortest queue any point left (late by then, almost surely; a short queue is normal), then
    // most tokens/J.
    auto best_of = [](const std::vector<Outcome>& outcomes) {
        int least_waiting = std::numeric_limits<int>::max();
        for (const Outcome& o : outcomes) {
            least_waiting = std::min(least_waiting, o.waiting);
        }
        auto violations = [&](const Outcome& o) {
            return o.violations + static_cast<std::uint64_t>(o.waiting - least_waiting);
        };
        const Outcome* best = nullptr;
        for (const Outcome& o : outcomes) {
            const double eff = o.energy > 0.0 ? o.tokens / o.energy : 0.0;
            const double best_eff =
                best != nullptr && best->energy > 0.0 ? best->tokens / best->energy : 0.0;
            if (best == nullptr || violations(o) < violations(*best) ||
                (violations(o) == violations(*best) && eff > best_eff)) {
                best = &o;
            }
        }
        return *best;
    };
    std::map<std::string, int> chosen;
    const double stop = last_arrival(requests) + kDrainLimitS;
    double t = 0.0;
    while (!(real.done() && t > last_arrival(requests)) && t < stop) {
        const double t_end = t + kOracleWindowS;
        double budget = std::numeric_limits<double>::infinity();
        for (double u = t; u < t_end; u += sc.period_s) {
            budget = std::min(budget, sc.budget.at(u));
        }
        const double max_cap =
            std::isfinite(budget) ? budget / gpus : sc.node.gpu.power_limit_max_w;
        double tokens0 = 0.0;
        double energy0 = 0.0;
        int waiting0 = 0;
        totals(real, tokens0, energy0, waiting0);
        std::vector<Outcome> outcomes;
        // Candidates: cap x batch with a free clock, and lock x batch at the highest cap.
        std::vector<std::tuple<double, int, double>> points;
        for (double cap : grid.caps_w) {
            if (cap > max_cap + 1e-9 && cap != grid.caps_w.front()) {
                continue;
            }
            for (int batch : grid.batch_caps) {
                points.emplace_back(cap, batch, 0.0);
            }
        }
        for (double clock : grid.clocks_mhz) {
            for (int batch : grid.batch_caps) {
                points.emplace_back(grid.caps_w.back(), batch, clock);
            }
        }
        for (const auto& [cap, clock] : capped_locks(grid)) {
            if (cap <= max_cap + 1e-9) {  // above it, the lock at the budget's cap (above)
                points.emplace_back(cap, grid.batch_caps.back(), clock);
            }
        }
        const double min_cap = sc.node.gpu.power_limit_min_w;
        const std::size_t finished0 = real.finished_requests().size();
        // Each point is held over the window and a look-ahead after it (a receding horizon with
        // a constant input), so a point that only builds a queue the next window would pay for
        // is charged for it here.
        auto trial_of = [&](double cap, int batch, double clock, int tokens) {
            sim::Simulator trial = real.clone();
            for (int r = 0; r < replicas; ++r) {
                trial.set_power_cap(r, std::min(cap, std::max(max_cap, min_cap)));
                trial.set_batch_cap(r, batch);
                trial.set_locked_clock(r, clock);
                trial.set_step_tokens(r, tokens);
            }
            trial.run_until(t_end + kOracleLookAheadS);
            Outcome o;
            o.cap = cap;
            o.batch = batch;
            o.clock_mhz = clock;
            o.step_tokens = tokens;
            totals(trial, o.tokens, o.energy, o.waiting);
            o.tokens -= tokens0;
            o.energy -= energy0;
            // Violations: the requests finishing over the horizon that missed an SLO (those
            // still queued at its end are added by best_of).
            const std::vector<sim::RequestTiming>& finished = trial.finished_requests();
            for (std::size_t k = finished0; k < finished.size(); ++k) {
                o.violations += finished[k].meets(sc.slo) ? 0U : 1U;
            }
            return o;
        };
        for (const auto& [cap, batch, clock] : points) {
            outcomes.push_back(trial_of(cap, batch, clock, 0));
        }
        // The second stage: the chosen point with each smaller per-step token budget.
        const Outcome first = best_of(outcomes);
        for (int tokens : grid.step_tokens) {
            outcomes.push_back(trial_of(first.cap, first.batch, first.clock_mhz, tokens));
        }
        const Outcome best = best_of(outcomes);
        ++chosen[point_label(grid, best.cap, best.batch, best.clock_mhz, best.step_tokens,
                             /*compact=*/true)];
        for (int r = 0; r < replicas; ++r) {
            real.set_power_cap(r, std::min(best.cap, std::max(max_cap, min_cap)));
            real.set_batch_cap(r, best.batch);
            real.set_locked_clock(r, best.clock_mhz);
            real.set_step_tokens(r, best.step_tokens);
        }
        // Advance period by period, recording ticks like the controller does.
        for (double u = t + sc.period_s; u <= t_end + 1e-9; u += sc.period_s) {
            double tok0 = 0.0;
            double en0 = 0.0;
            int w0 = 0;
            totals(real, tok0, en0, w0);
            real.run_until(u);
            double tok1 = 0.0;
            double en1 = 0.0;
            int w1 = 0;
            totals(real, tok1, en1, w1);
            TickRecord tick;
            tick.time_s = u;
            tick.budget_w = sc.budget.at(u);
            tick.power_w = (en1 - en0) / sc.period_s;
            tick.group_power_w = {tick.power_w};
            tick.cap_w = std::vector<double>(static_cast<std::size_t>(replicas),
                                             real.observe(0).power_cap_w);
            tick.batch_cap =
                std::vector<int>(static_cast<std::size_t>(replicas), real.observe(0).batch_cap);
            tick.locked_clock_mhz =
                std::vector<double>(static_cast<std::size_t>(replicas), best.clock_mhz);
            tick.step_tokens =
                std::vector<int>(static_cast<std::size_t>(replicas), best.step_tokens);
            tick.generation_tok_s = (tok1 - tok0) / sc.period_s;
            tick.reason = "window oracle";
            history.push_back(std::move(tick));
        }
        t = t_end;
    }
    run.history = std::move(history);
    run.metrics = score(sc, requests, real, run.history, run);
    // The most used points, for the report.
    std::vector<std::pair<int, std::string>> ranked;
    for (const auto& [point, count] : chosen) {
        ranked.emplace_back(count, point);
    }
    std::sort(ranked.rbegin(), ranked.rend());
    for (std::size_t i = 0; i < std::min<std::size_t>(3, ranked.size()); ++i) {
        run.metrics.chosen +=
            (i ? ", " : "") + ranked[i].second + fmt::format(" ({})", ranked[i].first);
    }
    return run;
}

/// The oracles' objective: fewer violations (beyond kOracleSloTolerance), then more tokens/J.
bool oracle_prefers(const PolicyMetrics& a, const PolicyMetrics& b) {
    if (std::abs(a.slo_attainment - b.slo_attainment) > kOracleSloTolerance) {
        return a.slo_attainment > b.slo_attainment;
    }
    return a.tokens_per_joule > b.tokens_per_joule;
}

}  // namespace

OracleGrid oracle_grid(const Scenario& sc) {
    OracleGrid g;
    constexpr double kCapStepW = 100.0;
    for (double cap = sc.node.gpu.power_limit_max_w; cap >= sc.node.gpu.power_limit_min_w - 1e-9;
         cap -= kCapStepW) {
        g.caps_w.insert(g.caps_w.begin(), cap);
    }
    for (int b = 16; b < sc.node.engine.max_num_seqs; b *= 2) {
        g.batch_caps.push_back(b);
    }
    g.batch_caps.push_back(sc.node.engine.max_num_seqs);
    // From clock-only's lowest lock (0.3 of the highest clock) to 0.95 in steps of 0.05: as
    // fine as the locks the feedback policies settle on, so they cannot beat the oracles by
    // resolution alone.
    for (int k = 6; k <= 19; ++k) {
        g.clocks_mhz.push_back(std::round(0.05 * k * sc.node.gpu.sm_clock_max_mhz));
    }
    constexpr double kCappedLockStepW = 25.0;
    for (double cap = sc.node.gpu.power_limit_min_w;
         cap < sc.node.gpu.power_limit_max_w - kCappedLockStepW / 2; cap += kCappedLockStepW) {
        g.capped_lock_caps_w.push_back(cap);
    }
    for (int k = 3; k <= 9; ++k) {
        g.capped_lock_clocks_mhz.push_back(std::round(0.1 * k * sc.node.gpu.sm_clock_max_mhz));
    }
    const int lowest_tokens = StepTokenBands{}.min_tokens;
    for (int tokens = sc.node.engine.max_num_batched_tokens / 2; tokens >= lowest_tokens;
         tokens /= 2) {
        g.step_tokens.push_back(tokens);
    }
    return g;
}

Result<ScenarioResult> evaluate_scenario(const Scenario& sc,
                                         const std::shared_ptr<const profile::PowerModel>& model) {
    const auto wall_start = std::chrono::steady_clock::now();
    PALS_ASSIGN_OR_RETURN(
        const std::vector<workload::Request> requests,
        workload::build_workload(sc.workload).with_prefix(sc.path.string() + ": workload"));
    if (requests.empty()) {
        return Status::invalid_argument(sc.path.string() + ": workload: no requests");
    }
    if (last_arrival(requests) <= sc.warmup_s &&
        sc.workload.kind != workload::WorkloadKind::kClosedLoop) {
        return Status::invalid_argument(
            fmt::format("{}: the workload spans {:.1f} s, not longer than run.warmup_s = {:.1f} s",
                        sc.path.string(), last_arrival(requests), sc.warmup_s));
    }
    ScenarioResult result;
    result.scenario = sc;
    // Every policy runs on the simulated node (the profiled one unless [physics] perturbs it);
    // `pals`'s model was profiled on `sc.node`.
    Scenario truth = sc;
    PALS_ASSIGN_OR_RETURN(truth.node, simulated_node(sc));
    for (const std::string& name : sc.policies) {
        const PolicyInfo* policy = find_policy(name);
        if (policy == nullptr) {
            return Status::invalid_argument(sc.path.string() + ": " +
                                            unknown_policy(name).message());
        }
        if (policy->needs_model && !model) {
            return Status::invalid_argument(sc.path.string() + ": policy '" + name +
                                            "' needs a power model");
        }
        Result<PolicyRun> run = Status::internal("unreachable");
        if (name == "static-oracle") {
            run = static_oracle(truth, requests);
        } else if (name == "window-oracle") {
            run = window_oracle(truth, requests);
        } else if (policy->make) {
            PolicyContext context;
            context.model = model;
            context.twin_node = sc.node;  // the node as profiled, not the perturbed truth
            context.slo = sc.slo;
            run = run_controlled(truth, requests, policy->make(context));
        }
        if (!run.is_ok()) {
            return run.status().with_prefix(sc.path.string() + ": " + name);
        }
        run->policy = name;
        PALS_LOG_INFO("{}: {} done: {:.3f} tok/J, SLO {:.1f} %", sc.name, name,
                      run->metrics.tokens_per_joule, run->metrics.slo_attainment * 100.0);
        result.runs.push_back(std::move(run).value());
    }
    // The window oracle's schedules include every constant one: when the best of those (the
    // static oracle's) beats the windowed choice, it is the window oracle's result too.
    PolicyRun* static_run = nullptr;
    PolicyRun* window_run = nullptr;
    for (PolicyRun& r : result.runs) {
        static_run = r.policy == "static-oracle" ? &r : static_run;
        window_run = r.policy == "window-oracle" ? &r : window_run;
    }
    if (static_run != nullptr && window_run != nullptr &&
        oracle_prefers(static_run->metrics, window_run->metrics)) {
        const std::string windowed = window_run->metrics.chosen;
        *window_run = *static_run;
        window_run->policy = "window-oracle";
        window_run->metrics.chosen =
            "the static oracle's " + static_run->metrics.chosen + " (windowed: " + windowed + ")";
    }
    // Ratios to the reference policies.
    const PolicyRun* reference_default = nullptr;
    const PolicyRun* reference_cap_only = nullptr;
    for (const PolicyRun& r : result.runs) {
        reference_default = r.policy == "default" ? &r : reference_default;
        reference_cap_only = r.policy == "cap-only" ? &r : reference_cap_only;
    }
    for (PolicyRun& r : result.runs) {
        if (reference_default && reference_default->metrics.tokens_per_joule > 0.0) {
            r.metrics.efficiency_vs_default =
                r.metrics.tokens_per_joule / reference_default->metrics.tokens_per_joule;
        }
        if (reference_cap_only) {
            const double base = static_cast<double>(reference_cap_only->metrics.qos_violations);
            // 0 / 0 is parity; over a perfect cap-only a ratio means nothing (NaN: "n/a").
            r.metrics.qos_vs_cap_only = base > 0.0
                                            ? static_cast<double>(r.metrics.qos_violations) / base
                                            : (r.metrics.qos_violations == 0 ? 1.0 : kNoRatio);
        }
    }
    result.wall_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
    return result;
}

std::vector<std::string> expectation_policies(const Scenario& scenario) {
    std::vector<std::string> names;
    for (const std::string_view name : policy_names()) {
        const bool needed = name == scenario.expect_policy ||
                            std::any_of(scenario.expect.begin(), scenario.expect.end(),
                                        [&](const Expectation& e) { return e.baseline == name; });
        if (needed) {
            names.emplace_back(name);
        }
    }
    return names;
}

std::vector<std::string> check_expectations(const ScenarioResult& result) {
    const Scenario& sc = result.scenario;
    const auto find_run = [&](const std::string& name) -> const PolicyRun* {
        for (const PolicyRun& r : result.runs) {
            if (r.policy == name) {
                return &r;
            }
        }
        return nullptr;
    };
    std::vector<std::string> failures;
    const PolicyRun* subject = find_run(sc.expect_policy);
    for (const Expectation& e : sc.expect) {
        const PolicyRun* base = e.baseline.empty() ? nullptr : find_run(e.baseline);
        if (subject == nullptr || (!e.baseline.empty() && base == nullptr)) {
            failures.push_back(fmt::format("{}: {} was not run", e.origin,
                                           subject == nullptr ? sc.expect_policy : e.baseline));
            continue;
        }
        const MetricField* field = find_metric(e.metric);
        const double mine = field->value(subject->metrics);
        double value = mine;
        std::string what = fmt::format("{} {}", sc.expect_policy, e.metric);
        std::string detail;
        if (base != nullptr) {
            const double theirs = field->value(base->metrics);
            value = theirs != 0.0 ? mine / theirs
                                  : (mine == 0.0 ? 0.0 : std::numeric_limits<double>::infinity());
            what = fmt::format("{}/{}", sc.expect_policy, e.baseline);
            detail =
                fmt::format(" ({} {:.4g}, {} {:.4g})", sc.expect_policy, mine, e.baseline, theirs);
        }
        if (std::isnan(value)) {
            failures.push_back(fmt::format("{}: {} is n/a", e.origin, what));
        } else if (e.min && value < *e.min) {
            failures.push_back(fmt::format("{}: {} = {:.4g} is below {:g}{}", e.origin, what, value,
                                           *e.min, detail));
        } else if (e.max && value > *e.max) {
            failures.push_back(fmt::format("{}: {} = {:.4g} is above {:g}{}", e.origin, what, value,
                                           *e.max, detail));
        }
    }
    return failures;
}

}  // namespace pals::control
