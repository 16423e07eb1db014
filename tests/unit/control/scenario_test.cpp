#include "pals/control/scenario.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include "pals/control/evaluation.hpp"
#include "pals/control/policy_registry.hpp"
#include "status_assertions.hpp"

namespace pals::control {
namespace {

const std::string kShared = PALS_SHARED_DIR;

std::string write(const std::string& name, const std::string& text) {
    const std::string path = ::testing::TempDir() + "/" + name;
    std::ofstream(path) << text;
    return path;
}

const char* const kNode = R"([node]
model = "models/meta-llama__Llama-3.1-8B-Instruct.json"
gpu = "H100-SXM"
tp = 1
max_num_seqs = 128
)";

/// Each (text, expected) case: a scenario whose section `header` holds `text` fails to load with
/// a message containing `expected`.
void expect_section_errors(const std::string& file, const std::string& header,
                           const std::vector<std::pair<std::string, std::string>>& cases) {
    for (const auto& [text, expected] : cases) {
        const auto bad =
            write(file, std::string(kNode) + "[workload]\nrate_rps = 1\nduration_s = 10\n" +
                            header + text);
        auto b = load_scenario(bad, kShared);
        ASSERT_FALSE(b.is_ok()) << text;
        EXPECT_NE(b.status().message().find(expected), std::string::npos) << b.status().message();
    }
}

TEST(ScenarioTest, LoadsTheShippedSuite) {
    for (const char* name : {"mixtral-conv-step-budget", "mixtral-conv-strict-budget",
                             "qwen3moe-conv-low", "llama70b-conv-medium", "mixtral-code-high"}) {
        auto s =
            load_scenario(std::string(PALS_SOURCE_DIR) + "/scenarios/" + name + ".toml", kShared);
        ASSERT_TRUE(s.is_ok()) << name << ": " << s.status().message();
        EXPECT_EQ(s->policies.size(), 7U);  // every policy but the twin (pals-mpc)
    }
    auto step = load_scenario(
        std::string(PALS_SOURCE_DIR) + "/scenarios/mixtral-conv-step-budget.toml", kShared);
    EXPECT_DOUBLE_EQ(step->budget.at(0.0), 1400.0);
    EXPECT_DOUBLE_EQ(step->budget.at(250.0), 840.0);
    EXPECT_DOUBLE_EQ(step->budget.at(500.0), 1190.0);
}

TEST(ScenarioTest, AModelMayBeNamed) {
    const auto path = write("named.toml",
                            "[node]\nmodel = \"meta-llama/Llama-3.1-8B-Instruct\"\n"
                            "[workload]\nrate_rps = 1\nduration_s = 10\n");
    auto s = load_scenario(path, kShared);
    ASSERT_TRUE(s.is_ok()) << s.status().message();
    EXPECT_EQ(s->node.model.name, "meta-llama__Llama-3.1-8B-Instruct");
    const auto bad = write("misnamed.toml",
                           "[node]\nmodel = \"Llama-3.1-8B\"\n"
                           "[workload]\nrate_rps = 1\nduration_s = 10\n");
    auto b = load_scenario(bad, kShared);
    ASSERT_FALSE(b.is_ok());
    EXPECT_NE(b.status().message().find("misnamed.toml:2:1: node.model: unknown model"),
              std::string::npos)
        << b.status().message();
}

TEST(ScenarioTest, UnknownPolicyIsNamed) {
    const auto path = write("bad_policy.toml", std::string(kNode) +
                                                   "[workload]\nrate_rps = 1\nduration_s = 10\n"
                                                   "[run]\npolicies = [\"default\", \"magic\"]\n");
    auto s = load_scenario(path, kShared);
    ASSERT_FALSE(s.is_ok());
    EXPECT_NE(s.status().message().find("unknown policy 'magic'"), std::string::npos)
        << s.status().message();
    EXPECT_NE(s.status().message().find("bad_policy.toml"), std::string::npos);
}

TEST(ScenarioTest, MalformedTomlNamesTheLine) {
    const auto path = write("malformed.toml", std::string(kNode) + "[workload\nrate_rps = 1\n");
    auto s = load_scenario(path, kShared);
    ASSERT_FALSE(s.is_ok());
    EXPECT_NE(s.status().message().find("malformed.toml:6"), std::string::npos)
        << s.status().message();
}

TEST(ScenarioTest, WrongTypeAndUnknownSectionAreNamed) {
    auto typed = load_scenario(
        write("typed.toml", std::string(kNode) + "[workload]\nrate_rps = \"fast\"\n"), kShared);
    ASSERT_FALSE(typed.is_ok());
    EXPECT_NE(typed.status().message().find("workload.rate_rps: must be a number"),
              std::string::npos);
    auto section = load_scenario(
        write("section.toml", std::string(kNode) + "[wrkload]\nrate_rps = 1\n"), kShared);
    ASSERT_FALSE(section.is_ok());
    EXPECT_NE(section.status().message().find("wrkload: unknown section"), std::string::npos);
}

TEST(ScenarioTest, KeysAreTheSharedOptionTablesWithLinesAndHints) {
    // [node] reads the same table as the flags: engine keys the CLI has are scenario keys too.
    auto engine =
        load_scenario(write("engine.toml", std::string(kNode) +
                                               "block_size = 32\nenable_chunked_prefill = false\n"
                                               "[workload]\nrate_rps = 1\nduration_s = 10\n"),
                      kShared);
    ASSERT_OK(engine);
    EXPECT_EQ(engine->node.engine.block_size, 32);
    EXPECT_FALSE(engine->node.engine.enable_chunked_prefill);
    EXPECT_STATUS(
        load_scenario(
            write("typo.toml", std::string(kNode) + "max_num_seq = 3\n[workload]\nrate_rps = 1\n"),
            kShared),
        StatusCode::kInvalidArgument,
        "typo.toml:6:1: node: unknown key 'max_num_seq' (did you mean 'max_num_seqs'?)");
    EXPECT_STATUS(
        load_scenario(
            write("cap.toml", std::string(kNode) + "power_cap_w = 300\n[workload]\nrate_rps = 1\n"),
            kShared),
        StatusCode::kInvalidArgument, "unknown key 'power_cap_w'");  // a flag only
    EXPECT_STATUS(
        load_scenario(write("runkey.toml",
                            std::string(kNode) + "[workload]\nrate_rps = 1\n[run]\nperiod = 2\n"),
                      kShared),
        StatusCode::kInvalidArgument, "runkey.toml:9:1: run: unknown key 'period'");
    EXPECT_STATUS(
        load_scenario(write("located.toml", std::string(kNode) + "[workload]\nrate_rps = 1\n[run]\n"
                                                                 "warmup_s = \"x\"\n"),
                      kShared),
        StatusCode::kInvalidArgument, "located.toml:9:12: run.warmup_s");
}

TEST(ScenarioTest, BudgetBelowTheMinimumCapsIsRejected) {
    const auto path = write("low_budget.toml", std::string(kNode) +
                                                   "[workload]\nrate_rps = 1\nduration_s = 10\n"
                                                   "[budget]\nwatts = 150\n");
    auto s = load_scenario(path, kShared);
    ASSERT_FALSE(s.is_ok());
    EXPECT_NE(s.status().message().find("below the GPUs' minimum caps (200 W for 1 GPUs)"),
              std::string::npos)
        << s.status().message();
}

TEST(ScenarioTest, CountsAndNonFiniteValuesAreBounded) {
    // Each used to load: an int64 truncated to int, a count sized for billions, NaN budget steps.
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"[workload]\nnum_requests = 8589934593\n", "workload.num_requests: is out of range"},
        {"[workload]\nnum_requests = 2000000000\n", "workload.num_requests: must be 0-10000000"},
        {"[workload]\nrate_rps = 1000000\nduration_s = 1e6\n", "workload.rate_rps"},
        {"[workload]\nrate_rps = -1\nduration_s = 10\n", "workload.rate_rps"},
        {"[workload]\nrate_rps = 1\nduration_s = 10\nburstiness = 0\n", "burstiness"},
        {"[workload]\nrate_rps = 1\nduration_s = 10\n[budget]\nsteps = [[0, nan]]\n",
         "budget.steps[0]"},
        {"[workload]\nrate_rps = 1\nduration_s = 10\n[budget]\nsteps = [[inf, 300]]\n",
         "budget.steps[0]"},
        {"[workload]\nrate_rps = 1\nduration_s = 10\n[run]\nperiod_s = 1e-300\n", "run.period_s"},
        {"[workload]\nrate_rps = 1\nduration_s = nan\n",
         "workload.duration_s: must be a finite number"},
    };
    int i = 0;
    for (const auto& [text, needle] : cases) {
        auto s = load_scenario(
            write("bounded" + std::to_string(i++) + ".toml", std::string(kNode) + text), kShared);
        ASSERT_FALSE(s.is_ok()) << text;
        EXPECT_NE(s.status().message().find(needle), std::string::npos) << s.status().message();
    }
    const std::string big_node =
        "[node]\nmodel = \"models/meta-llama__Llama-3.1-8B-Instruct.json\"\n"
        "tp = 2000000000\n[workload]\nrate_rps = 1\nduration_s = 10\n";
    auto s = load_scenario(write("big_node.toml", big_node), kShared);
    ASSERT_FALSE(s.is_ok());
    EXPECT_NE(s.status().message().find("at most 1024 GPUs"), std::string::npos)
        << s.status().message();
}

TEST(ScenarioTest, WorkloadShorterThanTheWarmupIsRejected) {
    const auto path =
        write("short.toml", std::string(kNode) +
                                "[workload]\nrate_rps = 2\nduration_s = 5\n[run]\nwarmup_s = 30\n"
                                "policies = [\"default\"]\n");
    auto s = load_scenario(path, kShared);
    ASSERT_TRUE(s.is_ok()) << s.status().message();
    auto r = evaluate_scenario(s.value(), nullptr);
    ASSERT_FALSE(r.is_ok());
    EXPECT_NE(r.status().message().find("warmup_s"), std::string::npos) << r.status().message();
}

TEST(EvaluationTest, BaselinesTrackAStepAndDefaultDoesNot) {
    const auto path =
        write("step.toml", std::string(kNode) +
                               "[workload]\nrate_rps = 5\nduration_s = 60\ninput_len = \"500\"\n"
                               "output_len = \"200\"\n[budget]\nsteps = [[0, 700], [20, 300]]\n"
                               "[run]\npolicies = [\"default\", \"cap-only\", \"static-oracle\", "
                               "\"window-oracle\"]\n");
    auto s = load_scenario(path, kShared);
    ASSERT_TRUE(s.is_ok()) << s.status().message();
    auto r = evaluate_scenario(s.value(), nullptr);
    ASSERT_TRUE(r.is_ok()) << r.status().message();
    ASSERT_EQ(r->runs.size(), 4U);
    const PolicyMetrics& def = r->runs[0].metrics;
    const PolicyMetrics& cap = r->runs[1].metrics;
    EXPECT_GT(def.budget_excess_j, 0.0);
    EXPECT_GT(def.time_over_budget_s, 10.0);
    EXPECT_LE(cap.settle_time_s, 2.0);  // back under budget within two periods
    EXPECT_LE(cap.budget_excess_j, 0.005 * cap.budget_energy_j);
    EXPECT_DOUBLE_EQ(def.efficiency_vs_default, 1.0);
    for (const PolicyRun& run : r->runs) {
        EXPECT_GT(run.metrics.tokens_per_joule, 0.0) << run.policy;
        EXPECT_GT(run.metrics.requests, 200U);
        EXPECT_FALSE(run.history.empty());
    }
    EXPECT_FALSE(r->runs[2].metrics.chosen.empty());  // the oracle names its point
}

TEST(ScenarioTest, PhysicsPerturbsOnlyTheSimulatedNode) {
    const auto path = write("physics.toml", std::string(kNode) +
                                                "[workload]\nrate_rps = 1\nduration_s = 10\n"
                                                "[physics]\nidle_power_scale = 1.3\n"
                                                "compute_efficiency_scale = 0.8\n");
    auto s = load_scenario(path, kShared);
    ASSERT_TRUE(s.is_ok()) << s.status().message();
    EXPECT_EQ(s->physics.describe(), "idle power x1.3, compute efficiency x0.8");
    auto simulated = simulated_node(s.value());
    ASSERT_TRUE(simulated.is_ok());
    EXPECT_DOUBLE_EQ(simulated->gpu.idle_power_w, 1.3 * s->node.gpu.idle_power_w);
    EXPECT_DOUBLE_EQ(simulated->gpu.calibration.compute_efficiency,
                     0.8 * s->node.gpu.calibration.compute_efficiency);
    EXPECT_DOUBLE_EQ(simulated->gpu.calibration.mem_efficiency,
                     s->node.gpu.calibration.mem_efficiency);

    // Out of range, out of physics, unknown keys: named with the line.
    expect_section_errors(
        "bad_physics.toml", "[physics]\n",
        {{"idle_power_scale = 9\n",
          "bad_physics.toml:10:1: physics.idle_power_scale: must be 0.25-4 (got 9)"},
         {"voltage_floor_scale = 2\n", "physics.voltage_floor_scale: makes the voltage floor"},
         {"idle_power = 1\n", "physics: unknown key 'idle_power'"}});
}

TEST(ScenarioTest, ExpectBoundsAreReadWithOrigins) {
    const auto path =
        write("expect.toml", std::string(kNode) +
                                 "[workload]\nrate_rps = 1\nduration_s = 10\n"
                                 "[expect]\nslo_attainment = { min = 0.99 }\n"
                                 "[expect.ratio.cap-only]\nqos_violations = { max = 0.5 }\n");
    auto s = load_scenario(path, kShared);
    ASSERT_TRUE(s.is_ok()) << s.status().message();
    ASSERT_EQ(s->expect.size(), 2U);
    EXPECT_EQ(s->expect_policy, "pals");
    const auto slo = std::find_if(s->expect.begin(), s->expect.end(),
                                  [](const Expectation& e) { return e.baseline.empty(); });
    ASSERT_NE(slo, s->expect.end());
    EXPECT_EQ(slo->metric, "slo_attainment");
    EXPECT_EQ(slo->min, 0.99);
    EXPECT_FALSE(slo->max);
    EXPECT_NE(slo->origin.find("expect.toml:10:1: expect.slo_attainment"), std::string::npos)
        << slo->origin;
    const auto qos = std::find_if(s->expect.begin(), s->expect.end(),
                                  [](const Expectation& e) { return !e.baseline.empty(); });
    EXPECT_EQ(qos->baseline, "cap-only");
    EXPECT_EQ(qos->origin.substr(qos->origin.find("expect.toml")),
              "expect.toml:12:1: expect.ratio.cap-only.qos_violations");
    EXPECT_EQ(expectation_policies(s.value()), (std::vector<std::string>{"cap-only", "pals"}));

    expect_section_errors(
        "bad_expect.toml", "[expect]\n",
        {{"tokens_per_jule = { min = 1 }\n", "did you mean 'tokens_per_joule'"},
         {"slo_attainment = 0.99\n", "expect.slo_attainment: must be a table"},
         {"slo_attainment = { min = 1, max = 0 }\n", "min is above max"},
         {"slo_attainment = { mn = 1 }\n", "did you mean 'min'"},
         {"[expect.ratio.magic]\nslo_attainment = { min = 1 }\n", "unknown policy 'magic'"},
         {"policy = \"magic\"\n", "expect.policy"}});
}

TEST(EvaluationTest, ExpectationsAreCheckedAgainstTheRun) {
    Scenario sc;
    sc.expect_policy = "pals";
    sc.expect = {{"tokens_per_joule", "", 2.0, std::nullopt, "e1"},
                 {"tokens_per_joule", "default", 1.2, 1.4, "e2"},
                 {"qos_violations", "cap-only", std::nullopt, 0.5, "e3"},
                 {"slo_attainment", "clock-only", 1.0, std::nullopt, "e4"}};
    ScenarioResult result;
    result.scenario = sc;
    auto run = [](const std::string& name, double tok_j, std::uint64_t violations) {
        PolicyRun r;
        r.policy = name;
        r.metrics.tokens_per_joule = tok_j;
        r.metrics.qos_violations = violations;
        r.metrics.slo_attainment = 0.99;
        return r;
    };
    result.runs = {run("default", 2.0, 0), run("cap-only", 2.1, 0), run("pals", 2.6, 0)};
    std::vector<std::string> failures = check_expectations(result);
    ASSERT_EQ(failures.size(), 1U);  // 0/0 violations meets the bound; clock-only was not run
    EXPECT_EQ(failures[0], "e4: clock-only was not run");

    result.runs[2].metrics.tokens_per_joule = 3.0;  // 1.5x default: above 1.4
    result.runs[2].metrics.qos_violations = 3;      // 3 over cap-only's 0: infinite
    result.scenario.expect.pop_back();
    failures = check_expectations(result);
    ASSERT_EQ(failures.size(), 2U);
    EXPECT_EQ(failures[0], "e2: pals/default = 1.5 is above 1.4 (pals 3, default 2)");
    EXPECT_EQ(failures[1], "e3: pals/cap-only = inf is above 0.5 (pals 3, cap-only 0)");
}

}  // namespace
}  // namespace pals::control
