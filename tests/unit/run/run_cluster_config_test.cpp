// The [cluster] table of pals.toml (docs/cluster.md): keys, flags, variables and errors that
// name the file, line and key like the rest of the configuration.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "pals/run/run_config.hpp"

namespace pals::run {
namespace {

std::string write_file(const std::string& name, const std::string& text) {
    const std::filesystem::path dir =
        std::filesystem::path(::testing::TempDir()) / "run_cluster_config_test";
    std::filesystem::create_directories(dir);
    const std::filesystem::path path = dir / name;
    std::ofstream(path) << text;
    return path.string();
}

constexpr const char* kGroup = "\n[[group]]\nurl = \"http://127.0.0.1:8000\"\ngpus = [0]\n";

Result<RunConfig> load_text(const std::string& name, const std::string& text,
                            std::map<std::string, std::string> env = {},
                            std::vector<std::pair<std::string, std::string>> flags = {}) {
    RunConfigSources src;
    src.file = write_file(name, text);
    src.env = [env = std::move(env)](const std::string& n) -> std::optional<std::string> {
        auto it = env.find(n);
        return it == env.end() ? std::nullopt : std::optional<std::string>(it->second);
    };
    src.flags = std::move(flags);
    return load_run_config(src);
}

TEST(RunClusterConfigTest, ReadsTheClusterTable) {
    auto c = load_text("ok.toml", std::string(R"(policy = "cap-only"
[cluster]
endpoints = ["http://10.0.0.1:2379", "http://10.0.0.2:2379/"]
name = "hall-a"
node = "gpu-017"
lease_ttl_s = 6
floor_w = 2000
)") + kGroup);
    ASSERT_TRUE(c.is_ok()) << c.status().message();
    EXPECT_TRUE(c->cluster.enabled());
    EXPECT_EQ(c->cluster.endpoint_list,
              (std::vector<std::string>{"http://10.0.0.1:2379", "http://10.0.0.2:2379"}));
    EXPECT_EQ(c->cluster.name, "hall-a");
    EXPECT_EQ(c->cluster.node, "gpu-017");
    EXPECT_EQ(c->cluster.lease_ttl_s, 6);
    EXPECT_EQ(c->cluster.floor_w, 2000.0);
    EXPECT_NE(run_config_to_toml(*c).find("[cluster]"), std::string::npos);
    EXPECT_NE(run_config_to_json(*c).find("\"cluster\""), std::string::npos);
}

TEST(RunClusterConfigTest, NoEndpointIsNotAMember) {
    auto c = load_text("none.toml", std::string("policy = \"cap-only\"\n") + kGroup);
    ASSERT_TRUE(c.is_ok()) << c.status().message();
    EXPECT_FALSE(c->cluster.enabled());
}

TEST(RunClusterConfigTest, FlagBeatsEnvironmentBeatsFile) {
    const std::string text = std::string(R"(policy = "cap-only"
[cluster]
endpoints = "http://127.0.0.1:2379"
lease_ttl_s = 6
)") + kGroup;
    auto env = load_text("env.toml", text, {{"PALS_CLUSTER_LEASE_TTL_S", "8"}});
    ASSERT_TRUE(env.is_ok()) << env.status().message();
    EXPECT_EQ(env->cluster.lease_ttl_s, 8);
    auto flag = load_text("flag.toml", text, {{"PALS_CLUSTER_LEASE_TTL_S", "8"}},
                          {{"cluster.lease_ttl_s", "9"}});
    ASSERT_TRUE(flag.is_ok()) << flag.status().message();
    EXPECT_EQ(flag->cluster.lease_ttl_s, 9);
    EXPECT_EQ(flag->cluster.origins.at("lease_ttl_s"), "--cluster-lease-ttl-s");
}

TEST(RunClusterConfigTest, KeysHaveFlagsAndVariables) {
    bool found = false;
    for (const ClusterConfigKey& k : cluster_config_keys()) {
        if (k.key == "cluster.endpoints") {
            found = true;
            EXPECT_EQ(k.flag, "--cluster-endpoints");
            EXPECT_EQ(k.env, "PALS_CLUSTER_ENDPOINTS");
        }
    }
    EXPECT_TRUE(found);
}

struct ErrorCase {
    const char* name;
    const char* cluster;  ///< the [cluster] table's lines
    const char* top;      ///< top-level lines
    const char* expect;   ///< in the message
};

TEST(RunClusterConfigTest, ErrorsNameFileLineAndKey) {
    const std::vector<ErrorCase> cases = {
        {"unknown", "endpoints = \"http://a:2379\"\nlease_ttl = 5\n", "",
         "unknown key 'lease_ttl' (did you mean 'lease_ttl_s'?)"},
        {"ttl", "endpoints = \"http://a:2379\"\nlease_ttl_s = 1\n", "",
         "cluster.lease_ttl_s: must be 2-3600 s"},
        {"url", "endpoints = \"http://a\"\n", "", "cluster.endpoints: 'http://a': give an etcd"},
        {"scheme", "endpoints = \"ftp://a:1\"\n", "", "cluster.endpoints"},
        {"type", "endpoints = 5\n", "", "cluster.endpoints: must be a string or an array"},
        {"name", "endpoints = \"http://a:2379\"\nname = \"a/b\"\n", "",
         "cluster.name: use letters, digits"},
        {"tls", "endpoints = \"http://a:2379\"\nca_file = \"ca.pem\"\n", "",
         "cluster.ca_file: TLS files need https:// endpoints"},
        {"pair", "endpoints = \"https://a:2379\"\ncert_file = \"c.pem\"\n", "",
         "cert_file and key_file go together"},
        {"user", "endpoints = \"http://a:2379\"\nuser = \"pals\"\n", "",
         "user and password_file go together"},
        {"budget", "endpoints = \"http://a:2379\"\n", "budget_w = 3000\n",
         "budget_w: a cluster member's node budget comes from the cluster"},
        {"policy", "endpoints = \"http://a:2379\"\n", "", "policy 'default' ignores budgets"},
        {"period", "endpoints = \"http://a:2379\"\nlease_ttl_s = 2\n", "period_s = 2\n",
         "must be >= 1.5 x period_s"},
    };
    for (const ErrorCase& e : cases) {
        const std::string policy =
            std::string(e.name) == "policy" ? "policy = \"default\"\n" : "policy = \"cap-only\"\n";
        const std::string text = policy + e.top + "\n[cluster]\n" + e.cluster + kGroup;
        auto c = load_text(std::string(e.name) + ".toml", text);
        ASSERT_FALSE(c.is_ok()) << e.name;
        EXPECT_NE(c.status().message().find(e.expect), std::string::npos)
            << e.name << ": " << c.status().message();
        EXPECT_NE(c.status().message().find(std::string(e.name) + ".toml"), std::string::npos)
            << e.name << ": " << c.status().message();
    }
}

TEST(RunClusterConfigTest, ValuesFromTheEnvironmentNameTheVariable) {
    auto c = load_text("envbad.toml", std::string("policy = \"cap-only\"\n") + kGroup,
                       {{"PALS_CLUSTER_ENDPOINTS", "http://x"}});
    ASSERT_FALSE(c.is_ok());
    EXPECT_NE(c.status().message().find("PALS_CLUSTER_ENDPOINTS: 'http://x'"), std::string::npos)
        << c.status().message();
}

}  // namespace
}  // namespace pals::run
