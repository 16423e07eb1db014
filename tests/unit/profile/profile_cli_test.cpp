// End-to-end checks of `pals profile | fit | frontier` through the built executable: exit codes
// and messages on bad input, and that nothing half-written is left behind. Skipped when the
// `pals` executable has not been built (it is a separate target from profile_test).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "pals/common/file_util.hpp"
#include "pals/profile/profile_store.hpp"
#include "profile_test_helpers.hpp"

namespace pals::profile {
namespace {

namespace fs = std::filesystem;

struct CliRun {
    int exit_code = -1;
    std::string out;
    std::string err;
};

class ProfileCliTest : public ::testing::Test {
protected:
    void SetUp() override {
        m_pals = fs::path(PALS_BINARY_DIR) / "pals";
        if (!fs::exists(m_pals)) {
            GTEST_SKIP() << "build the `pals` target to run the CLI tests";
        }
        m_dir = testing::temp_dir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    }
    void TearDown() override {
        if (!m_dir.empty()) {
            fs::remove_all(m_dir);
        }
    }

    CliRun run(const std::string& args) const {
        const fs::path out = m_dir / "stdout.txt";
        const fs::path err = m_dir / "stderr.txt";
        const std::string cmd =
            m_pals.string() + " " + args + " >" + out.string() + " 2>" + err.string();
        const int status = std::system(cmd.c_str());
        CliRun r;
        r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        r.out = read_file(out).value();
        r.err = read_file(err).value();
        return r;
    }
    [[nodiscard]] std::string path(const std::string& name) const {
        return (m_dir / name).string();
    }
    void write(const std::string& name, const std::string& text) const {
        std::ofstream(m_dir / name) << text;
    }

    fs::path m_pals;
    fs::path m_dir;
};

const std::string kModel =
    std::string(PALS_SHARED_DIR) + "/models/meta-llama__Llama-3.1-8B-Instruct.json";

TEST_F(ProfileCliTest, ProfileFitFrontierEndToEndAndResume) {
    const std::string sweep =
        "profile --model " + kModel +
        " --caps 200,450,700 --batches 4,16 --warmup 2 --window 5 --sample-period 0.5 --out " +
        path("p.csv");
    CliRun r = run(sweep);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("6 points measured, 0 already present"), std::string::npos) << r.out;
    EXPECT_NE(r.err.find("profile: [6/6]"), std::string::npos) << r.err;  // plain lines: not a TTY
    r = run(sweep + " --quiet");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("0 points measured, 6 already present"), std::string::npos) << r.out;
    EXPECT_EQ(read_profile(path("p.csv")).value().rows.size(), 6u);

    r = run("fit " + path("p.csv") + " --out " + path("m.json"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("k-fold MAPE %"), std::string::npos);
    EXPECT_TRUE(fs::exists(path("m.json")));

    r = run("frontier " + path("m.json") + " --json --slo-itl 0.05");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["model"]["moe"], false);
    EXPECT_FALSE(j["frontier"].empty());
    for (const auto& p : j["frontier"]) {
        EXPECT_LE(p["itl_p90_s"].get<double>(), 0.05);
    }
    r = run("frontier " + path("m.json") + " --svg " + path("f.svg"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("Pareto frontier"), std::string::npos);
    EXPECT_EQ(read_file(path("f.svg")).value().rfind("<svg", 0), 0u);
}

TEST_F(ProfileCliTest, BadProfilesExitTwoNamingTheFileLineAndColumnAndWriteNothing) {
    const std::string good =
        format_profile_csv(testing::synthetic_profile({200, 300, 400}, {1, 4}));
    struct Case {
        std::string name;
        std::string csv;
        std::string message;
    };
    std::string missing_column = good;
    missing_column.replace(missing_column.find(",power_w,"), 9, ",pwr,");
    std::string nan = good;
    {
        // Line 3's throughput becomes nan.
        auto t = parse_profile_csv(good, "x").value();
        t.rows[1].throughput_tok_s = std::nan("");
        nan = format_profile_csv(t);
    }
    const std::string duplicate =
        good +
        good.substr(good.find('\n') + 1, good.find('\n', good.find('\n') + 1) - good.find('\n'));
    const std::string single_cap = format_profile_csv(testing::synthetic_profile({300}, {1, 4}));
    const std::vector<Case> cases = {
        {"missing.csv", missing_column, "missing.csv:1: header lacks column(s) power_w"},
        {"nan.csv", nan, "nan.csv:3: column 'throughput_tok_s': nan"},
        {"dup.csv", duplicate, "dup.csv:8: duplicate point"},
        {"single.csv", single_cap, "has a single cap (300 W)"},
        {"empty.csv", profile_csv_header() + "\n", "no data rows (an empty grid)"},
        {"blank.csv", "", "empty file"},
    };
    for (const Case& c : cases) {
        write(c.name, c.csv);
        const CliRun r = run("fit " + path(c.name) + " --out " + path("model.json"));
        EXPECT_EQ(r.exit_code, 2) << c.name << ": " << r.err;
        EXPECT_NE(r.err.find(c.message), std::string::npos) << c.name << ": " << r.err;
        EXPECT_NE(r.err.find(path(c.name)), std::string::npos) << c.name << ": " << r.err;
        EXPECT_FALSE(fs::exists(path("model.json"))) << c.name;
    }
    // Only the input files and the captured output are there: no temporary files.
    for (const auto& e : fs::directory_iterator(m_dir)) {
        EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << e.path();
    }
    const CliRun missing = run("fit " + path("nope.csv") + " --out " + path("model.json"));
    EXPECT_EQ(missing.exit_code, 2);
    EXPECT_NE(missing.err.find("nope.csv"), std::string::npos);
}

TEST_F(ProfileCliTest, BadSweepFlagsExitTwo) {
    CliRun r = run("profile --model " + kModel + " --caps 100:700:50 --out " + path("p.csv"));
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("outside H100-SXM's power-limit range"), std::string::npos) << r.err;
    r = run("profile --model " + kModel + " --batches 1,2,x --out " + path("p.csv"));
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("'x' is not a number"), std::string::npos) << r.err;
    r = run("profile --model " + kModel + " --workload 'a=in=5,bad=1' --out " + path("p.csv"));
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("unknown key 'bad'"), std::string::npos) << r.err;
    r = run("profile --model " + kModel + " --max-num-seqs 64 --batches 32,128 --out " +
            path("p.csv"));
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("--max-num-seqs is 64"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(path("p.csv")));
    r = run("frontier " + path("nothing.json"));
    EXPECT_EQ(r.exit_code, 2);
    write("bad.json", "{\"schema_version\": 1}");
    r = run("frontier " + path("bad.json"));
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("missing field 'model'"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace pals::profile
