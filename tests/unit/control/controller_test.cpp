#include "pals/control/controller.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "mocks/mock_gpu_backend.hpp"
#include "pals/control/policies.hpp"
#include "pals/sim/simulated_node.hpp"

namespace pals::control {
namespace {

using ::testing::_;
using ::testing::InSequence;
using ::testing::NiceMock;
using ::testing::Return;

std::unique_ptr<sim::SimulatedNode> make_node(int replicas, double rate_rps) {
    sim::NodeConfig node;
    node.model = model::load_model_spec(std::string(PALS_SHARED_DIR) +
                                        "/models/meta-llama__Llama-3.1-8B-Instruct.json")
                     .value();
    node.gpu = sim::find_gpu_spec("H100-SXM").value();
    node.replicas = replicas;
    node.engine.max_num_seqs = 256;
    workload::WorkloadSpec w;
    w.kind = workload::WorkloadKind::kSynthetic;
    w.rate_rps = rate_rps;
    w.duration_s = 120.0;
    w.input = workload::LengthDistribution::fixed(500);
    w.output = workload::LengthDistribution::fixed(200);
    return sim::SimulatedNode::create(node, workload::build_workload(w).value()).value();
}

std::vector<engine::ServingEngine*> engines_of(sim::SimulatedNode& n) {
    std::vector<engine::ServingEngine*> out;
    for (int r = 0; r < n.replica_count(); ++r) {
        out.push_back(&n.engine(r));
    }
    return out;
}

TEST(BudgetScheduleTest, StepsAndValidation) {
    auto b = BudgetSchedule::from_steps({{0.0, 1000.0}, {10.0, 600.0}});
    ASSERT_TRUE(b.is_ok());
    EXPECT_DOUBLE_EQ(b->at(5.0), 1000.0);
    EXPECT_DOUBLE_EQ(b->at(10.0), 600.0);
    EXPECT_FALSE(BudgetSchedule::from_steps({}).is_ok());
    EXPECT_FALSE(BudgetSchedule::from_steps({{0.0, 100.0}, {0.0, 200.0}}).is_ok());
    EXPECT_FALSE(BudgetSchedule::from_steps({{0.0, -1.0}}).is_ok());
    EXPECT_TRUE(std::isinf(BudgetSchedule().at(3.0)));
}

// Defect: the history grew by one record per tick forever (the live daemon runs for months).
TEST(ControllerTest, HistoryLimitKeepsTheNewestRecordsAndCountsEveryDecision) {
    auto node = make_node(2, 20.0);
    ControllerConfig config;
    config.budget = BudgetSchedule::from_steps({{0.0, 1400.0}, {30.0, 700.0}}).value();
    config.history_limit = 10;
    Controller c(node->clock(), node->gpus(), engines_of(*node), make_cap_only_policy(), config);
    ASSERT_TRUE(c.start().is_ok());
    ASSERT_TRUE(c.run_until(Seconds{60.0}).is_ok());
    EXPECT_EQ(c.decisions_total(), 60U);
    ASSERT_EQ(c.history().size(), 10U);
    EXPECT_DOUBLE_EQ(c.history().front().time_s, 51.0);
    EXPECT_DOUBLE_EQ(c.history().back().time_s, 60.0);
    EXPECT_DOUBLE_EQ(c.history().back().cap_w[0], 350.0);
    // 0 (offline evaluation's default) keeps every record.
    config.history_limit = 0;
    auto other = make_node(2, 20.0);
    Controller full(other->clock(), other->gpus(), engines_of(*other), make_cap_only_policy(),
                    config);
    ASSERT_TRUE(full.start().is_ok());
    ASSERT_TRUE(full.run_until(Seconds{60.0}).is_ok());
    EXPECT_EQ(full.history().size(), 60U);
}

TEST(ControllerTest, CapOnlyTracksABudgetStepWithinOnePeriod) {
    auto node = make_node(2, 20.0);
    ControllerConfig config;
    config.budget = BudgetSchedule::from_steps({{0.0, 1400.0}, {30.0, 700.0}}).value();
    Controller c(node->clock(), node->gpus(), engines_of(*node), make_cap_only_policy(), config);
    ASSERT_TRUE(c.start().is_ok());
    ASSERT_TRUE(c.run_until(Seconds{60.0}).is_ok());
    for (const TickRecord& t : c.history()) {
        if (t.time_s > 31.0) {
            EXPECT_LE(t.power_w, 700.0 + 1e-6) << "at " << t.time_s;
            EXPECT_DOUBLE_EQ(t.cap_w[0], 350.0);
        }
    }
    EXPECT_DOUBLE_EQ(node->gpus().power_limit_w(1).value(), 350.0);
}

TEST(ControllerTest, DefaultIgnoresTheBudget) {
    auto node = make_node(1, 5.0);
    ControllerConfig config;
    config.budget = BudgetSchedule(300.0);
    Controller c(node->clock(), node->gpus(), engines_of(*node), make_default_policy(), config);
    ASSERT_TRUE(c.start().is_ok());
    ASSERT_TRUE(c.run_until(Seconds{5.0}).is_ok());
    EXPECT_DOUBLE_EQ(c.history().back().cap_w[0], 700.0);
    EXPECT_EQ(c.history().back().batch_cap[0], 256);
}

TEST(ControllerTest, SumOfCapsNeverExceedsTheBudget) {
    auto node = make_node(2, 10.0);
    ControllerConfig config;
    config.budget = BudgetSchedule(900.0);
    // A fixed policy asking for 700 W per GPU is scaled down to the budget.
    Controller c(node->clock(), node->gpus(), engines_of(*node),
                 make_fixed_policy("fixed", 700.0, 64), config);
    ASSERT_TRUE(c.start().is_ok());
    ASSERT_TRUE(c.run_until(Seconds{10.0}).is_ok());
    const TickRecord& t = c.history().back();
    EXPECT_LE(t.cap_w[0] + t.cap_w[1], 900.0 + 1e-6);
    EXPECT_EQ(t.batch_cap[0], 64);
}

TEST(ControllerTest, AppliesTheStepTokenBudgetAndZeroIsTheLaunchValue) {
    auto node = make_node(1, 10.0);
    const int launch = node->engine(0).max_step_tokens();
    ASSERT_GT(launch, 4096);
    Controller c(node->clock(), node->gpus(), engines_of(*node),
                 make_fixed_policy("fixed", 700.0, 64, 0.0, 4096), ControllerConfig{});
    ASSERT_TRUE(c.start().is_ok());
    ASSERT_TRUE(c.run_until(Seconds{2.0}).is_ok());
    EXPECT_EQ(c.history().back().step_tokens[0], 4096);
    EXPECT_EQ(node->simulator().observe(0).step_tokens, 4096);
    EXPECT_NE(c.history().back().reason.find("4096 tokens per step"), std::string::npos);
    // Above the launch value (and the launch value itself) is "the launch value": 0.
    Controller above(node->clock(), node->gpus(), engines_of(*node),
                     make_fixed_policy("fixed", 700.0, 64, 0.0, 2 * launch), ControllerConfig{});
    ASSERT_TRUE(above.start().is_ok());
    EXPECT_EQ(above.history().size(), 0U);
    ASSERT_TRUE(above.tick().is_ok());
    EXPECT_EQ(above.history().back().step_tokens[0], 0);
    EXPECT_EQ(node->simulator().observe(0).step_tokens, launch);
}

TEST(ControllerTest, TheReasonStatesACapTheBudgetLowered) {
    auto node = make_node(1, 10.0);
    ControllerConfig config;
    config.budget = BudgetSchedule(400.0);
    Controller c(node->clock(), node->gpus(), engines_of(*node),
                 make_fixed_policy("fixed", 700.0, 64), config);
    ASSERT_TRUE(c.start().is_ok());
    ASSERT_TRUE(c.run_until(Seconds{3.0}).is_ok());
    const TickRecord& t = c.history().back();
    EXPECT_DOUBLE_EQ(t.cap_w[0], 400.0);
    EXPECT_NE(t.reason.find("fixed 700 W, batch 64; cap 400 W fitted to the 400 W budget"),
              std::string::npos)
        << t.reason;
}

TEST(ControllerTest, ClockOnlyLowersTheClockWhenLatencyHasSlack) {
    auto node = make_node(1, 2.0);
    Controller c(node->clock(), node->gpus(), engines_of(*node), make_clock_only_policy(), {});
    ASSERT_TRUE(c.start().is_ok());
    ASSERT_TRUE(c.run_until(Seconds{60.0}).is_ok());
    auto locked = node->gpus().locked_sm_clocks(0);
    ASSERT_TRUE(locked.is_ok() && locked.value().has_value());
    EXPECT_LT(locked.value()->max_mhz, 1500.0);
}

TEST(ControllerTest, SloMissSharesFollowTheLatencyWindow) {
    EXPECT_TRUE(std::isnan(expected_violation_share(std::nan(""), std::nan(""))));
    EXPECT_DOUBLE_EQ(expected_violation_share(0.25, std::nan("")), 0.25);
    EXPECT_DOUBLE_EQ(expected_violation_share(0.75, 0.5), 1.0);
    // A light load meets both SLOs; an overload (60 requests/s against a 50-ms TPOT) misses.
    for (const double rate : {2.0, 60.0}) {
        auto node = make_node(1, rate);
        ControllerConfig config;
        config.slo_tpot_s = 0.05;
        Controller c(node->clock(), node->gpus(), engines_of(*node), make_default_policy(), config);
        ASSERT_TRUE(c.start().is_ok());
        ASSERT_TRUE(c.run_until(Seconds{60.0}).is_ok());
        const TickRecord& t = c.history().back();
        ASSERT_EQ(t.ttft_miss_share.size(), 1U);
        const double share = expected_violation_share(t.ttft_miss_share[0], t.tpot_miss_share[0]);
        if (rate < 10.0) {
            EXPECT_DOUBLE_EQ(share, 0.0);
        } else {
            EXPECT_GT(share, 0.5);
        }
    }
}

TEST(ControllerTest, BatchOnlyShrinksTheBatchWhenItlIsAtRisk) {
    auto node = make_node(1, 60.0);  // overload: a big batch breaks a tight ITL SLO
    ControllerConfig config;
    config.slo_tpot_s = 0.02;
    Controller c(node->clock(), node->gpus(), engines_of(*node), make_batch_only_policy(), config);
    ASSERT_TRUE(c.start().is_ok());
    ASSERT_TRUE(c.run_until(Seconds{60.0}).is_ok());
    EXPECT_LT(c.history().back().batch_cap[0], 256);
}

/// A fake engine that logs batch-cap writes into a shared log.
class StubEngine final : public engine::ServingEngine {
public:
    StubEngine(std::vector<int> gpus, std::vector<std::string>& log)
        : m_gpus(std::move(gpus)), m_log(log) {}
    std::string_view engine_name() const override { return "stub"; }
    Result<engine::EngineSnapshot> snapshot() override {
        engine::EngineSnapshot s;
        s.batch_cap = m_batch;
        s.ttft_s = s.itl_s = s.tpot_s = s.e2e_s = engine::CumulativeHistogram::with_bounds({0.1});
        return s;
    }
    int max_batch_cap() const override { return 256; }
    Status set_batch_cap(int b) override {
        m_batch = b;
        m_log.push_back("batch:" + std::to_string(b));
        return Status::ok();
    }
    std::vector<int> gpus() const override { return m_gpus; }

private:
    std::vector<int> m_gpus;
    std::vector<std::string>& m_log;
    int m_batch = 256;
};

/// Follows the budget with the cap and moves the batch cap with it.
class ScriptedPolicy final : public Policy {
public:
    std::string_view name() const override { return "scripted"; }
    std::vector<GroupDecision> decide(const Observation& o) override {
        const bool low = o.budget_w < 500.0;
        return {{low ? 300.0 : 700.0, low ? 128 : 256, -1.0, "scripted"}};
    }
};

TEST(ControllerTest, LowersCapsBeforeTheBatchAndRaisesThemAfter) {
    NiceMock<power::MockGpuBackend> gpus;
    ManualClock clock;
    std::vector<std::string> log;
    power::GpuSample sample;
    sample.power_limit_w = 700.0;
    ON_CALL(gpus, power_limit_range(_))
        .WillByDefault(
            Return(Result<power::PowerLimitRange>(power::PowerLimitRange{200, 700, 700})));
    ON_CALL(gpus, sample_all())
        .WillByDefault(
            Return(Result<std::vector<power::GpuSample>>(std::vector<power::GpuSample>{sample})));
    ON_CALL(gpus, set_power_limit(_, _)).WillByDefault([&log](int, double w) {
        log.push_back("cap:" + std::to_string(static_cast<int>(w)));
        return Result<double>(w);
    });
    StubEngine engine({0}, log);
    ControllerConfig config;
    config.budget = BudgetSchedule::from_steps({{0.0, 700.0}, {1.5, 300.0}, {2.5, 700.0}}).value();
    Controller c(clock, gpus, {&engine}, std::make_unique<ScriptedPolicy>(), config);
    ASSERT_TRUE(c.start().is_ok());
    ASSERT_TRUE(c.run_until(Seconds{3.0}).is_ok());
    EXPECT_EQ(log, (std::vector<std::string>{"cap:300", "batch:128", "batch:256", "cap:700"}));
    EXPECT_DOUBLE_EQ(clock.now().count(), 3.0);
}

}  // namespace
}  // namespace pals::control
