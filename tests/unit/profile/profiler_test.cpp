#include "pals/profile/profiler.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "mocks/mock_gpu_backend.hpp"
#include "pals/common/file_util.hpp"
#include "pals/sim/simulated_node.hpp"
#include "profile_test_helpers.hpp"

namespace pals::profile {
namespace {

using ::testing::_;
using ::testing::AnyNumber;
using ::testing::Invoke;
using ::testing::Return;
using ::testing::StrictMock;

// ---- a fake engine and a mocked GPU backend: the loop must use only the interfaces -----------

/// Serves `tokens_per_seq_s` output tokens per second per running sequence, the batch always
/// full, every inter-token gap 8 ms; counters are integrals over the manual clock.
class FakeEngine final : public engine::ServingEngine {
public:
    FakeEngine(ManualClock& clock, std::vector<int> gpus)
        : m_clock(clock), m_gpus(std::move(gpus)) {
        m_itl = engine::CumulativeHistogram::with_bounds({0.005, 0.01, 0.02, 0.05});
    }
    [[nodiscard]] std::string_view engine_name() const override { return "fake"; }
    [[nodiscard]] Result<engine::EngineSnapshot> snapshot() override {
        advance();
        engine::EngineSnapshot s;
        s.time = m_clock.now();
        s.running = m_batch;
        s.waiting = 100;
        s.kv_cache_usage = 0.25;
        s.batch_cap = m_batch;
        s.generation_tokens = m_tokens;
        s.prompt_tokens = m_tokens / 2.0;
        s.requests_finished = m_tokens / 100.0;
        s.itl_s = m_itl;
        s.tpot_s = m_itl;
        s.ttft_s = m_itl;
        s.e2e_s = m_itl;
        ++snapshots;
        return s;
    }
    [[nodiscard]] int max_batch_cap() const override { return 64; }
    [[nodiscard]] Status set_batch_cap(int batch_cap) override {
        advance();
        m_batch = batch_cap;
        batch_caps_set.push_back(batch_cap);
        return Status::ok();
    }
    [[nodiscard]] std::vector<int> gpus() const override { return m_gpus; }

    static constexpr double kTokensPerSeqS = 100.0;
    std::vector<int> batch_caps_set;
    int snapshots = 0;

private:
    void advance() {
        const double dt = (m_clock.now() - m_last).count();
        const double tokens = kTokensPerSeqS * m_batch * dt;
        m_tokens += tokens;
        if (tokens > 0.0) {
            m_itl.observe(0.008, tokens);
        }
        m_last = m_clock.now();
    }
    ManualClock& m_clock;
    std::vector<int> m_gpus;
    int m_batch = 64;
    double m_tokens = 0.0;
    Seconds m_last{0.0};
    engine::CumulativeHistogram m_itl;
};

class FakeSession final : public ProfileSession {
public:
    FakeSession(ManualClock& c, power::GpuBackend& g, engine::ServingEngine& e)
        : m_c(c), m_g(g), m_e(e) {}
    [[nodiscard]] Clock& clock() override { return m_c; }
    [[nodiscard]] power::GpuBackend& gpus() override { return m_g; }
    [[nodiscard]] engine::ServingEngine& engine() override { return m_e; }

private:
    ManualClock& m_c;
    power::GpuBackend& m_g;
    engine::ServingEngine& m_e;
};

/// GPU g draws 200 + 10 g W; energy is power x time on the manual clock.
power::GpuSample fake_sample(const ManualClock& clock, int g) {
    power::GpuSample s;
    s.index = g;
    s.time = clock.now();
    s.power_w = 200.0 + 10.0 * g;
    s.energy_j = s.power_w * clock.now().count();
    s.sm_clock_mhz = 1500.0;
    s.power_limit_w = 300.0;
    s.enforced_power_limit_w = 290.0;
    s.throttle_reasons = power::to_mask(power::ThrottleReason::kSwPowerCap);
    return s;
}

TEST(MeasurePointTest, UsesOnlyTheInterfacesOfTheMeasuredGroup) {
    ManualClock clock{Seconds{100.0}};
    FakeEngine engine(clock, {2, 3});  // replica 1 of a TP2 node with 4 GPUs
    StrictMock<power::MockGpuBackend> gpus;
    // Exactly these calls, on GPUs 2 and 3 only: any other call fails the test.
    for (int g : {2, 3}) {
        EXPECT_CALL(gpus, power_limit_range(g))
            .WillOnce(Return(power::PowerLimitRange{200.0, 700.0, 700.0}));
        EXPECT_CALL(gpus, set_power_limit(g, 300.0)).WillOnce(Return(300.0));
        EXPECT_CALL(gpus, sample(g)).Times(AnyNumber()).WillRepeatedly(Invoke([&clock](int gpu) {
            return Result<power::GpuSample>(fake_sample(clock, gpu));
        }));
    }
    FakeSession session(clock, gpus, engine);
    MeasureSettings m;
    m.warmup = Seconds{5.0};
    m.window = Seconds{10.0};
    m.sample_period = Seconds{1.0};
    auto row = measure_point(session, SweepPoint{300.0, 16}, m);
    ASSERT_OK(row);
    EXPECT_EQ(engine.batch_caps_set, std::vector<int>{16});
    EXPECT_DOUBLE_EQ(clock.now().count(), 115.0);  // warm-up + window, nothing more
    EXPECT_EQ(engine.snapshots, 11);               // both ends and every second in between
    EXPECT_NEAR(row->window_s, 10.0, 1e-9);
    EXPECT_NEAR(row->throughput_tok_s, FakeEngine::kTokensPerSeqS * 16, 1e-6);
    EXPECT_NEAR(row->power_w, 220.0 + 230.0, 1e-6);  // from energy deltas, both GPUs
    EXPECT_NEAR(row->j_per_token, 450.0 / 1600.0, 1e-9);
    EXPECT_NEAR(row->prompt_tok_s, 800.0, 1e-6);
    EXPECT_NEAR(row->avg_batch, 16.0, 1e-12);
    EXPECT_NEAR(row->kv_usage, 0.25, 1e-12);
    EXPECT_NEAR(row->sm_clock_mhz, 1500.0, 1e-9);
    EXPECT_NEAR(row->power_capped_frac, 1.0, 1e-12);
    EXPECT_DOUBLE_EQ(row->enforced_cap_w, 290.0);
    EXPECT_EQ(row->gpus, 2);
    EXPECT_TRUE(row->saturated);
    EXPECT_GT(row->itl_p50_s, 0.005);
    EXPECT_LT(row->itl_p50_s, 0.01);
    EXPECT_DOUBLE_EQ(row->warmup_s, 5.0);
}

TEST(MeasurePointTest, RejectsPointsOutsideTheBackendsRanges) {
    ManualClock clock;
    FakeEngine engine(clock, {0});
    StrictMock<power::MockGpuBackend> gpus;
    FakeSession session(clock, gpus, engine);
    EXPECT_STATUS(measure_point(session, SweepPoint{300.0, 65}, MeasureSettings{}),
                  StatusCode::kOutOfRange, "batch cap 65 is outside the engine's range 1-64");
    EXPECT_CALL(gpus, power_limit_range(0))
        .WillOnce(Return(power::PowerLimitRange{200.0, 700.0, 700.0}));
    EXPECT_STATUS(measure_point(session, SweepPoint{150.0, 8}, MeasureSettings{}),
                  StatusCode::kOutOfRange, "cap 150 W is outside GPU 0's range 200-700 W");
}

TEST(MeasurePointTest, PropagatesBackendErrors) {
    ManualClock clock;
    FakeEngine engine(clock, {0});
    StrictMock<power::MockGpuBackend> gpus;
    EXPECT_CALL(gpus, power_limit_range(0))
        .WillOnce(Return(power::PowerLimitRange{200.0, 700.0, 700.0}));
    EXPECT_CALL(gpus, set_power_limit(0, 400.0))
        .WillOnce(Return(Status::permission_denied("no root")));
    FakeSession session(clock, gpus, engine);
    EXPECT_STATUS(measure_point(session, SweepPoint{400.0, 8}, MeasureSettings{}),
                  StatusCode::kPermissionDenied, "no root");
    EXPECT_TRUE(engine.batch_caps_set.empty());
}

// ---- against the simulator ----------------------------------------------------------------

TEST(MeasurePointTest, MeasuresASaturatedSimulatedNode) {
    auto node = sim::SimulatedNode::create(testing::llama_node(),
                                           default_workload_mix().closed_loop_requests(3000, 32));
    ASSERT_OK(node);
    SharedSessionFactory factory(node.value()->clock(), node.value()->gpus(),
                                 node.value()->engine(0),
                                 model_shape_of(testing::llama8b(), "H100-SXM", 1, 1), "simulated");
    auto session = factory.open(default_workload_mix(), SweepPoint{300.0, 32}, 0);
    ASSERT_OK(session);
    auto row = measure_point(*session.value(), SweepPoint{300.0, 32}, testing::short_measure());
    ASSERT_OK(row);
    EXPECT_TRUE(row->saturated);
    EXPECT_NEAR(row->avg_batch, 32.0, 1.0);
    EXPECT_LE(row->power_w, 300.0 + 1e-6);
    EXPECT_GT(row->power_w, 250.0);
    EXPECT_LT(row->sm_clock_mhz, node.value()->gpus().spec().sm_clock_max_mhz);
    EXPECT_GT(row->throughput_tok_s, 1000.0);
    EXPECT_NEAR(row->j_per_token, row->power_w / row->throughput_tok_s, 1e-3 * row->j_per_token);
    EXPECT_GT(row->itl_p90_s, row->itl_p50_s * 0.99);
    EXPECT_GE(row->itl_p99_s, row->itl_p90_s);
    EXPECT_NEAR(row->window_s, 8.0, 1e-9);
    EXPECT_DOUBLE_EQ(node.value()->gpus().power_limit_w(0).value(), 300.0);
}

TEST(SimSessionFactoryTest, EachPointGetsAFreshSaturatedNode) {
    auto factory = SimSessionFactory::create(testing::llama_node(), testing::short_measure(), 512);
    ASSERT_OK(factory);
    EXPECT_EQ(factory.value()->node().engine.max_num_seqs, 512);
    EXPECT_EQ(factory.value()->node().replicas, 1);
    EXPECT_FALSE(factory.value()->model_shape().is_moe());
    const WorkloadMix mix = default_workload_mix();
    // More requests for a bigger batch, enough for warm-up + window.
    const int small = factory.value()->requests_needed(mix, SweepPoint{700.0, 4});
    const int big = factory.value()->requests_needed(mix, SweepPoint{700.0, 256});
    EXPECT_GT(big, 10 * small);
    auto a = factory.value()->open(mix, SweepPoint{700.0, 4}, 0);
    auto b = factory.value()->open(mix, SweepPoint{700.0, 4}, 0);
    ASSERT_OK(a);
    ASSERT_OK(b);
    a.value()->clock().sleep_until(Seconds{5.0});
    EXPECT_DOUBLE_EQ(b.value()->clock().now().count(), 0.0);
    for (int batch : {1, 64, 512}) {
        auto s = factory.value()->open(mix, SweepPoint{500.0, batch}, 0);
        ASSERT_OK(s);
        auto row = measure_point(*s.value(), SweepPoint{500.0, batch}, testing::short_measure());
        ASSERT_OK(row);
        EXPECT_TRUE(row->saturated) << "batch " << batch;
    }
}

/// Gives too little load on the first attempt.
class StarvingFactory final : public SessionFactory {
public:
    [[nodiscard]] std::string backend_name() const override { return "simulated"; }
    [[nodiscard]] ModelShape model_shape() const override {
        return model_shape_of(testing::llama8b(), "H100-SXM", 1, 1);
    }
    [[nodiscard]] Result<std::unique_ptr<ProfileSession>> open(const WorkloadMix& mix,
                                                               const SweepPoint& /*point*/,
                                                               int attempt) override {
        attempts.push_back(attempt);
        auto node = sim::SimulatedNode::create(
            testing::llama_node(), mix.closed_loop_requests(attempt == 0 ? 8 : 4000, 0));
        if (!node.is_ok()) {
            return node.status();
        }
        struct Session final : ProfileSession {
            std::unique_ptr<sim::SimulatedNode> n;
            Clock& clock() override { return n->clock(); }
            power::GpuBackend& gpus() override { return n->gpus(); }
            engine::ServingEngine& engine() override { return n->engine(0); }
        };
        auto s = std::make_unique<Session>();
        s->n = std::move(node).value();
        return std::unique_ptr<ProfileSession>(std::move(s));
    }
    [[nodiscard]] int max_attempts() const override { return 2; }
    std::vector<int> attempts;
};

TEST(RunSweepTest, RetriesAPointThatRanOutOfLoad) {
    StarvingFactory factory;
    SweepPlan plan;
    plan.workloads = {default_workload_mix()};
    plan.caps_w = {500.0};
    plan.batch_caps = {16};
    plan.measure = testing::short_measure();
    ProfileTable table;
    ASSERT_OK(run_sweep(factory, plan, table, {}));
    EXPECT_EQ(factory.attempts, (std::vector<int>{0, 1}));
    ASSERT_EQ(table.rows.size(), 1u);
    EXPECT_TRUE(table.rows[0].saturated);
}

TEST(RunSweepTest, WritesEveryPointAndResumesWhereItStopped) {
    const auto dir = testing::temp_dir("resume");
    const auto path = dir / "profile.csv";
    auto factory = SimSessionFactory::create(testing::llama_node(), testing::short_measure(), 32);
    ASSERT_OK(factory);
    SweepPlan plan;
    plan.workloads = {default_workload_mix()};
    plan.caps_w = {200.0, 450.0, 700.0};
    plan.batch_caps = {8, 32};
    plan.measure = testing::short_measure();

    // First run: interrupted after the third point (the checkpoint fails, as a kill would).
    int writes = 0;
    auto interrupting = [&](const ProfileTable& t) {
        PALS_RETURN_IF_ERROR(write_profile(path, t));
        return ++writes == 3 ? Status::internal("interrupted") : Status::ok();
    };
    ProfileTable first;
    EXPECT_STATUS(run_sweep(*factory.value(), plan, first, interrupting), StatusCode::kInternal,
                  "interrupted");
    auto partial = read_profile(path);
    ASSERT_OK(partial);
    ASSERT_EQ(partial->rows.size(), 3u);
    const std::string partial_text = read_file(path).value();

    // Second run from the file: only the three missing points are measured and appended.
    ProfileTable resumed = std::move(partial).value();
    std::vector<SweepProgress> progress;
    int second_writes = 0;
    ASSERT_OK(run_sweep(
        *factory.value(), plan, resumed,
        [&](const ProfileTable& t) {
            ++second_writes;
            return write_profile(path, t);
        },
        [&](const SweepProgress& p) { progress.push_back(p); }));
    EXPECT_EQ(second_writes, 3);
    ASSERT_EQ(progress.size(), 6u);
    EXPECT_TRUE(progress[0].was_skipped);
    EXPECT_TRUE(progress[2].was_skipped);
    EXPECT_FALSE(progress[3].was_skipped);
    EXPECT_EQ(progress.back().index, 6u);
    EXPECT_EQ(progress.back().skipped, 3u);
    EXPECT_EQ(progress.back().measured, 3u);
    const std::string full_text = read_file(path).value();
    EXPECT_EQ(full_text.substr(0, partial_text.size()), partial_text);  // earlier rows untouched
    auto full = read_profile(path);
    ASSERT_OK(full);
    EXPECT_EQ(full->rows.size(), 6u);
    for (double cap : plan.caps_w) {
        for (int batch : plan.batch_caps) {
            EXPECT_NE(full->find("default", cap, batch), static_cast<std::size_t>(-1));
        }
    }
    // Sweep order: batch cap, then cap.
    EXPECT_EQ(full->rows[1].batch_cap, 8);
    EXPECT_DOUBLE_EQ(full->rows[1].power_cap_w, 450.0);
    EXPECT_EQ(full->rows[0].backend, "simulated");
    EXPECT_EQ(full->rows[0].shape.model, "meta-llama__Llama-3.1-8B-Instruct");

    // A third run has nothing to do.
    int third_writes = 0;
    ASSERT_OK(run_sweep(*factory.value(), plan, full.value(), [&](const ProfileTable&) {
        ++third_writes;
        return Status::ok();
    }));
    EXPECT_EQ(third_writes, 0);
    std::filesystem::remove_all(dir);
}

TEST(RunSweepTest, RefusesToResumeAProfileOfAnotherModel) {
    ProfileTable table = testing::synthetic_profile({200, 300}, {1});
    auto factory = SimSessionFactory::create(testing::llama_node(), testing::short_measure(), 8);
    ASSERT_OK(factory);
    SweepPlan plan;
    plan.workloads = {default_workload_mix()};
    plan.caps_w = {200.0};
    plan.batch_caps = {1};
    EXPECT_STATUS(run_sweep(*factory.value(), plan, table, {}), StatusCode::kInvalidArgument,
                  "use another --out");
}

TEST(SweepGridTest, ParsesCaps) {
    auto caps = parse_caps("200:700:50");
    ASSERT_OK(caps);
    ASSERT_EQ(caps->size(), 11u);
    EXPECT_DOUBLE_EQ(caps->front(), 200.0);
    EXPECT_DOUBLE_EQ(caps->back(), 700.0);
    EXPECT_EQ(parse_caps("300,200,250").value(), (std::vector<double>{200, 250, 300}));
    EXPECT_EQ(parse_caps("200:690:100").value(), (std::vector<double>{200, 300, 400, 500, 600}));
    EXPECT_EQ(parse_caps("200,250,...,400").value(),
              (std::vector<double>{200, 250, 300, 350, 400}));
    EXPECT_STATUS(parse_caps("200:700:0"), StatusCode::kInvalidArgument, "step");
    EXPECT_STATUS(parse_caps("700:200:50"), StatusCode::kInvalidArgument, "LO must be <= HI");
    EXPECT_STATUS(parse_caps("200,200"), StatusCode::kInvalidArgument, "duplicate");
    EXPECT_STATUS(parse_caps("200,x"), StatusCode::kInvalidArgument, "'x' is not a number");
    EXPECT_STATUS(parse_caps("-5"), StatusCode::kInvalidArgument, "> 0");
}

TEST(SweepGridTest, ParsesBatches) {
    const std::vector<int> doubling = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
    EXPECT_EQ(parse_batches("1,2,4,...,1024").value(), doubling);
    EXPECT_EQ(parse_batches("1:1024:x2").value(), doubling);
    EXPECT_EQ(parse_batches("8,16,...,64").value(),
              (std::vector<int>{8, 16, 24, 32, 40, 48, 56, 64}));
    EXPECT_EQ(parse_batches("4:16:4").value(), (std::vector<int>{4, 8, 12, 16}));
    EXPECT_STATUS(parse_batches("1,2.5"), StatusCode::kInvalidArgument, "not a batch cap");
    EXPECT_STATUS(parse_batches("0,4"), StatusCode::kInvalidArgument, "not a batch cap");
    EXPECT_STATUS(parse_batches("1,...,8"), StatusCode::kInvalidArgument, "'...' needs two values");
    EXPECT_STATUS(parse_batches("1,2,5,...,40"), StatusCode::kInvalidArgument, "constant");
}

}  // namespace
}  // namespace pals::profile
