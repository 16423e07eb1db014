// pals-mpc (design (b)): the simulator twin picks a cap or a clock lock; the guard raises
// either on risk.
#include "pals/control/twin_policy.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace pals::control {
namespace {

sim::NodeConfig llama8b_h100() {
    sim::NodeConfig node;
    node.model = model::load_model_spec(std::string(PALS_SHARED_DIR) +
                                        "/models/meta-llama__Llama-3.1-8B-Instruct.json")
                     .value();
    node.gpu = sim::find_gpu_spec("H100-SXM").value();
    return node;
}

Observation light_load() {
    Observation o;
    o.cap_range = {200.0, 700.0, 700.0};
    o.sm_clock_max_mhz = 1980.0;
    GroupObservation g;
    g.gpus = 1;
    g.cap_w = 700.0;
    g.batch_cap = 256;
    g.max_batch_cap = 256;
    g.running = 8;
    g.generation_tok_s = 400.0;  // 2 req/s of 200 tokens
    g.prompt_tok_s = 1000.0;     // 500-token prompts
    g.avg_output_tokens = 200.0;
    g.itl_p90_s = 0.01;
    g.ttft_p90_s = 0.05;
    o.groups.push_back(g);
    return o;
}

TEST(TwinPolicyTest, ALightLoadGetsALowCapWithinItsLatencyTargets) {
    auto policy = make_twin_policy(llama8b_h100(), sim::SloTargets{1.0, 0.1});
    const std::vector<GroupDecision> d = policy->decide(light_load());
    ASSERT_EQ(d.size(), 1U);
    // 2 req/s of an 8B model on an H100: the lowest cap serves it within the SLOs, and draws
    // less than any lock at the highest cap.
    EXPECT_DOUBLE_EQ(d[0].cap_w, 200.0) << d[0].reason;
    EXPECT_EQ(d[0].locked_clock_mhz, 0.0) << d[0].reason;
    EXPECT_EQ(d[0].batch_cap, 256);
    EXPECT_NE(d[0].reason.find("twin:"), std::string::npos);
    EXPECT_NE(d[0].reason.find("cap 200 W, clock free"), std::string::npos) << d[0].reason;
}

TEST(TwinPolicyTest, LatencyAtRiskTakesTheCapBackToTheShareAndHoldsItThere) {
    TwinSettings settings;
    settings.share_hold_s = 10.0;
    auto policy = make_twin_policy(llama8b_h100(), sim::SloTargets{1.0, 0.1}, settings);
    Observation o = light_load();
    o.time_s = 1.0;
    ASSERT_LT(policy->decide(o)[0].cap_w, 700.0);
    o.time_s = 2.0;
    o.groups[0].ttft_p90_s = 0.95;  // above 0.9 of the TTFT SLO
    const GroupDecision back = policy->decide(o)[0];
    EXPECT_DOUBLE_EQ(back.cap_w, 700.0) << back.reason;
    EXPECT_NE(back.reason.find("latency at risk: cap back to the share"), std::string::npos)
        << back.reason;
    // Calm again, but within the hold: no cap below the share is a candidate.
    o.groups[0].ttft_p90_s = 0.05;
    for (o.time_s = 3.0; o.time_s < 12.0; o.time_s += 1.0) {
        EXPECT_DOUBLE_EQ(policy->decide(o)[0].cap_w, 700.0) << o.time_s;
    }
    o.time_s = 13.0;
    EXPECT_LT(policy->decide(o)[0].cap_w, 700.0) << "the hold is over";
}

TEST(TwinPolicyTest, ABurstFreesTheClockAtTheShare) {
    auto policy = make_twin_policy(llama8b_h100(), sim::SloTargets{1.0, 0.1});
    Observation o = light_load();
    ASSERT_LT(policy->decide(o)[0].cap_w, 700.0);
    o.groups[0].waiting_previous = 2;
    o.groups[0].waiting = 9;  // a queue of 8 or more that grew
    const GroupDecision d = policy->decide(o)[0];
    EXPECT_DOUBLE_EQ(d.cap_w, 700.0) << d.reason;
    EXPECT_EQ(d.locked_clock_mhz, 0.0) << d.reason;
    EXPECT_NE(d.reason.find("burst: clock free at the share"), std::string::npos) << d.reason;
}

TEST(TwinPolicyTest, LatencyAtRiskNeverLowersTheClock) {
    auto policy = make_twin_policy(llama8b_h100(), sim::SloTargets{1.0, 0.1});
    Observation o = light_load();
    o.groups[0].prompt_tok_s = 20000.0;  // 10k-token prompts: no cap below the share serves them
    const GroupDecision first = policy->decide(o)[0];
    ASSERT_DOUBLE_EQ(first.cap_w, 700.0) << first.reason;
    o.groups[0].itl_p90_s = 0.099;  // at the TPOT target
    const GroupDecision d = policy->decide(o)[0];
    EXPECT_DOUBLE_EQ(d.cap_w, 700.0) << d.reason;
    EXPECT_TRUE(d.locked_clock_mhz == 0.0 ||
                d.locked_clock_mhz >= std::round(first.locked_clock_mhz * 1.15) - 1)
        << d.reason;
    EXPECT_NE(d.reason.find("latency at risk"), std::string::npos) << d.reason;
}

TEST(TwinPolicyTest, TheCapIsAtMostTheBudgetShare) {
    auto policy = make_twin_policy(llama8b_h100(), sim::SloTargets{1.0, 0.1});
    Observation o = light_load();
    o.budget_w = 350.0;
    EXPECT_LE(policy->decide(o)[0].cap_w, 350.0);
    o.groups[0].waiting_previous = 2;
    o.groups[0].waiting = 9;
    EXPECT_DOUBLE_EQ(policy->decide(o)[0].cap_w, 350.0) << "a burst: the share";
}

}  // namespace
}  // namespace pals::control
