// pals-mpc (design (b)): the simulator twin picks a clock lock; the guard raises it on risk.
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

TEST(TwinPolicyTest, ALightLoadGetsALowLockWithinItsLatencyTargets) {
    auto policy = make_twin_policy(llama8b_h100(), sim::SloTargets{1.0, 0.1});
    const std::vector<GroupDecision> d = policy->decide(light_load());
    ASSERT_EQ(d.size(), 1U);
    EXPECT_GT(d[0].locked_clock_mhz, 0.0);
    EXPECT_LT(d[0].locked_clock_mhz, 0.8 * 1980.0) << d[0].reason;
    EXPECT_DOUBLE_EQ(d[0].cap_w, 700.0);  // no budget: the highest cap
    EXPECT_EQ(d[0].batch_cap, 256);
    EXPECT_NE(d[0].reason.find("twin:"), std::string::npos);
}

TEST(TwinPolicyTest, LatencyAtRiskNeverLowersTheClock) {
    auto policy = make_twin_policy(llama8b_h100(), sim::SloTargets{1.0, 0.1});
    Observation o = light_load();
    const double first = policy->decide(o)[0].locked_clock_mhz;
    o.groups[0].itl_p90_s = 0.099;  // at the TPOT target
    const GroupDecision d = policy->decide(o)[0];
    EXPECT_TRUE(d.locked_clock_mhz == 0.0 || d.locked_clock_mhz >= std::round(first * 1.15) - 1)
        << d.reason;
    EXPECT_NE(d.reason.find("latency at risk"), std::string::npos) << d.reason;
}

TEST(TwinPolicyTest, TheBudgetShareIsTheCap) {
    auto policy = make_twin_policy(llama8b_h100(), sim::SloTargets{1.0, 0.1});
    Observation o = light_load();
    o.budget_w = 350.0;
    EXPECT_DOUBLE_EQ(policy->decide(o)[0].cap_w, 350.0);
}

}  // namespace
}  // namespace pals::control
