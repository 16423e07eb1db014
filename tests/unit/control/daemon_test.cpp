#include "pals/control/daemon.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>

#include "pals/control/policies.hpp"
#include "pals/sim/simulated_node.hpp"

namespace pals::control {
namespace {

std::unique_ptr<sim::SimulatedNode> make_node() {
    sim::NodeConfig node;
    node.model = model::load_model_spec(std::string(PALS_SHARED_DIR) +
                                        "/models/meta-llama__Llama-3.1-8B-Instruct.json")
                     .value();
    node.gpu = sim::find_gpu_spec("H100-SXM").value();
    node.replicas = 2;
    node.engine.max_num_seqs = 256;
    workload::WorkloadSpec w;
    w.kind = workload::WorkloadKind::kSynthetic;
    w.rate_rps = 20.0;
    w.duration_s = 120.0;
    w.input = workload::LengthDistribution::fixed(500);
    w.output = workload::LengthDistribution::fixed(200);
    return sim::SimulatedNode::create(node, workload::build_workload(w).value()).value();
}

TEST(DaemonTest, AppliesAnApiBudgetWithinTwoPeriodsAndRestoresOnExit) {
    auto node = make_node();
    api::StateStore store;
    power::SavedControls saved(::testing::TempDir() + "/daemon_saved.json");
    ASSERT_TRUE(
        node->gpus().set_power_limit(1, 650.0).is_ok());  // an operator's setting to restore
    std::vector<engine::ServingEngine*> engines = {&node->engine(0), &node->engine(1)};
    ControllerConfig config;
    config.budget = BudgetSchedule(1400.0);
    Daemon daemon(node->clock(), node->gpus(), engines, make_cap_only_policy(), config, store,
                  saved);
    std::atomic<bool> stop{false};
    ASSERT_TRUE(daemon.run(stop, Seconds{20.0}).is_ok());
    store.request_budget({{{0.0, 600.0}}});
    ASSERT_TRUE(daemon.run(stop, Seconds{40.0}).is_ok());
    auto state = store.latest();
    ASSERT_TRUE(state);
    EXPECT_DOUBLE_EQ(state->budget_w, 600.0);
    EXPECT_LE(state->power_w, 600.0 + 1e-6);
    EXPECT_DOUBLE_EQ(state->groups.at(0).cap_w, 300.0);
    EXPECT_EQ(state->budget_updates_total, 1U);
    EXPECT_GT(state->generation_tokens, 0.0);
    // Saved limits are back after run() returns.
    EXPECT_DOUBLE_EQ(node->gpus().power_limit_w(1).value(), 650.0);
    EXPECT_DOUBLE_EQ(node->gpus().power_limit_w(0).value(), 700.0);
}

TEST(DaemonTest, BackendFailureDegradesAndRestores) {
    auto node = make_node();
    api::StateStore store;
    power::SavedControls saved(::testing::TempDir() + "/daemon_saved2.json");
    std::vector<engine::ServingEngine*> engines = {&node->engine(0), &node->engine(1)};
    ControllerConfig config;
    config.budget = BudgetSchedule(1000.0);
    Daemon daemon(node->clock(), node->gpus(), engines, make_cap_only_policy(), config, store,
                  saved);
    std::atomic<bool> stop{false};
    ASSERT_TRUE(daemon.run(stop, Seconds{5.0}).is_ok());
    node->gpus().set_writable(false);  // writes now fail as without root
    store.request_budget({{{0.0, 600.0}}});
    const Status s = daemon.run(stop, Seconds{10.0});
    EXPECT_EQ(s.code(), StatusCode::kPermissionDenied) << s.message();
    auto state = store.latest();
    ASSERT_TRUE(state);
    EXPECT_TRUE(state->degraded);
    EXPECT_GE(state->errors_total, 1U);
}

/// A serving engine that answers like `inner`, except that its scrape fails while the clock is in
/// [fail_from, fail_until) (vLLM restarting). `on_snapshot` sees every call.
class FlakyEngine final : public engine::ServingEngine {
public:
    FlakyEngine(engine::ServingEngine& inner, Clock& clock, double fail_from_s, double fail_until_s)
        : m_inner(inner)
        , m_clock(clock)
        , m_fail_from_s(fail_from_s)
        , m_fail_until_s(fail_until_s) {}

    [[nodiscard]] std::string_view engine_name() const override { return m_inner.engine_name(); }
    [[nodiscard]] Result<engine::EngineSnapshot> snapshot() override {
        const double t = m_clock.now().count();
        if (on_snapshot) {
            on_snapshot(t);
        }
        if (t >= m_fail_from_s && t < m_fail_until_s) {
            return Status::unavailable("GET http://127.0.0.1:8000/metrics failed: Connection");
        }
        return m_inner.snapshot();
    }
    [[nodiscard]] int max_batch_cap() const override { return m_inner.max_batch_cap(); }
    [[nodiscard]] Status set_batch_cap(int batch_cap) override {
        return m_inner.set_batch_cap(batch_cap);
    }
    [[nodiscard]] std::vector<int> gpus() const override { return m_inner.gpus(); }

    std::function<void(double)> on_snapshot;

private:
    engine::ServingEngine& m_inner;
    Clock& m_clock;
    double m_fail_from_s;
    double m_fail_until_s;
};

TEST(DaemonTest, RecoversAfterAnEngineOutageAndResavesControls) {
    auto node = make_node();
    api::StateStore store;
    const std::string state_file = ::testing::TempDir() + "/daemon_saved3.json";
    std::filesystem::remove(state_file);
    power::SavedControls saved(state_file);
    ASSERT_TRUE(
        node->gpus().set_power_limit(1, 650.0).is_ok());  // an operator's setting to restore
    FlakyEngine flaky(node->engine(0), node->clock(), 10.5, 17.0);
    // While the engine is down: the saved limits, lowered to an even share of the budget in
    // force (the policy is not running, the budget still holds), state degraded; one budget
    // change arrives through the API meanwhile.
    std::vector<double> degraded_limits_gpu1;
    bool budget_sent = false;
    flaky.on_snapshot = [&](double t) {
        auto s = store.latest();
        if (s && s->degraded && t > 11.0 && t < 17.0) {
            // (`s` may predate a budget change this very wake-up already applied: <=.)
            const double share_w = s->budget_w / 2.0;
            degraded_limits_gpu1.push_back(node->gpus().power_limit_w(1).value());
            EXPECT_LE(node->gpus().power_limit_w(0).value(), share_w);
            EXPECT_LE(node->gpus().power_limit_w(1).value(), share_w);
            EXPECT_TRUE(std::filesystem::exists(state_file))
                << "the originals stay saved while the budget is held";
            if (!budget_sent) {
                store.request_budget({{{0.0, 800.0}}});
                budget_sent = true;
            }
        }
    };
    std::vector<engine::ServingEngine*> engines = {&flaky, &node->engine(1)};
    ControllerConfig config;
    config.budget = BudgetSchedule(1000.0);
    DaemonOptions options;
    options.retry_periods = 3;
    Daemon daemon(node->clock(), node->gpus(), engines, make_cap_only_policy(), config, store,
                  saved, options);
    std::atomic<bool> stop{false};
    ASSERT_TRUE(daemon.run(stop, Seconds{30.0}).is_ok());

    ASSERT_FALSE(degraded_limits_gpu1.empty());
    for (double w : degraded_limits_gpu1) {
        EXPECT_LE(w, 500.0);  // 1000 W, then 800 W over 2 GPUs
    }
    EXPECT_TRUE(budget_sent);
    EXPECT_FALSE(daemon.degraded());
    EXPECT_EQ(daemon.recoveries_total(), 1U);
    // The failed tick, then failed retries at 14 s (and no later: it is back up at 17 s).
    EXPECT_GE(daemon.errors_total(), 2U);
    auto state = store.latest();
    ASSERT_TRUE(state);
    EXPECT_FALSE(state->degraded);
    EXPECT_EQ(state->errors_total, daemon.errors_total());
    EXPECT_DOUBLE_EQ(state->budget_w, 800.0);  // the change made while degraded holds
    EXPECT_DOUBLE_EQ(state->groups.at(0).cap_w, 400.0);
    EXPECT_DOUBLE_EQ(state->groups.at(1).cap_w, 400.0);
    EXPECT_GT(state->decisions_total, 15U);
    EXPECT_GE(state->cap_changes_total, 3U);  // 650->500 (and 700->500), then 500->400 per group
    // Controls were saved again before the first write after the outage: the final restore puts
    // the operator's values back, not the caps PALS set.
    EXPECT_DOUBLE_EQ(node->gpus().power_limit_w(1).value(), 650.0);
    EXPECT_DOUBLE_EQ(node->gpus().power_limit_w(0).value(), 700.0);
    EXPECT_FALSE(std::filesystem::exists(state_file));
}

TEST(DaemonTest, AStartFailureIsRetriedUntilTheEngineAnswers) {
    auto node = make_node();
    api::StateStore store;
    power::SavedControls saved(::testing::TempDir() + "/daemon_saved4.json");
    FlakyEngine flaky(node->engine(0), node->clock(), 0.0, 8.0);
    std::vector<engine::ServingEngine*> engines = {&flaky, &node->engine(1)};
    ControllerConfig config;
    config.budget = BudgetSchedule(1000.0);
    Daemon daemon(node->clock(), node->gpus(), engines, make_cap_only_policy(), config, store,
                  saved);
    std::atomic<bool> stop{false};
    bool degraded_at_start = false;
    flaky.on_snapshot = [&](double t) {
        if (auto s = store.latest(); s && t < 8.0) {
            degraded_at_start = degraded_at_start || s->degraded;
            EXPECT_DOUBLE_EQ(node->gpus().power_limit_w(0).value(), 500.0);  // 1000 W held
        }
    };
    ASSERT_TRUE(daemon.run(stop, Seconds{16.0}).is_ok());
    EXPECT_TRUE(degraded_at_start);
    EXPECT_EQ(daemon.errors_total(), 2U);  // the start at 0 s and the retry at 5 s
    EXPECT_EQ(daemon.recoveries_total(), 1U);
    auto state = store.latest();
    ASSERT_TRUE(state);
    EXPECT_FALSE(state->degraded);
    EXPECT_DOUBLE_EQ(state->groups.at(0).cap_w, 500.0);
    EXPECT_DOUBLE_EQ(node->gpus().power_limit_w(0).value(), 700.0);
}

/// The node's clock, with a hook called after every advance (to act "from outside" mid-run).
class HookedClock final : public Clock {
public:
    HookedClock(Clock& inner, std::function<void(Seconds)> hook) : m_inner(inner), m_hook(std::move(hook)) {}
    [[nodiscard]] Seconds now() const override { return m_inner.now(); }
    void sleep_until(Seconds t) override {
        m_inner.sleep_until(t);
        m_hook(m_inner.now());
    }

private:
    Clock& m_inner;
    std::function<void(Seconds)> m_hook;
};

TEST(DaemonTest, ABudgetDropLowersTheCapsBeforeTheNextPeriod) {
    auto node = make_node();
    api::StateStore store;
    power::SavedControls saved(::testing::TempDir() + "/daemon_saved6.json");
    std::vector<engine::ServingEngine*> engines = {&node->engine(0), &node->engine(1)};
    ControllerConfig config;
    config.budget = BudgetSchedule(1400.0);
    bool requested = false;
    double requested_at = 0.0;
    double lowered_at = -1.0;
    HookedClock clock(node->clock(), [&](Seconds now) {
        if (!requested && now.count() >= 10.3) {
            store.request_budget({{{0.0, 500.0}}});
            requested = true;
            requested_at = now.count();
        }
        if (requested && lowered_at < 0.0 && node->gpus().power_limit_w(0).value() <= 250.0 + 1e-9 &&
            node->gpus().power_limit_w(1).value() <= 250.0 + 1e-9) {
            lowered_at = now.count();
        }
    });
    Daemon daemon(clock, node->gpus(), engines, make_cap_only_policy(), config, store, saved);
    std::atomic<bool> stop{false};
    ASSERT_TRUE(daemon.run(stop, Seconds{15.0}).is_ok());
    ASSERT_GE(lowered_at, 0.0);
    // Seen at the first wake-up after the request (the loop polls every 0.1 s), well before the
    // next period at t = 11 s.
    EXPECT_LE(lowered_at - requested_at, 0.15);
    EXPECT_LT(lowered_at, 11.0);
    auto state = store.latest();
    ASSERT_TRUE(state);
    EXPECT_DOUBLE_EQ(state->groups.at(0).cap_w, 250.0);
}

TEST(DaemonTest, StopsAtOnceWhenTheFlagIsSet) {
    auto node = make_node();
    api::StateStore store;
    power::SavedControls saved(::testing::TempDir() + "/daemon_saved5.json");
    std::vector<engine::ServingEngine*> engines = {&node->engine(0), &node->engine(1)};
    ControllerConfig config;
    config.budget = BudgetSchedule(800.0);
    Daemon daemon(node->clock(), node->gpus(), engines, make_cap_only_policy(), config, store,
                  saved);
    std::atomic<bool> stop{true};
    ASSERT_TRUE(daemon.run(stop, Seconds{100.0}).is_ok());
    EXPECT_LT(node->clock().now().count(), 1.0);
    auto state = store.latest();
    ASSERT_TRUE(state);
    EXPECT_EQ(state->groups.size(), 2U);  // groups are listed before the first period
    EXPECT_DOUBLE_EQ(node->gpus().power_limit_w(0).value(), 700.0);
}

}  // namespace
}  // namespace pals::control
