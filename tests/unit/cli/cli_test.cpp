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

}  // namespace
