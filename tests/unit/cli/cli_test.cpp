// End-to-end tests of the `pals` executable: outputs, exit codes and bad input.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace {

const std::string kPals = std::string(PALS_BINARY_DIR) + "/pals";
const std::string kShared = PALS_SHARED_DIR;

struct CommandResult {
    int exit_code = -1;
    std::string out;  // stdout and stderr together
};

/// Runs `pals ARGS` with the environment assignments `env` ("PALS_TP=2 ...") prepended.
CommandResult run(const std::string& args, const std::string& env = "") {
    CommandResult r;
    const std::string command =
        "PALS_SHARED_DIR=" + kShared + " " + env + " " + kPals + " " + args + " 2>&1";
    FILE* pipe = popen(command.c_str(), "r");
    if (pipe == nullptr) {
        return r;
    }
    std::array<char, 4096> buffer{};
    while (std::fgets(buffer.data(), buffer.size(), pipe) != nullptr) {
        r.out += buffer.data();
    }
    const int status = pclose(pipe);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

std::string temp_file(const std::string& name, const std::string& content) {
    const std::string path = ::testing::TempDir() + "/" + name;
    std::ofstream(path) << content;
    return path;
}

TEST(CliTest, VersionNamesTheCommitAndBuildType) {
    const CommandResult r = run("--version");
    EXPECT_EQ(r.exit_code, 0) << r.out;
    EXPECT_EQ(r.out.rfind("pals 0.1.0 (git ", 0), 0U) << r.out;
    EXPECT_NE(r.out.find(" build)"), std::string::npos) << r.out;
    const CommandResult bad = run("--log-level loud simulate --num-requests 1");
    EXPECT_EQ(bad.exit_code, 2) << bad.out;
    EXPECT_NE(bad.out.find("pals: error: --log-level"), std::string::npos) << bad.out;
}

TEST(CliTest, EveryNodeAndWorkloadFlagIsAlsoAVariable) {
    // flag > environment > default, with the variable named in errors.
    const CommandResult env =
        run("simulate --tp 2 --rate 2 --seed 3 --json", "PALS_NUM_REQUESTS=40");
    ASSERT_EQ(env.exit_code, 0) << env.out;
    EXPECT_EQ(nlohmann::json::parse(env.out)["requests_completed"], 40);
    const CommandResult flag =
        run("simulate --tp 2 --rate 2 --num-requests 30 --seed 3 --json", "PALS_NUM_REQUESTS=40");
    ASSERT_EQ(flag.exit_code, 0) << flag.out;
    EXPECT_EQ(nlohmann::json::parse(flag.out)["requests_completed"], 30);
    const CommandResult bad = run("simulate --num-requests 5", "PALS_MAX_NUM_SEQS=0");
    EXPECT_EQ(bad.exit_code, 2) << bad.out;
    EXPECT_NE(bad.out.find("PALS_MAX_NUM_SEQS: must be 1-1000000 (got 0)"), std::string::npos)
        << bad.out;
    const CommandResult slo =
        run("simulate --tp 2 --num-requests 5 --json", "PALS_SLO_TPOT=banana");
    EXPECT_EQ(slo.exit_code, 2) << slo.out;
    EXPECT_NE(slo.out.find("PALS_SLO_TPOT: must be a number"), std::string::npos) << slo.out;
}

TEST(CliTest, SimulateJsonHasTheDocumentedFields) {
    const CommandResult r = run("simulate --tp 2 --rate 2 --num-requests 200 --seed 3 --json");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    const auto j = nlohmann::json::parse(r.out);
    for (const char* key :
         {"output_tokens", "duration_s", "throughput_tok_s", "energy_j", "avg_power_w",
          "tokens_per_joule", "j_per_token", "avg_batch", "sm_clock_mhz_avg", "slo_attainment",
          "requests_completed", "sim_wall_s"}) {
        EXPECT_TRUE(j.contains(key)) << key;
    }
    for (const char* key : {"ttft_s", "tpot_s", "itl_s", "e2e_s"}) {
        ASSERT_TRUE(j.contains(key)) << key;
        for (const char* q : {"p50", "p90", "p99", "mean"}) {
            EXPECT_TRUE(j[key].contains(q)) << key << "." << q;
        }
    }
    EXPECT_EQ(j["requests_completed"], 200);
}

TEST(CliTest, SimulateReplaysTheAzureTraceWithScaling) {
    const CommandResult r =
        run("simulate --tp 2 --trace " + kShared +
            "/traces/AzureLLMInferenceTrace_conv.csv --duration 60 --rate-scale 2 --json");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_GT(j["requests_completed"].get<int>(), 400);  // ~5.5 req/s x 2 x 60 s
}

TEST(CliTest, ClosedLoopWithHistogramLengths) {
    const CommandResult r =
        run("simulate --model " + kShared +
            "/models/meta-llama__Llama-3.1-8B-Instruct.json "
            "--num-requests 64 --max-num-seqs 32 --input-len uniform:64:512 --output-len " +
            kShared +
            "/calibration/mlenergy-v3/output_length_distributions.json#meta-llama/"
            "Llama-3.1-8B-Instruct --json");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    EXPECT_EQ(nlohmann::json::parse(r.out)["requests_completed"], 64);
}

TEST(CliTest, MalformedTraceRowNamesFileAndLineAndExits2) {
    const std::string trace = temp_file("bad_trace.csv",
                                        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
                                        "2023-11-16 18:15:46.6805900,374,44\n"
                                        "2023-11-16 18:15:50.9951690,abc,109\n");
    const CommandResult r = run("simulate --trace " + trace);
    EXPECT_EQ(r.exit_code, 2) << r.out;
    EXPECT_NE(r.out.find("bad_trace.csv:3"), std::string::npos) << r.out;
}

TEST(CliTest, ModelConfigMissingFieldIsNamed) {
    const std::string config =
        temp_file("no_hidden.json",
                  R"({"architectures": ["LlamaForCausalLM"], "num_hidden_layers": 2,
                                             "num_attention_heads": 4, "intermediate_size": 64, "vocab_size": 100})");
    const CommandResult r = run("simulate --model " + config + " --num-requests 4");
    EXPECT_EQ(r.exit_code, 2) << r.out;
    EXPECT_NE(r.out.find("hidden_size"), std::string::npos) << r.out;
}

TEST(CliTest, BadFlagsExit2) {
    EXPECT_EQ(run("simulate --num-requests 4 --power-cap 900").exit_code, 2);
    EXPECT_EQ(run("simulate --num-requests 4 --gpu V100").exit_code, 2);
    EXPECT_EQ(run("simulate --num-requests 4 --tp 2 --ep 3").exit_code, 2);
    EXPECT_EQ(run("simulate --num-requests abc").exit_code, 2);
    EXPECT_EQ(run("simulate --no-such-flag").exit_code, 2);
    EXPECT_EQ(run("simulate").exit_code, 2);  // no workload
    EXPECT_EQ(run("simulate --rate 2 --num-requests 4 --input-len uniform:9:3").exit_code, 2);
    EXPECT_EQ(run("simulate --num-requests 4 --model /nonexistent/config.json").exit_code, 2);
}

TEST(CliTest, FailedRunLeavesNoOutputFile) {
    const std::string out = ::testing::TempDir() + "/never_written.json";
    std::filesystem::remove(out);
    const CommandResult r = run("simulate --num-requests 4 --gpu V100 --json --out " + out);
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_FALSE(std::filesystem::exists(out));
    const CommandResult ok = run("simulate --tp 2 --num-requests 4 --json --out " + out);
    ASSERT_EQ(ok.exit_code, 0) << ok.out;
    EXPECT_TRUE(std::filesystem::exists(out));
}

TEST(CliTest, DemoPrintsTheTable) {
    const CommandResult r = run("demo --duration 60 --caps 700,300 --batch-caps 16,64");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    EXPECT_NE(r.out.find("tok/J"), std::string::npos);
    EXPECT_NE(r.out.find("4 simulations"), std::string::npos) << r.out;
}

TEST(CliTest, AModelByNameProfilesAndTheFrontierAnswersADemand) {
    const std::string dir = ::testing::TempDir();
    const CommandResult profile =
        run("profile --model meta-llama/Llama-3.1-8B-Instruct --caps 200,450,700 --batches "
            "16,64,256 --warmup 2 --window 5 --quiet --out " +
            dir + "/named.csv");
    ASSERT_EQ(profile.exit_code, 0) << profile.out;
    const CommandResult fit = run("fit " + dir + "/named.csv --out " + dir + "/named.json");
    ASSERT_EQ(fit.exit_code, 0) << fit.out;
    const CommandResult text = run("frontier " + dir + "/named.json --demand 1000 --max-power 700");
    ASSERT_EQ(text.exit_code, 0) << text.out;
    EXPECT_NE(text.out.find("for 1000 tok/s (group power <= 700 W): the most efficient point "
                            "meeting it is cap "),
              std::string::npos)
        << text.out;
    const CommandResult json = run("frontier " + dir + "/named.json --demand 1e6 --json");
    ASSERT_EQ(json.exit_code, 0) << json.out;
    const nlohmann::json answer = nlohmann::json::parse(json.out)["answer"];
    EXPECT_EQ(answer["feasible"], false);  // a million tokens/s: best effort
    EXPECT_GT(answer["throughput_tok_s"].get<double>(), 0.0);
}

TEST(CliTest, ParseErrorsUseTheProjectStyleWithAHint) {
    // CLI11's own errors, reworded: the command, the closest flag, a hint line; exit 2.
    const CommandResult flag = run("simulate --max-num-seq 8 --num-requests 2");
    EXPECT_EQ(flag.exit_code, 2);
    EXPECT_EQ(flag.out,
              "pals: error: unknown flag '--max-num-seq' for `pals simulate` (did you mean "
              "'--max-num-seqs'?)\npals: hint: `pals simulate --help` lists its flags\n");
    const CommandResult command = run("frontire x.json");
    EXPECT_EQ(command.exit_code, 2);
    EXPECT_EQ(command.out.rfind("pals: error: unknown command 'frontire' (did you mean "
                                "'frontier'?) (known: simulate, demo,",
                                0),
              0U)
        << command.out;
    const CommandResult value = run("evaluate --scenario");
    EXPECT_EQ(value.exit_code, 2);
    EXPECT_EQ(value.out,
              "pals: error: --scenario needs a value\npals: hint: `pals evaluate --help` lists "
              "its flags\n");
    // A root flag's hint names the root; a failure after parsing gets its exit code's hint.
    const CommandResult level = run("--log-level loud models");
    EXPECT_NE(level.out.find("pals: hint: `pals --help` lists its flags"), std::string::npos)
        << level.out;
    const CommandResult range = run("simulate --num-requests 2 --power-cap 100");
    EXPECT_EQ(range.exit_code, 2);
    EXPECT_EQ(range.out,
              "pals: error: --power-cap: 100 W is outside 200-700 W for H100-SXM\npals: hint: "
              "`pals simulate --help` lists its flags with their ranges and defaults\n");
}

TEST(CliTest, EveryRunSaysWhatItRan) {
    const CommandResult text =
        run("simulate --model Llama-3.1-8B-Instruct --tp 2 --power-cap 450 --max-num-seqs 64 "
            "--rate 2 --duration 20 --seed 4");
    ASSERT_EQ(text.exit_code, 0) << text.out;
    EXPECT_EQ(text.out.rfind("pals simulate\n  model        meta-llama/Llama-3.1-8B-Instruct "
                             "(dense, 8.0B params)\n",
                             0),
              0U)
        << text.out;
    for (const char* line :
         {"  GPUs         2x H100-SXM: TP 2, EP 1\n",
          "  power cap    450 W per GPU (range 200-700 W); SM clock not locked\n",
          "  batch cap    64 (max-num-seqs); 8192 tokens per step, chunked prefill\n",
          "  workload     Poisson 2 req/s for 20 s, input fixed:1024, output fixed:128 tokens, "
          "seed 4: ",
          "  SLO          TTFT <= 1 s, TPOT <= 0.1 s\n"}) {
        EXPECT_NE(text.out.find(line), std::string::npos) << line << "\n" << text.out;
    }
    // --json stays one JSON document.
    const CommandResult json =
        run("simulate --model Llama-3.1-8B-Instruct --rate 2 --duration "
            "20 --json");
    ASSERT_EQ(json.exit_code, 0) << json.out;
    EXPECT_TRUE(nlohmann::json::accept(json.out)) << json.out;

    const std::string dir = ::testing::TempDir();
    const CommandResult profile =
        run("profile --model mistralai/Mixtral-8x7B-Instruct-v0.1 --tp 2 --caps 300,700 "
            "--batches 16,64 --warmup 1 --window 2 --quiet --out " +
            dir + "/echo.csv");
    ASSERT_EQ(profile.exit_code, 0) << profile.out;
    for (const char* line :
         {"pals profile (sim backend)\n",
          "  model        mistralai/Mixtral-8x7B-Instruct-v0.1 (MoE: 8 experts, top-2,",
          "  power cap    sweep of 2 caps: 300, 700 W (range 200-700 W)",
          "  batch cap    sweep of 2 batch caps: 16, 64 (launch max-num-seqs",
          "  workload     default: in=uniform:64:512, out=fixed:256; closed loop per point"}) {
        EXPECT_NE(profile.out.find(line), std::string::npos) << line << "\n" << profile.out;
    }

    const CommandResult evaluate =
        run("evaluate --scenario " + std::string(PALS_SOURCE_DIR) +
            "/tests/data/scenarios/tiny-step.toml --policies default,cap-only");
    ASSERT_EQ(evaluate.exit_code, 0) << evaluate.out;
    for (const char* line :
         {"== tiny-step ==\n  model        meta-llama/Llama-3.1-8B-Instruct (dense",
          "  GPUs         1x H100-SXM: TP 1, EP 1\n",
          "  power cap    set by each policy (policy default: 700 W per GPU) (range 200-700 W)",
          "  batch cap    set by each policy, up to 256 (max-num-seqs)",
          "  workload     Poisson 6 req/s for 90 s, input uniform:200:1200",
          "  budget       700 W from 0 s, 400 W from 30 s, 550 W from 60 s\n",
          "  policies     default, cap-only\n"}) {
        EXPECT_NE(evaluate.out.find(line), std::string::npos) << line << "\n" << evaluate.out;
    }
}

}  // namespace
