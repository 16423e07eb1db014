// PALS's policy, decision by decision: the cap at the budget share, the launch batch cap, a
// clock lock trimmed with a learned floor, and the budget-bound regime (clock free, held).
#include "pals/control/pals_policy.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <memory>
#include <utility>

#include "pals/profile/model_fit.hpp"
#include "status_assertions.hpp"
#include "unit/profile/profile_test_helpers.hpp"

namespace pals::control {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

std::shared_ptr<const profile::PowerModel> small_model() {
    static const std::shared_ptr<const profile::PowerModel> kModel = [] {
        auto fit = profile::fit_profile(profile::testing::small_sim_profile());
        EXPECT_TRUE(fit.is_ok());
        auto model = profile::PowerModel::parse(profile::model_json(fit.value()), "small");
        EXPECT_TRUE(model.is_ok());
        return std::make_shared<const profile::PowerModel>(std::move(model).value());
    }();
    return kModel;
}

/// One 1-GPU group serving `tok_s` with comfortable latency, drawing `power_w`.
GroupObservation group(double tok_s, double power_w = 250.0) {
    GroupObservation g;
    g.gpus = 1;
    g.cap_w = 700.0;
    g.power_w = power_w;
    g.batch_cap = 128;
    g.max_batch_cap = 128;
    g.running = 20;
    g.generation_tok_s = tok_s;
    g.avg_output_tokens = 200.0;
    g.itl_p90_s = 0.02;
    g.ttft_p90_s = 0.1;
    g.tpot_p90_s = 0.02;
    g.sm_clock_mhz = 1980.0;
    return g;
}

/// Settings for tests whose heavy group serves thousands of tok/s with 20 running, more than
/// the model's throughput there: they are about the split and the lock, not the capacity
/// learned from the period.
PalsSettings demand_as_measured(PalsSettings settings = {}) {
    settings.learn_capacity = false;
    return settings;
}

Observation observe(double t, double budget_w, std::vector<GroupObservation> groups) {
    Observation o;
    o.time_s = t;
    o.budget_w = budget_w;
    o.cap_range = {200.0, 700.0, 700.0};
    o.sm_clock_max_mhz = 1980.0;
    o.slo_ttft_s = 1.0;
    o.slo_tpot_s = 0.1;
    o.groups = std::move(groups);
    return o;
}

/// Runs `policy` for 40 periods of comfortable latency, in which the lock trims down, and
/// returns the lock; `t` is then the next period.
double trim_down(Policy& policy, int& t) {
    double lock = 0.0;
    for (t = 1; t <= 40; ++t) {
        lock = policy.decide(observe(t, kInf, {group(300.0)}))[0].locked_clock_mhz;
    }
    return lock;
}

/// The cap pals sets at partial load with no budget: `factor` x the model's draw at
/// saturation at `lock` (the KV cache nearly empty: at the largest batch profiled), within the
/// cap range, or the 700 W without a budget when that is lower.
double cap_at_lock(double lock, double factor) {
    Result<profile::Prediction> at_lock =
        small_model()->predict_at_clock(lock, small_model()->batch_caps().back(), 700.0, "");
    EXPECT_TRUE(at_lock.is_ok());
    const double draw_w = std::clamp(at_lock->power_w, 200.0, 700.0);
    return factor * draw_w < 700.0 ? std::max(200.0, factor * draw_w) : 700.0;
}

TEST(PalsPolicyTest, PartialLoadLocksTheClockCapsAtItsPowerAndKeepsTheLaunchBatch) {
    const double calm = PalsSettings{}.calm_cap_share;
    ASSERT_LT(calm, 1.0);
    auto policy = make_pals_policy(small_model());
    std::vector<GroupDecision> d;
    double lock = 0.0;
    double cap = 0.0;
    for (int t = 1; t <= 30; ++t) {
        d = policy->decide(observe(t, kInf, {group(300.0)}));
        ASSERT_EQ(d.size(), 1U);
        EXPECT_EQ(d[0].batch_cap, 128) << "the launch batch cap";
        EXPECT_GT(d[0].locked_clock_mhz, 0.0) << d[0].reason;
        // No alarm yet, so the group is calm: the cap is calm_cap_share x the model's power
        // at saturation at the lock, and moves only with the lock.
        EXPECT_DOUBLE_EQ(d[0].cap_w, cap_at_lock(d[0].locked_clock_mhz, calm)) << d[0].reason;
        if (d[0].locked_clock_mhz == lock) {
            EXPECT_EQ(d[0].cap_w, cap) << "t=" << t;
        }
        lock = d[0].locked_clock_mhz;
        cap = d[0].cap_w;
    }
    // Comfortable latency for 30 periods: the lock has come down from the highest clock, and
    // the cap with it.
    EXPECT_LT(d[0].locked_clock_mhz, 1980.0 * 0.8) << d[0].reason;
    EXPECT_LT(d[0].cap_w, 700.0) << d[0].reason;
    EXPECT_NE(d[0].reason.find("partial load"), std::string::npos) << d[0].reason;
    EXPECT_NE(d[0].reason.find(fmt::format("cap {:.0f} W/GPU ({:.2f} x the model's draw at "
                                           "saturation at {:.0f} MHz; no budget 700 W)",
                                           d[0].cap_w, calm, d[0].locked_clock_mhz)),
              std::string::npos)
        << d[0].reason;
    // Without it, the cap is the share.
    PalsSettings share_only;
    share_only.cap_at_lock_power = false;
    auto plain = make_pals_policy(small_model(), share_only);
    for (int t = 1; t <= 30; ++t) {
        EXPECT_EQ(plain->decide(observe(t, kInf, {group(300.0)}))[0].cap_w, 700.0);
    }
}

TEST(PalsPolicyTest, AnAlarmPutsTheCapBackAtTheModelsDrawUntilTheGroupIsCalmAgain) {
    const PalsSettings settings;
    const double calm = settings.calm_cap_share;
    const auto after_s = static_cast<int>(settings.calm_after_alarm_s);
    ASSERT_LT(calm, 1.0);
    ASSERT_GT(after_s, 5);
    auto policy = make_pals_policy(small_model());
    int t = 1;
    const double before_alarm = trim_down(*policy, t);
    EXPECT_DOUBLE_EQ(policy->decide(observe(t++, kInf, {group(300.0)}))[0].cap_w,
                     cap_at_lock(before_alarm, calm));
    GroupObservation hot = group(300.0);
    hot.itl_p90_s = 0.099;   // at risk: above 0.97 of the 100-ms SLO,
    hot.tpot_p90_s = 0.095;  // with TPOT p90 above 90 % of its SLO (the load is light)
    const int alarm_at = t;
    const GroupDecision raised = policy->decide(observe(t++, kInf, {hot}))[0];
    EXPECT_GT(raised.locked_clock_mhz, before_alarm) << raised.reason;
    EXPECT_DOUBLE_EQ(raised.cap_w, cap_at_lock(raised.locked_clock_mhz, 1.0)) << raised.reason;
    EXPECT_NE(raised.reason.find(", an alarm 0 s ago;"), std::string::npos) << raised.reason;
    // Comfortable latency again: the cap stays at the model's draw at the lock in force until
    // calm_after_alarm_s have passed since the alarm, then is trimmed again.
    for (; t < alarm_at + after_s; ++t) {
        const GroupDecision d = policy->decide(observe(t, kInf, {group(300.0)}))[0];
        EXPECT_DOUBLE_EQ(d.cap_w, cap_at_lock(d.locked_clock_mhz, 1.0)) << "t=" << t << d.reason;
        EXPECT_NE(d.reason.find(fmt::format(", an alarm {} s ago;", t - alarm_at)),
                  std::string::npos)
            << d.reason;
    }
    const GroupDecision calm_again = policy->decide(observe(t, kInf, {group(300.0)}))[0];
    EXPECT_DOUBLE_EQ(calm_again.cap_w, cap_at_lock(calm_again.locked_clock_mhz, calm))
        << calm_again.reason;
    EXPECT_EQ(calm_again.reason.find("an alarm"), std::string::npos) << calm_again.reason;

    // calm_cap_share 1: the cap is the model's draw whatever the alarms.
    PalsSettings untrimmed;
    untrimmed.calm_cap_share = 1.0;
    auto plain = make_pals_policy(small_model(), untrimmed);
    for (t = 1; t <= 30; ++t) {
        const GroupDecision d = plain->decide(observe(t, kInf, {group(300.0)}))[0];
        EXPECT_DOUBLE_EQ(d.cap_w, cap_at_lock(d.locked_clock_mhz, 1.0)) << d.reason;
    }
}

TEST(PalsPolicyTest, ALatencyAlarmLeavesALearnedFloor) {
    auto policy = make_pals_policy(small_model());
    int t = 1;
    const double before_alarm = trim_down(*policy, t);
    GroupObservation hot = group(300.0);
    hot.itl_p90_s = 0.099;   // at risk: above 0.97 of the 100-ms SLO,
    hot.tpot_p90_s = 0.095;  // with TPOT p90 above 90 % of its SLO (the load is light)
    const GroupDecision raised = policy->decide(observe(t++, kInf, {hot}))[0];
    EXPECT_GT(raised.locked_clock_mhz, before_alarm) << raised.reason;
    // Slack again: the lock steps down, but not below 1.05x the lock that let the alarm happen
    // (less the floor's slow decay) for the next periods.
    double lowest = raised.locked_clock_mhz;
    for (int k = 0; k < 20; ++k, ++t) {
        const GroupDecision d = policy->decide(observe(t, kInf, {group(300.0)}))[0];
        lowest = std::min(lowest, d.locked_clock_mhz);
        EXPECT_NE(d.reason.find("learned floor"), std::string::npos) << d.reason;
    }
    EXPECT_GE(lowest, before_alarm * 1.05 * 0.9) << "the floor held the lock above the alarm's";
}

TEST(PalsPolicyTest, LongItlGapsAreNoAlarmWhileTpotIsFarInsideItsSlo) {
    auto policy = make_pals_policy(small_model());
    int t = 1;
    const double before = trim_down(*policy, t);
    // Decode steps that share a step with a long prefill chunk: ITL p90 above the SLO, each
    // request's mean gap (TPOT) at a fifth of it. No alarm: the lock does not rise.
    GroupObservation stalls = group(300.0);
    stalls.itl_p90_s = 0.15;
    stalls.tpot_p90_s = 0.02;
    const GroupDecision held = policy->decide(observe(t++, kInf, {stalls}))[0];
    EXPECT_LE(held.locked_clock_mhz, before) << held.reason;
    EXPECT_EQ(held.reason.find("latency at risk"), std::string::npos) << held.reason;
    // Nor with TPOT p90 at 70 % of its SLO, nor, at this light load (far below the capacity
    // the share allows), at 82 %; at 92 %, or with no request finished yet, it is one.
    for (const double tpot_s : {0.07, 0.082}) {
        stalls.tpot_p90_s = tpot_s;
        const GroupDecision still_held = policy->decide(observe(t++, kInf, {stalls}))[0];
        EXPECT_EQ(still_held.reason.find("latency at risk"), std::string::npos)
            << still_held.reason;
    }
    stalls.tpot_p90_s = 0.092;
    const GroupDecision raised = policy->decide(observe(t++, kInf, {stalls}))[0];
    EXPECT_GT(raised.locked_clock_mhz, before) << raised.reason;
    EXPECT_NE(raised.reason.find("latency at risk (ITL p90 150 ms)"), std::string::npos)
        << raised.reason;
    GroupObservation unfinished = stalls;
    unfinished.tpot_p90_s = std::numeric_limits<double>::quiet_NaN();
    const ClockTrimmer::Bands bands = PalsSettings{}.clock_bands;
    EXPECT_TRUE(latency_risk(observe(t, kInf, {unfinished}), unfinished, bands).itl);
    // Nearer capacity the gate is at 80 %: TPOT p90 at 82 % makes the same tail an alarm.
    auto busy = make_pals_policy(small_model(), demand_as_measured());
    for (int u = 1; u <= 20; ++u) {
        (void)busy->decide(observe(u, kInf, {group(5000.0)}));
    }
    GroupObservation busy_stalls = group(5000.0);
    busy_stalls.itl_p90_s = 0.15;
    busy_stalls.tpot_p90_s = 0.082;
    const GroupDecision busy_raised = busy->decide(observe(21, kInf, {busy_stalls}))[0];
    EXPECT_NE(busy_raised.reason.find("latency at risk (ITL p90 150 ms)"), std::string::npos)
        << busy_raised.reason;
}

TEST(PalsPolicyTest, ABurstSendsTheLockToTheHighestClockAtOnce) {
    auto policy = make_pals_policy(small_model());
    int t = 1;
    const double before = trim_down(*policy, t);
    ASSERT_LT(before, 1980.0 * 0.8);
    // A queue of 5 that grows is an alarm: one step up.
    GroupObservation queued = group(300.0);
    queued.waiting = 5;
    queued.waiting_previous = 2;
    const GroupDecision step = policy->decide(observe(t++, kInf, {queued}))[0];
    EXPECT_GT(step.locked_clock_mhz, before) << step.reason;
    EXPECT_LT(step.locked_clock_mhz, 1980.0) << step.reason;
    // A queue of 8 that grows is a burst: the highest clock at once.
    GroupObservation burst = group(300.0);
    burst.waiting = 12;
    burst.waiting_previous = 5;
    const GroupDecision d = policy->decide(observe(t, kInf, {burst}))[0];
    EXPECT_EQ(d.locked_clock_mhz, 1980.0) << d.reason;
    EXPECT_NE(d.reason.find("burst (a queue of 12 growing)"), std::string::npos) << d.reason;
}

TEST(PalsPolicyTest, KvCachePressureRaisesTheLockAndAFullCacheIsABurst) {
    auto policy = make_pals_policy(small_model());
    int t = 1;
    const double before = trim_down(*policy, t);
    ASSERT_LT(before, 1980.0 * 0.8);
    // 85 % of the KV cache in use, no queue yet: one step up, and no step down while it lasts.
    GroupObservation pressed = group(300.0);
    pressed.kv_cache_usage = 0.85;
    const GroupDecision step = policy->decide(observe(t++, kInf, {pressed}))[0];
    EXPECT_GT(step.locked_clock_mhz, before) << step.reason;
    EXPECT_LT(step.locked_clock_mhz, 1980.0) << step.reason;
    EXPECT_NE(step.reason.find("KV cache 85 % full"), std::string::npos) << step.reason;
    const GroupDecision again = policy->decide(observe(t++, kInf, {pressed}))[0];
    EXPECT_GE(again.locked_clock_mhz, step.locked_clock_mhz) << again.reason;
    // 95 %: admission has all but stopped, the highest clock at once.
    GroupObservation full = group(300.0);
    full.kv_cache_usage = 0.95;
    const GroupDecision d = policy->decide(observe(t, kInf, {full}))[0];
    EXPECT_EQ(d.locked_clock_mhz, 1980.0) << d.reason;
    EXPECT_NE(d.reason.find("burst (KV cache 95 % full)"), std::string::npos) << d.reason;
}

/// The number before " % of what the share serves" in a partial-load reason.
double utilisation_in(const std::string& reason) {
    const std::size_t at = reason.find(" % of what the share serves");
    const std::size_t open = reason.rfind('(', at);
    return at == std::string::npos ? -1.0 : std::stod(reason.substr(open + 1, at - open - 1));
}

TEST(PalsPolicyTest, TheCapacityIsAtTheBatchTheKvCacheAdmits) {
    // 20 running fill half the KV cache: the share serves at most ~40 at once, not the launch
    // batch cap, so the same demand is a larger share of what it serves.
    auto roomy = make_pals_policy(small_model());
    auto tight = make_pals_policy(small_model());
    GroupObservation g = group(300.0);
    const GroupDecision a = roomy->decide(observe(1, kInf, {g}))[0];
    g.kv_cache_usage = 0.5;
    const GroupDecision b = tight->decide(observe(1, kInf, {g}))[0];
    ASSERT_GE(utilisation_in(a.reason), 0.0) << a.reason;
    EXPECT_GT(utilisation_in(b.reason), utilisation_in(a.reason)) << b.reason << " | " << a.reason;
}

/// The model's clock in a reason ("... (0.95 x the model's 1496 MHz)"), -1 if none; the cap's
/// "0.90 x the model's draw ..." is not it.
double model_clock_in(const std::string& reason) {
    const std::string key = " x the model's ";
    for (std::size_t at = reason.find(key); at != std::string::npos;
         at = reason.find(key, at + 1)) {
        const std::size_t value = at + key.size();
        if (value < reason.size() && std::isdigit(static_cast<unsigned char>(reason[value])) != 0) {
            return std::stod(reason.substr(value));
        }
    }
    return -1.0;
}

TEST(PalsPolicyTest, AGroupServingMoreThanTheModelSaysAsksTheModelForLess) {
    // The model's saturated throughput at the clock and running batch observed (20 running at
    // 1,980 MHz).
    Result<profile::Prediction> at = small_model()->predict_at_clock(1980.0, 20, 700.0, "");
    ASSERT_TRUE(at.is_ok());
    const double model_tok_s = at->throughput_tok_s;
    PalsSettings off;
    off.learn_capacity = false;
    auto reasons = [&](double served_tok_s) {
        auto learning = make_pals_policy(small_model());
        auto plain = make_pals_policy(small_model(), off);
        const GroupObservation g = group(served_tok_s);
        return std::pair{learning->decide(observe(1, kInf, {g}))[0].reason,
                         plain->decide(observe(1, kInf, {g}))[0].reason};
    };
    // Served 1.5x what the model says the group serves there: the demand the model is asked
    // to serve is the planned one / 1.5, so it is 1/1.5 of the share's capacity as large.
    const auto [more, more_plain] = reasons(1.5 * model_tok_s);
    EXPECT_NE(more.find("served 1.50x the model's throughput at its clock and batch"),
              std::string::npos)
        << more;
    EXPECT_EQ(more_plain.find("served"), std::string::npos) << more_plain;
    ASSERT_GT(utilisation_in(more), 0.0) << more;
    EXPECT_NEAR(utilisation_in(more_plain) / utilisation_in(more), 1.5, 0.05)
        << more << " | " << more_plain;
    // Serving less than the model's figure is the load offered, not the capacity: no change.
    const auto [less, less_plain] = reasons(0.5 * model_tok_s);
    EXPECT_EQ(less, less_plain);
    // The ratio is bounded like the ITL correction.
    const auto [far, far_plain] = reasons(5.0 * model_tok_s);
    EXPECT_NE(far.find("served 2.00x"), std::string::npos) << far;
}

TEST(PalsPolicyTest, AnItlTargetTheCorrectionPutsOutOfReachSeedsFromTheUncorrectedOne) {
    // A 20-ms TPOT SLO, 3,000 tokens/s and a measured ITL p90 of 40 ms (TPOT p90 far inside,
    // so no alarm): the correction reaches its bound of 2 and no point of the model meets
    // 0.85 x 20 ms / 2. The reference is then the model's best point at the uncorrected
    // target (1,843 MHz for this model), not its highest-throughput point (1,979 MHz).
    auto policy = make_pals_policy(small_model());
    GroupObservation g = group(3000.0);
    g.itl_p90_s = 0.04;
    g.tpot_p90_s = 0.001;
    GroupDecision d;
    for (int t = 1; t <= 20; ++t) {
        Observation o = observe(t, kInf, {g});
        o.slo_tpot_s = 0.02;
        d = policy->decide(o)[0];
    }
    const double model_mhz = model_clock_in(d.reason);
    EXPECT_GT(model_mhz, 0.0) << d.reason;
    EXPECT_LT(model_mhz, 1950.0) << d.reason;
}

/// Runs `policy` for 120 periods of comfortable latency and returns the lock it lands at and
/// its reason; checks on the way that the lock moves at most once in 10 s, down by the
/// 150-MHz deadband or to where the trim settles, a few times in all.
GroupDecision settle(Policy& policy, int& t) {
    std::vector<double> locks;
    GroupDecision d;
    for (t = 1; t <= 120; ++t) {
        d = policy.decide(observe(t, kInf, {group(300.0)}))[0];
        locks.push_back(d.locked_clock_mhz);
    }
    int changes = 0;
    int changed_at = -100;
    for (std::size_t k = 1; k < locks.size(); ++k) {
        if (locks[k] == locks[k - 1]) {
            continue;
        }
        ++changes;
        const int at = static_cast<int>(k) + 1;
        EXPECT_GE(at - changed_at, 10) << "t=" << at << ": no alarm, so at most once in 10 s";
        changed_at = at;
        EXPECT_TRUE(locks[k - 1] - locks[k] >= 150.0 || locks[k] == locks.back())
            << "t=" << at << ": " << locks[k - 1] << " -> " << locks[k];
    }
    EXPECT_LE(changes, 8) << "a steady load: a few moves, not one a period";
    ++t;
    return d;
}

TEST(PalsPolicyTest, TheLockStepsDownInLargeStepsAndLandsWhereTheTrimSettles) {
    // By default the lock lands at 3/4 of the model's clock, however much slack latency has.
    auto policy = make_pals_policy(small_model());
    int t = 1;
    const GroupDecision landed = settle(*policy, t);
    EXPECT_NE(landed.reason.find("(0.75 x the model's"), std::string::npos) << landed.reason;
    EXPECT_GT(landed.locked_clock_mhz, std::round(0.3 * 1980.0)) << landed.reason;
    // Under a budget that holds the share below the highest cap, at 4/5 of it.
    auto budgeted = make_pals_policy(small_model());
    GroupDecision under_budget;
    for (int u = 1; u <= 120; ++u) {
        under_budget = budgeted->decide(observe(u, 500.0, {group(300.0)}))[0];
    }
    EXPECT_NE(under_budget.reason.find("share 500 W"), std::string::npos) << under_budget.reason;
    EXPECT_NE(under_budget.reason.find("(0.80 x the model's"), std::string::npos)
        << under_budget.reason;
    // Without that floor, it lands at the lowest lock.
    PalsSettings no_share;
    no_share.lowest_model_share = 0.0;
    auto free_trim = make_pals_policy(small_model(), no_share);
    int u = 1;
    EXPECT_EQ(settle(*free_trim, u).locked_clock_mhz, std::round(0.3 * 1980.0));
    // An alarm never lowers the lock, even while a smaller step down is held back.
    GroupObservation hot = group(300.0);
    hot.itl_p90_s = 0.099;
    hot.tpot_p90_s = 0.095;
    const double raised = policy->decide(observe(t, kInf, {hot}))[0].locked_clock_mhz;
    EXPECT_GT(raised, landed.locked_clock_mhz);
}

TEST(PalsPolicyTest, AnAlarmRaisesTheLockAgainOnlyOnceTheLatencyWindowHasSeenTheRaise) {
    // ITL at risk for 8 periods in a row: the first raises the lock; the next four, 1-4 s after
    // that change, hold it (the 5-s window still holds latency of the lock before); the fifth
    // raises it again. Without the settle time, every alarm raises it.
    GroupObservation hot = group(300.0);
    hot.itl_p90_s = 0.099;
    hot.tpot_p90_s = 0.095;
    const auto locks_under_alarm = [&hot](PalsSettings settings) {
        auto policy = make_pals_policy(small_model(), std::move(settings));
        int t = 1;
        std::vector<GroupDecision> out(1);
        out[0].locked_clock_mhz = trim_down(*policy, t);
        for (int k = 0; k < 8; ++k, ++t) {
            out.push_back(policy->decide(observe(t, kInf, {hot}))[0]);
        }
        return out;
    };
    const std::vector<GroupDecision> settled = locks_under_alarm(PalsSettings{});
    EXPECT_GT(settled[1].locked_clock_mhz, settled[0].locked_clock_mhz) << settled[1].reason;
    for (int k = 2; k <= 5; ++k) {
        EXPECT_EQ(settled[k].locked_clock_mhz, settled[1].locked_clock_mhz) << settled[k].reason;
        EXPECT_NE(settled[k].reason.find(fmt::format("but the lock changed {} s ago", k - 1)),
                  std::string::npos)
            << settled[k].reason;
    }
    EXPECT_GT(settled[6].locked_clock_mhz, settled[5].locked_clock_mhz) << settled[6].reason;
    PalsSettings every;
    every.clock_bands.raise_settle_s = 0.0;
    const std::vector<GroupDecision> eager = locks_under_alarm(every);
    for (int k = 1; k <= 3; ++k) {
        EXPECT_GT(eager[k].locked_clock_mhz, eager[k - 1].locked_clock_mhz) << eager[k].reason;
    }
    // A burst right after a raise is no stale latency: the highest clock at once.
    auto policy = make_pals_policy(small_model());
    int t = 1;
    (void)trim_down(*policy, t);
    const double raised = policy->decide(observe(t++, kInf, {hot}))[0].locked_clock_mhz;
    GroupObservation burst = hot;
    burst.waiting = 12;
    burst.waiting_previous = 2;
    const GroupDecision d = policy->decide(observe(t, kInf, {burst}))[0];
    EXPECT_GT(raised, 0.0);
    EXPECT_EQ(d.locked_clock_mhz, 1980.0) << d.reason;
}

TEST(PalsPolicyTest, AStallRaisesTheLockWithinTheSettleTime) {
    // ITL p90 above 2.5 x the TPOT SLO (long prefill chunks holding every running request) is
    // not stale latency to wait out: the lock rises by a step at once, in every period, with
    // TPOT p90 still far inside its SLO. At 2.4 x the settle time holds it as for any alarm.
    const auto locks = [](double itl_p90_s) {
        auto policy = make_pals_policy(small_model());
        int t = 1;
        std::vector<GroupDecision> out(1);
        out[0].locked_clock_mhz = trim_down(*policy, t);
        GroupObservation stalled = group(300.0);
        stalled.itl_p90_s = itl_p90_s;
        stalled.tpot_p90_s = 0.095;
        for (int k = 0; k < 3; ++k, ++t) {
            out.push_back(policy->decide(observe(t, kInf, {stalled}))[0]);
            stalled.tpot_p90_s = 0.03;  // the stall's requests have not finished yet
        }
        return out;
    };
    const std::vector<GroupDecision> stall = locks(0.26);
    for (int k = 1; k <= 3; ++k) {
        EXPECT_NEAR(stall[k].locked_clock_mhz, 1.15 * stall[k - 1].locked_clock_mhz, 1.0)
            << stall[k].reason;
    }
    EXPECT_NE(stall[2].reason.find("ITL p90 260 ms, a stall"), std::string::npos)
        << stall[2].reason;
    const std::vector<GroupDecision> held = locks(0.24);
    EXPECT_GT(held[1].locked_clock_mhz, held[0].locked_clock_mhz) << held[1].reason;
    for (int k = 2; k <= 3; ++k) {
        EXPECT_EQ(held[k].locked_clock_mhz, held[1].locked_clock_mhz) << held[k].reason;
    }
}

TEST(PalsPolicyTest, TheStepTokenBudgetTradesTtftSlackForTpot) {
    // An engine with a per-step token budget of 8192: TPOT p90 at 0.9 of its SLO (or a request
    // above it in the window) with TTFT p90 below 0.7 of its own halves the budget, once per
    // dwell (5 s), down to 2048; TTFT p90 at 0.8 of its SLO doubles it again. Without TTFT slack
    // a TPOT alarm leaves it alone.
    auto policy = make_pals_policy(small_model());
    auto with_tokens = [](GroupObservation g) {
        g.max_step_tokens = 8192;
        return g;
    };
    GroupDecision d = policy->decide(observe(1, kInf, {with_tokens(group(300.0))}))[0];
    EXPECT_EQ(d.step_tokens, 0) << d.reason;  // the launch value while latency is comfortable
    GroupObservation slow = with_tokens(group(300.0));
    slow.tpot_p90_s = 0.092;
    slow.ttft_p90_s = 0.3;
    std::vector<int> tokens;
    for (int t = 2; t <= 14; ++t) {
        d = policy->decide(observe(t, kInf, {slow}))[0];
        tokens.push_back(d.step_tokens);
        if (t == 2) {
            EXPECT_NE(d.reason.find("step tokens 8192 -> 4096: TPOT p90 92 ms"), std::string::npos)
                << d.reason;
        }
    }
    EXPECT_EQ(tokens.front(), 4096);
    EXPECT_EQ(tokens[4], 4096);  // t = 6: within the dwell
    EXPECT_EQ(tokens[5], 2048);  // t = 7
    EXPECT_EQ(tokens.back(), 2048) << "never below the lowest";
    GroupObservation late = with_tokens(group(300.0));
    late.ttft_p90_s = 0.85;
    late.tpot_p90_s = 0.095;
    d = policy->decide(observe(20, kInf, {late}))[0];
    EXPECT_EQ(d.step_tokens, 4096) << d.reason;
    EXPECT_NE(d.reason.find("step tokens 2048 -> 4096: TTFT p90 0.85 s"), std::string::npos)
        << d.reason;
    d = policy->decide(observe(26, kInf, {late}))[0];
    EXPECT_EQ(d.step_tokens, 0) << "back at the launch value: " << d.reason;

    auto busy = make_pals_policy(small_model());
    GroupObservation both = slow;
    both.ttft_p90_s = 0.75;  // TPOT at risk, but TTFT has no slack to give
    EXPECT_EQ(busy->decide(observe(1, kInf, {both}))[0].step_tokens, 0);
    // A TPOT miss in the window is a risk with TPOT p90 inside the SLO.
    auto missed = make_pals_policy(small_model());
    GroupObservation one_miss = with_tokens(group(300.0));
    one_miss.tpot_miss_share = 0.01;
    EXPECT_EQ(missed->decide(observe(1, kInf, {one_miss}))[0].step_tokens, 4096);
    // An engine without a step-token budget never gets one.
    auto plain = make_pals_policy(small_model());
    GroupObservation no_knob = slow;
    no_knob.max_step_tokens = 0;
    EXPECT_EQ(plain->decide(observe(1, kInf, {no_knob}))[0].step_tokens, 0);
}

TEST(PalsPolicyTest, BudgetBoundFreesTheClockAndHoldsIt) {
    PalsSettings settings;
    settings.budget_bound_hold_s = 30.0;
    auto policy = make_pals_policy(small_model(), settings);
    // A 1-GPU node under 300 W that draws its cap with the clock below the lock (the cap sets
    // the pace) and TTFT at risk: budget-bound.
    for (int t = 1; t <= 5; ++t) {
        (void)policy->decide(observe(t, 300.0, {group(2000.0, 295.0)}));
    }
    GroupObservation bound = group(2000.0, 295.0);
    bound.cap_w = 300.0;
    bound.sm_clock_mhz = 500.0;  // far below any lock: the cap holds the clock
    bound.ttft_p90_s = 0.8;      // above 0.7 of the 1-s SLO
    GroupDecision d = policy->decide(observe(6, 300.0, {bound}))[0];
    EXPECT_EQ(d.cap_w, 300.0);
    EXPECT_EQ(d.locked_clock_mhz, 0.0) << d.reason;
    EXPECT_NE(d.reason.find("budget-bound"), std::string::npos) << d.reason;
    EXPECT_NE(d.reason.find("TTFT p90 0.80 s"), std::string::npos) << d.reason;
    // Latency recovers: the clock stays free for the hold, then the lock returns.
    for (int t = 7; t <= 35; ++t) {
        d = policy->decide(observe(t, 300.0, {group(2000.0, 295.0)}))[0];
        EXPECT_EQ(d.locked_clock_mhz, 0.0) << "t=" << t << ": " << d.reason;
        // The reason names the alarm and when it rang, not the time now.
        EXPECT_NE(d.reason.find("drawn with TTFT p90 0.80 s at 6 s; clock free until 36 s"),
                  std::string::npos)
            << "t=" << t << ": " << d.reason;
    }
    d = policy->decide(observe(37, 300.0, {group(2000.0, 250.0)}))[0];
    EXPECT_GT(d.locked_clock_mhz, 0.0) << d.reason;
}

TEST(PalsPolicyTest, ASmallQueueDoesNotBindTheBudget) {
    auto policy = make_pals_policy(small_model());
    GroupDecision d;
    for (int t = 1; t <= 20; ++t) {
        GroupObservation g = group(2000.0, 295.0);
        g.cap_w = 300.0;
        g.sm_clock_mhz = 500.0;
        g.waiting = 1 + t % 2;  // a request or two waiting a step: normal at partial load
        g.waiting_previous = 1;
        d = policy->decide(observe(t, 300.0, {g}))[0];
    }
    EXPECT_GT(d.locked_clock_mhz, 0.0) << d.reason;
}

TEST(PalsPolicyTest, ADrawnShareTheDemandDoesNotNeedIsNotBudgetBound) {
    // A drawn cap and a TTFT alarm as above, but a 500-W share for a demand the model serves
    // most efficiently on much less: the share is drawn because of the lock, not the load, so
    // the lock stays (and goes up for the alarm) instead of freeing the clock.
    auto policy = make_pals_policy(small_model());
    for (int t = 1; t <= 5; ++t) {
        (void)policy->decide(observe(t, 500.0, {group(100.0, 495.0)}));
    }
    GroupObservation drawn = group(100.0, 495.0);
    drawn.cap_w = 500.0;
    drawn.sm_clock_mhz = 500.0;
    drawn.ttft_p90_s = 0.95;  // at risk for the clock trim too (0.9 of the SLO)
    const GroupDecision d = policy->decide(observe(6, 500.0, {drawn}))[0];
    EXPECT_LE(d.cap_w, 500.0) << d.reason;
    EXPECT_GT(d.locked_clock_mhz, 0.0) << d.reason;
    EXPECT_EQ(d.reason.find("budget-bound"), std::string::npos) << d.reason;
    EXPECT_NE(d.reason.find("latency at risk (TTFT p90 0.95 s)"), std::string::npos) << d.reason;
}

TEST(PalsPolicyTest, TheBudgetGoesWhereTheDemandIs) {
    auto policy = make_pals_policy(small_model(), demand_as_measured());
    std::vector<GroupDecision> d;
    for (int t = 1; t <= 10; ++t) {
        d = policy->decide(observe(t, 700.0, {group(7000.0, 340.0), group(50.0, 150.0)}));
    }
    ASSERT_EQ(d.size(), 2U);
    EXPECT_GT(d[0].cap_w, d[1].cap_w) << d[0].reason << " | " << d[1].reason;
    EXPECT_LE(d[0].cap_w + d[1].cap_w, 700.0 + 1e-9);
    EXPECT_GE(d[1].cap_w, 200.0);
}

TEST(PalsPolicyTest, SharesMoveOnlyBeyondTheDeadband) {
    auto policy = make_pals_policy(small_model());
    std::vector<GroupDecision> d =
        policy->decide(observe(1, 900.0, {group(1500.0, 300.0), group(1500.0, 300.0)}));
    const double first = d[0].cap_w;
    // A slightly different demand would move the split by a few watts: it does not.
    d = policy->decide(observe(2, 900.0, {group(1530.0, 300.0), group(1470.0, 300.0)}));
    EXPECT_EQ(d[0].cap_w, first);
}

TEST(PalsPolicyTest, ASharesMoveWaitsForTheSplitToHoldButANewBudgetMovesThemAtOnce) {
    PalsSettings shares = demand_as_measured();  // the caps are the shares
    shares.cap_at_lock_power = false;
    auto policy = make_pals_policy(small_model(), shares);
    const auto steady = [](double t, double budget_w, double tok_s) {
        return observe(t, budget_w, {group(tok_s, 340.0), group(50.0, 150.0)});
    };
    std::vector<GroupDecision> d;
    for (int t = 1; t <= 10; ++t) {
        d = policy->decide(steady(t, 700.0, 50.0));
    }
    const double even = d[0].cap_w;
    ASSERT_EQ(d[1].cap_w, even);
    // One period of demand on the first group calls for a larger share for it: the shares hold.
    d = policy->decide(steady(11, 700.0, 7000.0));
    EXPECT_EQ(d[0].cap_w, even) << d[0].reason;
    d = policy->decide(steady(12, 700.0, 50.0));
    EXPECT_EQ(d[0].cap_w, even) << d[0].reason;
    // Demand that holds for share_settle_s (5 s) moves them.
    for (int t = 13; t <= 17; ++t) {
        d = policy->decide(steady(t, 700.0, 7000.0));
        EXPECT_EQ(d[0].cap_w, even) << "t = " << t << ": " << d[0].reason;
    }
    d = policy->decide(steady(18, 700.0, 7000.0));
    EXPECT_GT(d[0].cap_w, d[1].cap_w) << d[0].reason << " | " << d[1].reason;
    EXPECT_LE(d[0].cap_w + d[1].cap_w, 700.0 + 1e-9);
    // A lower budget moves them in the period it arrives.
    const double before = d[0].cap_w;
    d = policy->decide(steady(19, 600.0, 7000.0));
    EXPECT_LT(d[0].cap_w, before - 10.0) << d[0].reason;
}

TEST(PalsPolicyTest, ALockFarBelowTheLoadFloorRisesAtOnce) {
    // The lock has just moved (an alarm at the lowest lock), then the load jumps to near what
    // the share serves: the load floor is far above the lock, which rises at once instead of
    // waiting out the 10-s dwell; with the rule off, it waits.
    const auto lock_after_jump = [](PalsSettings settings) {
        auto policy = make_pals_policy(small_model(), std::move(settings));
        int t = 1;
        (void)trim_down(*policy, t);
        GroupObservation hot = group(300.0);
        hot.itl_p90_s = 0.099;
        hot.tpot_p90_s = 0.095;
        const double alarmed = policy->decide(observe(t++, kInf, {hot}))[0].locked_clock_mhz;
        const GroupDecision d = policy->decide(observe(t, kInf, {group(7000.0)}))[0];
        return std::pair{alarmed, d};
    };
    // From the lowest lock (a lock at 3/4 of the model's clock is within 1.5x of any floor).
    PalsSettings on = demand_as_measured();
    on.lowest_model_share = 0.0;
    const auto [alarmed, risen] = lock_after_jump(on);
    EXPECT_GE(risen.locked_clock_mhz, 1.5 * alarmed) << risen.reason;
    EXPECT_NE(risen.reason.find("at once: the load nears what the lock serves"), std::string::npos)
        << risen.reason;
    PalsSettings off = on;
    off.load_floor_raise = 1e9;
    const auto [alarmed_off, held] = lock_after_jump(off);
    EXPECT_EQ(held.locked_clock_mhz, alarmed_off) << held.reason;
    EXPECT_NE(held.reason.find("changed 1 s ago"), std::string::npos) << held.reason;
}

}  // namespace
}  // namespace pals::control
