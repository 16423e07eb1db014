#include "pals/run/run_config.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>

#include "pals/profile/model_fit.hpp"
#include "pals/profile/power_model.hpp"
#include "pals/run/run_setup.hpp"
#include "unit/profile/profile_test_helpers.hpp"

namespace pals::run {
namespace {

using control::ControllerConfig;

/// A TOML file in the test's temporary folder.
std::string write_config(const std::string& name, const std::string& text) {
    const std::filesystem::path dir =
        std::filesystem::path(::testing::TempDir()) / "run_config_test";
    std::filesystem::create_directories(dir);
    const std::filesystem::path path = dir / name;
    std::ofstream(path) << text;
    return path.string();
}

/// An environment made of `vars` only.
std::function<std::optional<std::string>(const std::string&)> env_of(
    std::map<std::string, std::string> vars) {
    return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
        auto it = vars.find(name);
        return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
    };
}

constexpr const char* kTwoGroups = R"(# two vLLM servers, TP4 each
policy = "cap-only"
budget_w = 3000
period_s = 0.5
listen = "0.0.0.0:9600"
token_file = "token"

[[group]]
url = "http://127.0.0.1:8000"
gpus = [0, 1, 2, 3]
max_num_seqs = 128
batch_cap_file = "/run/pals/batch_cap_a"

[[group]]
url = "http://localhost:8001/"
gpus = [4, 5, 6, 7]
batch_cap_file = "/run/pals/batch_cap_b"
model_name = "llama"
engine = 0
)";

RunConfigSources file_only(const std::string& path) {
    RunConfigSources s;
    s.file = path;
    return s;
}

/// The message of a failed load, or "" when it loaded.
std::string load_error(const RunConfigSources& sources) {
    Result<RunConfig> c = load_run_config(sources);
    return c.is_ok() ? std::string() : c.status().message();
}

std::string file_error(const std::string& name, const std::string& text) {
    return load_error(file_only(write_config(name, text)));
}

constexpr const char* kGroup = "\n[[group]]\nurl = \"http://127.0.0.1:8000\"\ngpus = [0]\n";

TEST(RunConfigTest, ReadsAFileWithTwoGroups) {
    const std::string path = write_config("two.toml", kTwoGroups);
    Result<RunConfig> c = load_run_config(file_only(path));
    ASSERT_TRUE(c.is_ok()) << c.status().message();
    EXPECT_EQ(c->policy, "cap-only");
    EXPECT_DOUBLE_EQ(c->budget_w, 3000.0);  // an integer is a number
    EXPECT_DOUBLE_EQ(c->period_s, 0.5);
    EXPECT_DOUBLE_EQ(c->latency_window_s, 5.0);  // default
    EXPECT_EQ(c->listen_host, "0.0.0.0");
    EXPECT_EQ(c->listen_port, 9600);
    // Relative paths of the file are relative to its folder.
    EXPECT_EQ(c->token_file, (std::filesystem::path(path).parent_path() / "token").string());
    EXPECT_EQ(c->saved_controls, power::SavedControls::kDefaultPath);
    ASSERT_EQ(c->groups.size(), 2U);
    EXPECT_EQ(c->groups[0].host, "127.0.0.1");
    EXPECT_EQ(c->groups[0].port, 8000);
    EXPECT_EQ(c->groups[0].gpus, (std::vector<int>{0, 1, 2, 3}));
    EXPECT_EQ(c->groups[0].max_num_seqs, 128);
    EXPECT_EQ(c->groups[1].host, "localhost");
    EXPECT_EQ(c->groups[1].port, 8001);
    EXPECT_EQ(c->groups[1].max_num_seqs, 256);
    EXPECT_EQ(c->groups[1].model_name, "llama");
    EXPECT_EQ(c->groups[1].engine, "0");  // an integer DP rank becomes the label value
    EXPECT_EQ(c->origins.at("budget_w"), path + ":3:1: budget_w");

    const auto engines = engine_configs(c.value());
    ASSERT_EQ(engines.size(), 2U);
    EXPECT_EQ(engines[1].name, "group1");
    EXPECT_EQ(engines[1].port, 8001);
    EXPECT_EQ(engines[1].filter.model_name, "llama");
    EXPECT_EQ(engines[1].batch_cap_path, "/run/pals/batch_cap_b");
    EXPECT_DOUBLE_EQ(engines[1].timeout.count(), 2.0);
    const ControllerConfig cc = controller_config(c.value());
    EXPECT_DOUBLE_EQ(cc.period.count(), 0.5);
    EXPECT_DOUBLE_EQ(cc.budget.at(0.0), 3000.0);
}

TEST(RunConfigTest, DefaultsNeedOnlyAGroup) {
    RunConfigSources s;
    s.flags = {{"policy", "batch-only"}};
    s.group_flags = {"url=http://127.0.0.1:8000,gpus=0"};
    Result<RunConfig> c = load_run_config(s);
    ASSERT_TRUE(c.is_ok()) << c.status().message();
    EXPECT_EQ(c->listen_host, "127.0.0.1");
    EXPECT_EQ(c->listen_port, 9520);
    EXPECT_EQ(c->log_level, "info");
    EXPECT_EQ(c->retry_periods, 5);
    EXPECT_EQ(c->groups.at(0).batch_cap_file, "/run/pals/batch_cap");
    EXPECT_TRUE(controller_config(c.value()).budget.empty());  // budget_w 0: none
    EXPECT_EQ(daemon_options(c.value()).retry_periods, 5);
    EXPECT_EQ(c->batch_cap_fault_periods, 3);
    EXPECT_EQ(daemon_options(c.value()).batch_cap_fault_periods, 3);
}

TEST(RunConfigTest, BatchCapFaultPeriodsIsAKeyAFlagAndAVariable) {
    RunConfigSources s;
    s.flags = {{"policy", "batch-only"}, {"batch_cap_fault_periods", "0"}};
    s.group_flags = {"url=http://127.0.0.1:8000,gpus=0"};
    Result<RunConfig> c = load_run_config(s);
    ASSERT_TRUE(c.is_ok()) << c.status().message();
    EXPECT_EQ(daemon_options(c.value()).batch_cap_fault_periods, 0);
    EXPECT_EQ(run_config_env_name("batch_cap_fault_periods"), "PALS_BATCH_CAP_FAULT_PERIODS");
    s.flags = {{"policy", "batch-only"}, {"batch_cap_fault_periods", "-1"}};
    c = load_run_config(s);
    ASSERT_FALSE(c.is_ok());
    EXPECT_NE(c.status().message().find("--batch-cap-fault-periods: must be 0-1000000"),
              std::string::npos)
        << c.status().message();
}

TEST(RunConfigTest, FlagBeatsEnvironmentBeatsFileBeatsDefault) {
    const std::string path =
        write_config("prec.toml", std::string("policy = \"cap-only\"\nbudget_w = 1000\n") + kGroup);
    RunConfigSources s = file_only(path);
    s.env = env_of({{"PALS_BUDGET_W", "1100"}, {"PALS_SLO_TTFT_S", "2.5"}, {"PALS_PERIOD_S", ""}});
    s.flags = {{"budget_w", "1200"}};
    Result<RunConfig> c = load_run_config(s);
    ASSERT_TRUE(c.is_ok()) << c.status().message();
    EXPECT_DOUBLE_EQ(c->budget_w, 1200.0);
    EXPECT_EQ(c->origins.at("budget_w"), "--budget-w");
    EXPECT_DOUBLE_EQ(c->slo_ttft_s, 2.5);
    EXPECT_EQ(c->origins.at("slo_ttft_s"), "PALS_SLO_TTFT_S");
    EXPECT_DOUBLE_EQ(c->period_s, 1.0);  // an empty variable counts as unset
    EXPECT_EQ(c->policy, "cap-only");

    s.flags.clear();
    c = load_run_config(s);
    ASSERT_TRUE(c.is_ok());
    EXPECT_DOUBLE_EQ(c->budget_w, 1100.0);

    s.env = nullptr;
    c = load_run_config(s);
    ASSERT_TRUE(c.is_ok());
    EXPECT_DOUBLE_EQ(c->budget_w, 1000.0);
    EXPECT_DOUBLE_EQ(c->slo_ttft_s, 1.0);
    EXPECT_EQ(c->origins.count("slo_ttft_s"), 0U);
}

TEST(RunConfigTest, GroupFlagsAndEnvironmentReplaceTheFileGroups) {
    const std::string path = write_config("groups.toml", kTwoGroups);
    RunConfigSources s = file_only(path);
    s.env = env_of({{"PALS_GROUPS",
                     "url=http://127.0.0.1:9000,gpus=0-1;url=http://127.0.0.1:9001,gpus=2+3,"
                     "batch_cap_file=/tmp/b;"}});
    Result<RunConfig> c = load_run_config(s);
    ASSERT_TRUE(c.is_ok()) << c.status().message();
    ASSERT_EQ(c->groups.size(), 2U);
    EXPECT_EQ(c->groups[0].port, 9000);
    EXPECT_EQ(c->groups[0].gpus, (std::vector<int>{0, 1}));
    EXPECT_EQ(c->groups[1].gpus, (std::vector<int>{2, 3}));
    EXPECT_EQ(c->groups_origin, "PALS_GROUPS");

    s.group_flags = {
        "url=http://127.0.0.1:8000, gpus=0+1+2, max_num_seqs=64, batch_cap_file=/run/x, engine=1"};
    c = load_run_config(s);
    ASSERT_TRUE(c.is_ok()) << c.status().message();
    ASSERT_EQ(c->groups.size(), 1U);
    EXPECT_EQ(c->groups[0].gpus, (std::vector<int>{0, 1, 2}));
    EXPECT_EQ(c->groups[0].max_num_seqs, 64);
    EXPECT_EQ(c->groups[0].batch_cap_file, "/run/x");
    EXPECT_EQ(c->groups[0].engine, "1");
    EXPECT_EQ(c->groups_origin, "--group");
}

TEST(RunConfigTest, EffectiveConfigRoundTripsAsToml) {
    const std::string path = write_config("round.toml", kTwoGroups);
    RunConfigSources s = file_only(path);
    s.flags = {{"slo_tpot_s", "0.05"}, {"log_level", "debug"}};
    Result<RunConfig> c = load_run_config(s);
    ASSERT_TRUE(c.is_ok()) << c.status().message();
    const std::string toml = run_config_to_toml(c.value());
    EXPECT_NE(toml.find("slo_tpot_s = 0.05  # --slo-tpot-s"), std::string::npos) << toml;
    EXPECT_NE(toml.find("budget_w = 3000.0  # " + path + ":3:1"), std::string::npos) << toml;
    EXPECT_NE(toml.find("latency_window_s = 5.0  # default"), std::string::npos) << toml;
    Result<RunConfig> again = load_run_config(file_only(write_config("round2.toml", toml)));
    ASSERT_TRUE(again.is_ok()) << again.status().message() << "\n" << toml;
    EXPECT_EQ(again->policy, c->policy);
    EXPECT_DOUBLE_EQ(again->slo_tpot_s, 0.05);
    EXPECT_EQ(again->log_level, "debug");
    EXPECT_EQ(again->token_file, c->token_file);
    ASSERT_EQ(again->groups.size(), 2U);
    EXPECT_EQ(again->groups[1].gpus, c->groups[1].gpus);
    EXPECT_EQ(again->groups[1].engine, "0");
    const std::string again_toml = run_config_to_toml(again.value());
    EXPECT_EQ(again_toml.substr(again_toml.rfind("\nurl = ")), toml.substr(toml.rfind("\nurl = ")));

    const std::string json = run_config_to_json(c.value());
    EXPECT_NE(json.find("\"budget_w\": 3000"), std::string::npos) << json;
    EXPECT_NE(json.find("\"gpus\": [4, 5, 6, 7]"), std::string::npos) << json;
    EXPECT_NE(json.find("\"slo_tpot_s\": \"--slo-tpot-s\""), std::string::npos) << json;
}

TEST(RunConfigTest, NamesAndEnvironmentVariables) {
    EXPECT_EQ(run_config_env_name("period_s"), "PALS_PERIOD_S");
    EXPECT_EQ(run_config_flag_name("sm_clock_max_mhz"), "--sm-clock-max-mhz");
    EXPECT_EQ(run_config_env_name("nvml_lib"), "PALS_NVML_LIB");  // the one NvmlBackend reads
    EXPECT_EQ(run_config_env_name("saved_controls"), "PALS_SAVED_CONTROLS");  // as `pals power`
    bool has_budget = false;
    for (const RunConfigKey& k : run_config_keys()) {
        has_budget = has_budget || (k.key == "budget_w" && k.type == RunKeyType::kNumber);
    }
    EXPECT_TRUE(has_budget);
}

// ---- errors: each names the file, line and key (or the flag / variable) ------------------------

TEST(RunConfigErrorTest, UnknownKeyNamesFileLineAndSuggests) {
    const std::string msg = file_error(
        "unknown.toml", std::string("policy = \"cap-only\"\nbudget_watts = 5\n") + kGroup);
    EXPECT_NE(msg.find("unknown.toml:2:1: unknown key 'budget_watts' (did you mean 'budget_w'?)"),
              std::string::npos)
        << msg;
}

TEST(RunConfigErrorTest, WrongTypeNamesFileLineAndKey) {
    const std::string msg =
        file_error("type.toml", std::string("policy = \"cap-only\"\nperiod_s = \"1s\"\n") + kGroup);
    EXPECT_NE(msg.find("type.toml:2:1: period_s: must be a number, not a string"),
              std::string::npos)
        << msg;
    const std::string msg2 = file_error("type2.toml", "policy = 3\n");
    EXPECT_NE(msg2.find("type2.toml:1:1: policy: must be a string, not an integer"),
              std::string::npos)
        << msg2;
    const std::string msg3 =
        file_error("type3.toml", "policy = \"cap-only\"\nretry_periods = 2.5\n");
    EXPECT_NE(msg3.find("type3.toml:2:1: retry_periods: must be an integer"), std::string::npos)
        << msg3;
}

TEST(RunConfigErrorTest, SyntaxErrorNamesFileAndLine) {
    const std::string msg = file_error("syntax.toml", "policy = \"cap-only\"\nbudget_w = = 3\n");
    EXPECT_NE(msg.find("syntax.toml:2:"), std::string::npos) << msg;
}

TEST(RunConfigErrorTest, MissingFileIsNotFound) {
    Result<RunConfig> c = load_run_config(file_only("/nonexistent/pals.toml"));
    ASSERT_FALSE(c.is_ok());
    EXPECT_EQ(c.status().code(), StatusCode::kNotFound);
    EXPECT_NE(c.status().message().find("/nonexistent/pals.toml"), std::string::npos);
}

TEST(RunConfigErrorTest, GroupErrorsNameTheGroupKeyAndLine) {
    std::string msg = file_error(
        "gkey.toml",
        "policy = \"cap-only\"\n[[group]]\nurl = \"http://h:1\"\ngpus = [0]\nmax_num_seq = 3\n");
    EXPECT_NE(
        msg.find(
            "gkey.toml:5:1: group[0]: unknown key 'max_num_seq' (did you mean 'max_num_seqs'?)"),
        std::string::npos)
        << msg;
    msg = file_error("gtype.toml",
                     "policy = \"cap-only\"\n[[group]]\nurl = \"http://h:1\"\ngpus = \"0,1\"\n");
    EXPECT_NE(msg.find("gtype.toml:4:1: group[0].gpus: must be an array of GPU indices"),
              std::string::npos)
        << msg;
    msg = file_error("gtable.toml", "policy = \"cap-only\"\n[group]\nurl = \"http://h:1\"\n");
    EXPECT_NE(msg.find("gtable.toml:2:"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[[group]]"), std::string::npos) << msg;
}

TEST(RunConfigErrorTest, OverlappingGpusAndSharedBatchCapFiles) {
    std::string msg =
        file_error("overlap.toml",
                   "policy = \"cap-only\"\n"
                   "[[group]]\nurl = \"http://h:1\"\ngpus = [0, 1]\nbatch_cap_file = \"/a\"\n"
                   "[[group]]\nurl = \"http://h:2\"\ngpus = [1, 2]\nbatch_cap_file = \"/b\"\n");
    EXPECT_NE(msg.find("overlap.toml:8:1: group[1].gpus: GPU 1 is also in group 0"),
              std::string::npos)
        << msg;
    msg = file_error("sharedcap.toml",
                     "policy = \"cap-only\"\n"
                     "[[group]]\nurl = \"http://h:1\"\ngpus = [0]\n"
                     "[[group]]\nurl = \"http://h:2\"\ngpus = [1]\n");
    EXPECT_NE(msg.find("sharedcap.toml:5:1: group[1]: batch_cap_file (default): "
                       "'/run/pals/batch_cap' is also group 0's"),
              std::string::npos)
        << msg;
    EXPECT_NE(msg.find("each server needs its own file"), std::string::npos) << msg;
    msg = file_error("twice.toml",
                     "policy = \"cap-only\"\n[[group]]\nurl = \"http://h:1\"\ngpus = [3, 3]\n");
    EXPECT_NE(msg.find("twice.toml:4:1: group[0].gpus: GPU 3 is listed twice"), std::string::npos)
        << msg;
}

TEST(RunConfigErrorTest, GpusOutOfRangeAtStart) {
    RunConfigSources s;
    s.flags = {{"policy", "cap-only"}};
    s.group_flags = {"url=http://h:1,gpus=0+1,batch_cap_file=/a",
                     "url=http://h:2,gpus=6+8,batch_cap_file=/b"};
    Result<RunConfig> c = load_run_config(s);
    ASSERT_TRUE(c.is_ok()) << c.status().message();
    EXPECT_TRUE(check_gpu_count(c.value(), 9).is_ok());
    const Status st = check_gpu_count(c.value(), 8);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(st.message(), "--group #2: gpus: GPU 8 does not exist (NVML reports 8 GPUs: 0-7)");
}

// Defect: a budget below the sum of the GPUs' minimum limits was accepted (and run "feasible").
TEST(RunConfigErrorTest, ABudgetBelowTheGpusMinimumIsRefusedNamingIt) {
    RunConfigSources s;
    s.group_flags = {"url=http://h:1,gpus=0+1,batch_cap_file=/a"};
    s.flags = {{"policy", "cap-only"}, {"budget_w", "350"}};
    Result<RunConfig> c = load_run_config(s);
    ASSERT_TRUE(c.is_ok()) << c.status().message();
    const Status st = check_budget_feasible(c.value(), 400.0);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(exit_code_for(st), 2);
    EXPECT_EQ(st.message(),
              "--budget-w: 350 W is below the minimum of 400 W the GPUs of the groups can hold "
              "(the sum of their minimum power limits)");
    EXPECT_TRUE(check_budget_feasible(c.value(), 350.0).is_ok());
    s.flags = {{"policy", "cap-only"}, {"budget_w", "0"}};  // no budget
    EXPECT_TRUE(check_budget_feasible(load_run_config(s).value(), 400.0).is_ok());
}

TEST(RunConfigErrorTest, PalsNeedsAPowerModel) {
    std::string msg = file_error("nomodel.toml", std::string("policy = \"pals\"\n") + kGroup);
    EXPECT_NE(msg.find("nomodel.toml:1:1: policy: policy 'pals' needs power_model"),
              std::string::npos)
        << msg;
    RunConfigSources s;
    s.group_flags = {"url=http://h:1,gpus=0"};
    msg = load_error(s);
    EXPECT_NE(msg.find("policy (default): policy 'pals' needs power_model"), std::string::npos)
        << msg;

    s.flags = {{"power_model", "/nonexistent/model.json"}};
    Result<RunConfig> c = load_run_config(s);
    ASSERT_TRUE(c.is_ok()) << c.status().message();
    auto policy = make_run_policy(c.value());
    ASSERT_FALSE(policy.is_ok());
    EXPECT_NE(policy.status().message().find("--power-model: "), std::string::npos)
        << policy.status().message();
}

TEST(RunConfigErrorTest, AModelOfAnotherTpDegreeIsRefused) {
    auto fit = profile::fit_profile(profile::testing::small_sim_profile());
    ASSERT_TRUE(fit.is_ok()) << fit.status().message();
    const std::string model = ::testing::TempDir() + "/tp_model.json";
    std::ofstream(model) << profile::model_json(fit.value());
    const int tp = profile::PowerModel::load(model).value().gpus_per_group();
    RunConfigSources s;
    s.flags = {{"policy", "pals"}, {"power_model", model}};
    s.group_flags = {tp == 1 ? "url=http://h:1,gpus=0-1" : "url=http://h:1,gpus=0"};
    Result<RunConfig> c = load_run_config(s);
    ASSERT_TRUE(c.is_ok()) << c.status().message();
    auto policy = make_run_policy(c.value());
    ASSERT_FALSE(policy.is_ok());
    EXPECT_NE(policy.status().message().find("--group #1: gpus: the model"), std::string::npos)
        << policy.status().message();
    EXPECT_NE(policy.status().message().find("GPU(s) per group (TP " + std::to_string(tp) + ")"),
              std::string::npos)
        << policy.status().message();
}

TEST(RunConfigErrorTest, BadUrls) {
    const std::map<std::string, std::string> cases = {
        {"https://h:8000", "only http:// URLs are supported"},
        {"http://h", "has no port"},
        {"http://h:8000/metrics", "give the server's base URL"},
        {"h:8000", "is not a URL"},
        {"http://h:99999", "the port must be an integer in 1-65535"},
        {"http://:8000", "has no host"},
    };
    for (const auto& [url, expected] : cases) {
        RunConfigSources s;
        s.flags = {{"policy", "cap-only"}};
        s.group_flags = {"url=" + url + ",gpus=0"};
        const std::string msg = load_error(s);
        EXPECT_NE(msg.find("--group #1: url: "), std::string::npos) << url << ": " << msg;
        EXPECT_NE(msg.find(expected), std::string::npos) << url << ": " << msg;
    }
    const std::string msg = file_error(
        "url.toml", "policy = \"cap-only\"\n[[group]]\nurl = \"ftp://h:1\"\ngpus = [0]\n");
    EXPECT_NE(msg.find("url.toml:3:1: group[0].url: 'ftp://h:1': only http://"), std::string::npos)
        << msg;
}

TEST(RunConfigErrorTest, BadFlagAndEnvironmentValuesNameThem) {
    RunConfigSources s;
    s.group_flags = {"url=http://h:1,gpus=0"};
    s.flags = {{"policy", "cap-only"}, {"period_s", "fast"}};
    EXPECT_EQ(load_error(s), "--period-s: must be a number, got 'fast'");
    s.flags = {{"policy", "cap-only"}};
    s.env = env_of({{"PALS_BUDGET_W", "-5"}});
    EXPECT_EQ(load_error(s), "PALS_BUDGET_W: must be >= 0 (0: no budget)");
    s.env = env_of({{"PALS_RETRY_PERIODS", "x"}});
    EXPECT_EQ(load_error(s), "PALS_RETRY_PERIODS: must be an integer, got 'x'");
    s.env = env_of({{"PALS_GROUPS", "url=http://h:1;gpus=0"}});
    s.group_flags.clear();  // else the flags' groups replace the variable's
    EXPECT_NE(load_error(s).find("PALS_GROUPS #1: gpus (default): give the GPUs of this server"),
              std::string::npos)
        << load_error(s);
    s.env = nullptr;
    s.group_flags = {"url=http://h:1,gpus=0"};
    s.flags = {{"policy", "cap-onyl"}};
    EXPECT_NE(load_error(s).find("--policy: unknown policy 'cap-onyl' (did you mean 'cap-only'?)"),
              std::string::npos)
        << load_error(s);
    s.flags = {{"policy", "cap-only"}, {"listen", "localhost"}};
    EXPECT_NE(load_error(s).find("--listen: 'localhost' has no port"), std::string::npos)
        << load_error(s);
    s.flags = {{"policy", "cap-only"}, {"log_level", "loud"}};
    EXPECT_NE(load_error(s).find("--log-level: unknown level 'loud'"), std::string::npos)
        << load_error(s);
    s.flags = {{"policy", "cap-only"}, {"period_s", "2"}, {"latency_window_s", "1"}};
    EXPECT_EQ(load_error(s), "--latency-window-s: must be >= period_s");
    s.flags = {{"policy", "cap-only"}, {"slo_tpot_s", "0"}};
    EXPECT_EQ(load_error(s), "--slo-tpot-s: must be > 0");
}

TEST(RunConfigErrorTest, GroupSpecErrors) {
    EXPECT_EQ(parse_group_spec("url", "--group #1").status().message(),
              "--group #1: 'url' is not key=value (keys: url, gpus, max_num_seqs, batch_cap_file, "
              "max_num_batched_tokens, step_tokens_file, model_name, engine)");
    EXPECT_NE(parse_group_spec("gpu=0", "--group #1")
                  .status()
                  .message()
                  .find("unknown key 'gpu' (did you mean 'gpus'?)"),
              std::string::npos);
    EXPECT_EQ(parse_group_spec("gpus=0+x", "--group #1").status().message(),
              "--group #1: gpus: 'x' is not a GPU index (give e.g. 0+1 or 0-3)");
    EXPECT_EQ(parse_group_spec("gpus=3-1", "--group #1").status().message(),
              "--group #1: gpus: '3-1' is not a GPU range (give e.g. 0-3)");
    EXPECT_EQ(parse_group_spec("gpus=0,gpus=1", "--group #1").status().message(),
              "--group #1: gpus: given twice");
    EXPECT_EQ(parse_group_spec("max_num_seqs=many", "--group #1").status().message(),
              "--group #1: max_num_seqs: must be an integer, got 'many'");
}

TEST(RunConfigErrorTest, GpuIndicesAreBoundedBeforeARangeIsExpanded) {
    // Each of these used to allocate billions of ints (std::bad_alloc) or overflow at INT_MAX.
    for (const char* spec : {"gpus=0-2000000000", "gpus=2147483647-2147483647",
                             "gpus=000+00-000513000035+000+000000000070+00000", "gpus=1024"}) {
        Result<RunGroupConfig> g = parse_group_spec(spec, "--group #1");
        ASSERT_FALSE(g.is_ok()) << spec;
        EXPECT_EQ(g.status().code(), StatusCode::kOutOfRange) << spec;
        EXPECT_NE(g.status().message().find("--group #1: gpus:"), std::string::npos)
            << g.status().message();
        EXPECT_NE(g.status().message().find("0-1023"), std::string::npos) << g.status().message();
    }
    EXPECT_FALSE(parse_group_spec("gpus=0-1023+0-1023", "--group #1").is_ok());  // > 1024 GPUs
    Result<RunGroupConfig> ok = parse_group_spec("gpus=1020-1023", "--group #1");
    ASSERT_TRUE(ok.is_ok()) << ok.status().message();
    EXPECT_EQ(ok->gpus, (std::vector<int>{1020, 1021, 1022, 1023}));
    const std::string msg =
        file_error("gpus_huge.toml", "policy = \"cap-only\"\n[[group]]\ngpus = [0, 2000000000]\n");
    EXPECT_NE(msg.find("gpus_huge.toml"), std::string::npos) << msg;
    EXPECT_NE(msg.find("0-1023"), std::string::npos) << msg;
    const std::string seqs = load_error([] {
        RunConfigSources s;
        s.group_flags = {"gpus=0,max_num_seqs=2000000000"};
        s.flags = {{"policy", "cap-only"}};
        return s;
    }());
    EXPECT_NE(seqs.find("max_num_seqs: must be 1-1000000"), std::string::npos) << seqs;
    const std::string tokens = load_error([] {
        RunConfigSources s;
        s.group_flags = {"gpus=0,max_num_batched_tokens=-5"};
        s.flags = {{"policy", "cap-only"}};
        return s;
    }());
    EXPECT_NE(tokens.find("max_num_batched_tokens"), std::string::npos) << tokens;
    EXPECT_NE(tokens.find("must be 0-16777216"), std::string::npos) << tokens;
}

TEST(RunConfigTest, TheStepTokenFileDefaultsBesideTheBatchCapFile) {
    RunConfigSources s;
    s.flags = {{"policy", "cap-only"}};
    s.group_flags = {"url=http://127.0.0.1:8000,gpus=0,batch_cap_file=/run/x",
                     "url=http://127.0.0.1:8001,gpus=1,batch_cap_file=/run/y,"
                     "max_num_batched_tokens=4096,step_tokens_file=/run/t"};
    Result<RunConfig> c = load_run_config(s);
    ASSERT_TRUE(c.is_ok()) << c.status().message();
    const auto engines = engine_configs(c.value());
    ASSERT_EQ(engines.size(), 2U);
    EXPECT_EQ(engines[0].max_num_batched_tokens, 0);  // as the plugin acknowledges
    EXPECT_EQ(engine::vllm::step_tokens_path(engines[0]), "/run/x.step_tokens");
    EXPECT_EQ(engines[1].max_num_batched_tokens, 4096);
    EXPECT_EQ(engine::vllm::step_tokens_path(engines[1]), "/run/t");
}

TEST(RunConfigErrorTest, HugeTimesAreRefused) {
    // 1e300 s became a std::chrono duration (overflow) or a timer that never fires.
    for (const char* key : {"period_s", "latency_window_s", "scrape_timeout_s", "slo_ttft_s"}) {
        RunConfigSources s;
        s.group_flags = {"gpus=0"};
        s.flags = {{"policy", "cap-only"}, {key, "1e300"}};
        const std::string msg = load_error(s);
        EXPECT_NE(msg.find("must be <="), std::string::npos) << key << ": " << msg;
    }
}

TEST(RunConfigErrorTest, NoGroup) {
    const std::string msg = file_error("nogroup.toml", "policy = \"cap-only\"\n");
    EXPECT_NE(msg.find("nogroup.toml: no GPU group"), std::string::npos) << msg;
}

}  // namespace
}  // namespace pals::run
