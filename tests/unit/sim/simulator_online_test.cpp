// Online use of the simulator (pals sim-serve): requests submitted while it runs, token events,
// aborts.
#include <gtest/gtest.h>

#include <map>

#include "pals/sim/simulator.hpp"
#include "test_models.hpp"

namespace pals::sim {
namespace {

Simulator make_sim(int max_num_seqs = 8) {
    NodeConfig node;
    node.model = testing::llama8b();
    node.gpu = testing::h100();
    node.parallel.tp = 1;
    node.engine.max_num_seqs = max_num_seqs;
    return Simulator::create(node, {}).value();
}

TEST(SimulatorOnline, SubmittedRequestsStreamEveryTokenInOrder) {
    Simulator sim = make_sim();
    std::map<std::size_t, std::vector<TokenEvent>> events;
    sim.set_token_listener([&](const TokenEvent& e) { events[e.handle].push_back(e); });
    sim.run_until(1.0);
    const std::size_t a = sim.submit({1, 0.0, 100, 5}).value();
    sim.run_until(1.5);
    const std::size_t b = sim.submit({2, 1.5, 50, 3}).value();
    sim.run_until(10.0);
    ASSERT_EQ(events[a].size(), 5U);
    ASSERT_EQ(events[b].size(), 3U);
    for (std::size_t i = 0; i < events[a].size(); ++i) {
        EXPECT_EQ(events[a][i].generated, static_cast<int>(i) + 1);
        EXPECT_EQ(events[a][i].finished, i + 1 == events[a].size());
        EXPECT_GE(events[a][i].time_s, 1.0);  // arrival clamped to now
    }
    EXPECT_GT(events[b].front().time_s, 1.5);
    EXPECT_EQ(sim.finished_requests().size(), 2U);
    EXPECT_DOUBLE_EQ(sim.finished_requests().front().arrival_s, 1.0);
    EXPECT_TRUE(sim.done());
}

TEST(SimulatorOnline, RejectsBadRequestsAndReportsOversizedOnes) {
    Simulator sim = make_sim();
    EXPECT_FALSE(sim.submit({1, 0.0, 0, 5}).is_ok());
    std::vector<TokenEvent> events;
    sim.set_token_listener([&](const TokenEvent& e) { events.push_back(e); });
    (void)sim.submit({2, 0.0, 10'000'000, 5}).value();
    sim.run_until(1.0);
    ASSERT_EQ(events.size(), 1U);
    EXPECT_EQ(events[0].kind, TokenEvent::Kind::kRejected);
}

TEST(SimulatorOnline, AbortFreesTheQueueAndTheBatch) {
    Simulator sim = make_sim(/*max_num_seqs=*/1);
    std::map<std::size_t, int> tokens;
    sim.set_token_listener([&](const TokenEvent& e) { tokens[e.handle] = e.generated; });
    const std::size_t running = sim.submit({1, 0.0, 100, 1000}).value();
    const std::size_t queued = sim.submit({2, 0.0, 100, 10}).value();
    sim.run_until(0.5);
    EXPECT_EQ(sim.observe(0).running, 1);
    EXPECT_EQ(sim.observe(0).waiting, 1);
    sim.abort(queued);
    EXPECT_EQ(sim.observe(0).waiting, 0);
    const int before = tokens[running];
    sim.abort(running);
    sim.run_until(1.0);
    EXPECT_LE(tokens[running], before + 1);
    EXPECT_EQ(sim.observe(0).running, 0);
    EXPECT_DOUBLE_EQ(sim.observe(0).kv_usage, 0.0);
    EXPECT_EQ(tokens.count(queued), 0U);
    EXPECT_TRUE(sim.finished_requests().empty());
    sim.abort(running);  // twice: no effect
    const std::size_t next = sim.submit({3, 0.0, 10, 2}).value();
    sim.run_until(2.0);
    EXPECT_EQ(tokens[next], 2);
}

}  // namespace
}  // namespace pals::sim
