#include "pals/sim/simulator.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>

#include "test_models.hpp"

namespace pals::sim {
namespace {

NodeConfig node_of(model::ModelSpec model, int tp, int max_num_seqs) {
    NodeConfig node;
    node.model = std::move(model);
    node.gpu = testing::h100();
    node.parallel.tp = tp;
    node.engine.max_num_seqs = max_num_seqs;
    return node;
}

SimulationReport run(NodeConfig node, std::vector<workload::Request> requests) {
    auto sim = Simulator::create(std::move(node), std::move(requests));
    EXPECT_TRUE(sim.is_ok()) << sim.status().message();
    sim->run_to_completion();
    EXPECT_TRUE(sim->done());
    return sim->report();
}

TEST(SimulatorTest, CompletesEveryRequestAndConservesTokens) {
    auto requests = testing::closed_loop(50, 300, 40);
    const SimulationReport r = run(node_of(testing::llama8b(), 1, 16), requests);
    EXPECT_EQ(r.requests_completed, 50U);
    EXPECT_DOUBLE_EQ(r.output_tokens, 50.0 * 40.0);
    EXPECT_DOUBLE_EQ(r.prompt_tokens, 50.0 * 300.0);
    EXPECT_NEAR(r.avg_batch, 16.0, 4.0);
    EXPECT_GT(r.energy_j, r.duration_s * testing::h100().idle_power_w);
    EXPECT_NEAR(r.tokens_per_joule * r.j_per_token, 1.0, 1e-9);
}

TEST(SimulatorTest, MoeItlGrowsFasterWithBatchThanDense) {
    auto itl = [](model::ModelSpec m, int tp, int batch) {
        return run(node_of(std::move(m), tp, batch), testing::closed_loop(batch * 4, 64, 200))
            .itl_s.p50;
    };
    const double moe_growth = itl(testing::mixtral(), 2, 16) / itl(testing::mixtral(), 2, 1);
    const double dense_growth = itl(testing::llama8b(), 1, 16) / itl(testing::llama8b(), 1, 1);
    EXPECT_GT(moe_growth, 1.8);
    EXPECT_LT(dense_growth, 1.25);
    EXPECT_GT(moe_growth, dense_growth + 0.5);
}

TEST(SimulatorTest, CapAboveDecodeDrawLeavesDecodeTimeUnchanged) {
    NodeConfig node = node_of(testing::llama8b(), 1, 4);
    const SimulationReport uncapped = run(node, testing::closed_loop(4, 16, 400));
    Simulator probe = Simulator::create(node, testing::closed_loop(4, 16, 400)).value();
    probe.run_until(1.0);  // well inside pure decode
    const double decode_power = probe.observe(0).power_w;
    ASSERT_LT(decode_power, 600.0);
    node.power_cap_w = decode_power + 20.0;
    const SimulationReport capped = run(node, testing::closed_loop(4, 16, 400));
    EXPECT_NEAR(capped.itl_s.p50, uncapped.itl_s.p50, 1e-9);
}

TEST(SimulatorTest, PrefillSlowsUnderALowCap) {
    NodeConfig node = node_of(testing::llama8b(), 1, 4);
    const SimulationReport full = run(node, testing::closed_loop(1, 8000, 1));
    node.power_cap_w = 200.0;
    const SimulationReport low = run(node, testing::closed_loop(1, 8000, 1));
    EXPECT_GT(low.ttft_s.p50, full.ttft_s.p50 * 1.3);
    EXPECT_LT(low.sm_clock_mhz_avg, full.sm_clock_mhz_avg);
    EXPECT_LE(low.avg_power_w, 200.0 + 1e-6);
}

TEST(SimulatorTest, ACapLoweredMidStepActsAtOnce) {
    // One long prefill (one step of ~0.1 s or more at full power). A cap lowered in the middle
    // of it bounds the power from that moment, as a GPU's power controller does, not from the
    // next engine step; the energy before the change is kept, and the prefill ends later.
    NodeConfig node = node_of(testing::llama8b(), 1, 4);
    node.engine.max_num_batched_tokens = 16384;
    const SimulationReport full = run(node, testing::closed_loop(1, 16000, 1));
    Simulator sim = Simulator::create(node, testing::closed_loop(1, 16000, 1)).value();
    sim.run_until(0.02);
    const ReplicaObservation before = sim.observe(0);
    ASSERT_TRUE(before.busy);
    ASSERT_GT(before.power_w, 400.0);
    sim.set_power_cap(0, 200.0);
    EXPECT_LE(sim.observe(0).power_w, 200.0 + 1e-6);
    EXPECT_NEAR(sim.observe(0).energy_j, before.energy_j, 1e-9);
    sim.run_until(0.05);
    const ReplicaObservation after = sim.observe(0);
    EXPECT_LE((after.energy_j - before.energy_j) / 0.03, 200.0 + 1e-6);
    sim.run_to_completion();
    EXPECT_GT(sim.report().ttft_s.p50, full.ttft_s.p50 * 1.2);
}

TEST(SimulatorTest, PreemptsWhenTheKvCacheIsFullAndStillFinishes) {
    NodeConfig node = node_of(testing::llama8b(), 1, 64);
    node.engine.gpu_memory_utilization = 0.25;  // ~2 GB of KV cache
    const SimulationReport r = run(node, testing::closed_loop(64, 1000, 800));
    EXPECT_GT(r.preemptions, 0U);
    EXPECT_EQ(r.requests_completed, 64U);
    EXPECT_DOUBLE_EQ(r.output_tokens, 64.0 * 800.0);
}

TEST(SimulatorTest, LoweringTheBatchCapDrainsWithoutEvicting) {
    Simulator sim =
        Simulator::create(node_of(testing::llama8b(), 1, 32), testing::closed_loop(200, 100, 300))
            .value();
    sim.run_until(0.5);
    ASSERT_EQ(sim.observe(0).running, 32);
    sim.set_batch_cap(0, 8);
    sim.run_until(0.6);
    EXPECT_EQ(sim.observe(0).running, 32);  // nobody evicted
    sim.run_until(20.0);
    EXPECT_LE(sim.observe(0).running, 8);
    sim.run_to_completion();
    EXPECT_EQ(sim.report().requests_completed, 200U);
}

TEST(SimulatorTest, AStepTokenBudgetSplitsPrefillsSoDecodesWaitLess) {
    // Eight requests decoding while long prompts arrive: with the launch budget (8192) each
    // step that carries a prompt takes it whole (6,000 tokens) and every running request's next
    // token waits behind it; with 2048 it is split in three, so the decodes' gaps are shorter
    // (ITL p99) and the long prompts' first tokens come later.
    auto requests = testing::closed_loop(8, 64, 600);
    for (int k = 0; k < 6; ++k) {
        workload::Request r;
        r.id = 100 + static_cast<std::uint64_t>(k);
        r.arrival_s = 1.0 + 0.5 * k;
        r.input_tokens = 6000;
        r.output_tokens = 8;
        requests.push_back(r);
    }
    const NodeConfig node = node_of(testing::llama8b(), 1, 64);
    struct Outcome {
        SimulationReport report;
        double longest_gap_s = 0.0;  ///< between two tokens of a decoding request
    };
    auto run_with = [&](int step_tokens) {
        Simulator sim = Simulator::create(node, requests).value();
        sim.set_step_tokens(0, step_tokens);
        EXPECT_EQ(sim.observe(0).step_tokens, step_tokens > 0 ? step_tokens : 8192);
        Outcome out;
        std::vector<double> last(8, -1.0);
        sim.set_token_listener([&](const TokenEvent& e) {
            if (e.handle < last.size()) {
                if (last[e.handle] >= 0.0) {
                    out.longest_gap_s = std::max(out.longest_gap_s, e.time_s - last[e.handle]);
                }
                last[e.handle] = e.time_s;
            }
        });
        sim.run_to_completion();
        out.report = sim.report();
        return out;
    };
    const Outcome launch = run_with(0);
    const Outcome small = run_with(2048);
    EXPECT_EQ(launch.report.requests_completed, 14U);
    EXPECT_EQ(small.report.requests_completed, launch.report.requests_completed);
    EXPECT_LT(small.longest_gap_s, 0.5 * launch.longest_gap_s);
    EXPECT_GT(small.report.ttft_s.p99, launch.report.ttft_s.p99);
    // Never below the running-request limit: a budget of 1 still gives every running request
    // its token (the batch cap, 64, is the floor).
    const Outcome tiny = run_with(1);
    EXPECT_EQ(tiny.report.requests_completed, launch.report.requests_completed);
    EXPECT_LT(tiny.report.itl_s.p50, 2.0 * launch.report.itl_s.p50);
}

TEST(SimulatorTest, SteppedRunMatchesOneShotRun) {
    NodeConfig node = node_of(testing::mixtral(), 2, 32);
    workload::WorkloadSpec spec;
    spec.kind = workload::WorkloadKind::kSynthetic;
    spec.rate_rps = 4.0;
    spec.num_requests = 300;
    spec.seed = 7;
    auto requests = workload::build_workload(spec).value();
    const SimulationReport one = run(node, requests);
    Simulator stepped = Simulator::create(node, requests).value();
    for (double t = 1.0; !stepped.done(); t += 1.0) {
        stepped.run_until(t);
    }
    const SimulationReport two = stepped.report();
    EXPECT_DOUBLE_EQ(one.output_tokens, two.output_tokens);
    EXPECT_DOUBLE_EQ(one.ttft_s.p99, two.ttft_s.p99);
    EXPECT_NEAR(one.energy_j, two.energy_j,
                1e-6 * one.energy_j + (two.duration_s - one.duration_s) * 1e4);
}

TEST(SimulatorTest, ObservationCountsEnergyAndTokens) {
    Simulator sim =
        Simulator::create(node_of(testing::llama8b(), 1, 8), testing::closed_loop(8, 100, 100))
            .value();
    sim.run_until(0.5);
    const ReplicaObservation a = sim.observe(0);
    sim.run_until(0.7);
    const ReplicaObservation b = sim.observe(0);
    EXPECT_GT(b.output_tokens, a.output_tokens);
    const double avg_power = (b.energy_j - a.energy_j) / 0.2;
    EXPECT_GT(avg_power, testing::h100().idle_power_w);
    EXPECT_LE(avg_power, 700.0);
}

TEST(SimulatorTest, ReplicasShareTheLoad) {
    NodeConfig one = node_of(testing::llama8b(), 1, 16);
    NodeConfig two = one;
    two.replicas = 2;
    const SimulationReport r1 = run(one, testing::closed_loop(200, 100, 200));
    const SimulationReport r2 = run(two, testing::closed_loop(200, 100, 200));
    EXPECT_GT(r2.throughput_tok_s, 1.7 * r1.throughput_tok_s);
}

/// Requests completed per replica of a 4-replica node under `mode`.
std::vector<double> completed_per_replica(Router mode) {
    NodeConfig node = node_of(testing::llama8b(), 1, 64);
    node.replicas = 4;
    node.router.mode = mode;
    node.router.sessions = 64;
    node.router.session_skew = 1.0;
    std::vector<workload::Request> requests;
    for (std::uint64_t i = 0; i < 2000; ++i) {
        requests.push_back({i, 0.01 * static_cast<double>(i), 200, 20});
    }
    auto sim = Simulator::create(node, requests);
    EXPECT_TRUE(sim.is_ok()) << sim.status().message();
    sim->run_to_completion();
    std::vector<double> out;
    for (int r = 0; r < 4; ++r) {
        out.push_back(static_cast<double>(sim->observe(r).completed));
    }
    return out;
}

TEST(SimulatorTest, RoutersSpreadRequestsAsNamed) {
    const std::vector<double> rr = completed_per_replica(Router::kRoundRobin);
    for (const double c : rr) {
        EXPECT_EQ(c, 500.0);  // in turn: exactly a quarter each
    }
    // Sticky sessions with Zipf popularity: uneven, and the same for the same ids.
    const std::vector<double> sticky = completed_per_replica(Router::kSessionHash);
    const double busiest = *std::max_element(sticky.begin(), sticky.end());
    const double idlest = *std::min_element(sticky.begin(), sticky.end());
    EXPECT_GT(busiest, 1.3 * 500.0);
    EXPECT_LT(idlest, 0.8 * 500.0);
    EXPECT_EQ(sticky, completed_per_replica(Router::kSessionHash));
    const std::vector<double> least = completed_per_replica(Router::kLeastLoaded);
    EXPECT_DOUBLE_EQ(least[0] + least[1] + least[2] + least[3], 2000.0);
    EXPECT_LT(*std::max_element(least.begin(), least.end()), 1.2 * 500.0);

    EXPECT_EQ(router_name(parse_router("session-hash").value()), "session-hash");
    EXPECT_FALSE(parse_router("random").is_ok());
}

TEST(SimulatorTest, RejectsAModelThatDoesNotFit) {
    auto sim = Simulator::create(
        node_of(testing::shared_model("meta-llama__Llama-3.1-70B-Instruct.json"), 1, 8), {});
    ASSERT_FALSE(sim.is_ok());
    EXPECT_NE(sim.status().message().find("does not fit"), std::string::npos);
}

TEST(SimulatorTest, TheFitErrorReadsForPeopleAndSuggestsATpDegree) {
    auto sim = Simulator::create(
        node_of(testing::shared_model("meta-llama__Llama-3.1-70B-Instruct.json"), 1, 8), {});
    ASSERT_FALSE(sim.is_ok());
    EXPECT_NE(sim.status().message().find(
                  "141.1 GB of weights per GPU, 72.0 GB usable (try tp 4 or more)"),
              std::string::npos)
        << sim.status().message();
}

TEST(SimulatorTest, RejectsRequestsLongerThanTheModel) {
    NodeConfig node = node_of(testing::llama8b(), 1, 8);
    node.engine.max_model_len = 1000;
    const SimulationReport r = run(node, {{0, 0.0, 900, 200}, {1, 0.0, 100, 10}});
    EXPECT_EQ(r.requests_rejected, 1U);
    EXPECT_EQ(r.requests_completed, 1U);
}

TEST(SimulatorTest, RejectsARequestWhoseLengthOverflowsInt) {
    // input + output > INT_MAX used to wrap negative: admitted, never finished, never rejected.
    NodeConfig node = node_of(testing::llama8b(), 1, 8);
    const SimulationReport r =
        run(node, {{0, 0.0, std::numeric_limits<int>::max(), 128}, {1, 0.0, 100, 10}});
    EXPECT_EQ(r.requests_rejected, 1U);
    EXPECT_EQ(r.requests_completed, 1U);
}

TEST(SimulatorTest, RejectsNanSettings) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    NodeConfig node = node_of(testing::llama8b(), 1, 8);
    node.engine.gpu_memory_utilization = nan;
    EXPECT_FALSE(Simulator::create(node, {}).is_ok());
    node = node_of(testing::llama8b(), 1, 8);
    node.power_cap_w = nan;
    EXPECT_FALSE(Simulator::create(node, {}).is_ok());
    node = node_of(testing::llama8b(), 1, 8);
    node.locked_clock_mhz = nan;
    EXPECT_FALSE(Simulator::create(node, {}).is_ok());
    node = node_of(testing::llama8b(), 1, 8);
    node.parallel.routing_skew = nan;
    EXPECT_FALSE(Simulator::create(node, {}).is_ok());
    node = node_of(testing::llama8b(), 1, 8);
    EXPECT_FALSE(Simulator::create(node, {}, SloTargets{nan, 0.1}).is_ok());
    EXPECT_FALSE(
        Simulator::create(node, {}, SloTargets{1.0, std::numeric_limits<double>::infinity()})
            .is_ok());
    EXPECT_TRUE(Simulator::create(node, {}).is_ok());
}

TEST(SimulatorTest, RejectsBadEngineSettings) {
    NodeConfig node = node_of(testing::llama8b(), 1, 0);
    EXPECT_FALSE(Simulator::create(node, {}).is_ok());
    node.engine.max_num_seqs = 8;
    node.engine.gpu_memory_utilization = 1.5;
    EXPECT_FALSE(Simulator::create(node, {}).is_ok());
    node.engine.gpu_memory_utilization = 0.9;
    EXPECT_FALSE(
        Simulator::create(node, {{0, 2.0, 10, 10}, {1, 1.0, 10, 10}}).is_ok());  // unsorted
}

TEST(LatencyHistogramTest, QuantilesWithinBucketResolution) {
    LatencyHistogram h;
    for (int i = 1; i <= 1000; ++i) {
        h.add(i * 1e-3);
    }
    EXPECT_NEAR(h.quantile(0.5), 0.5, 0.5 * 0.012);
    EXPECT_NEAR(h.quantile(0.99), 0.99, 0.99 * 0.012);
    EXPECT_NEAR(h.mean(), 0.5005, 1e-9);
    const LatencySummary exact = summarize({1.0, 2.0, 3.0, 4.0});
    EXPECT_DOUBLE_EQ(exact.p50, 2.5);
    EXPECT_DOUBLE_EQ(exact.mean, 2.5);
}

}  // namespace
}  // namespace pals::sim
