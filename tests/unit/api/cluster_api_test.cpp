// The cluster part of the API (docs/cluster.md, docs/api.md): PUT /v1/cluster/budget, the
// "cluster" object of /v1/state, pals_cluster_* metrics and /healthz in fallback.
#include <gtest/gtest.h>
#include <httplib.h>

#include <cstdio>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "pals/api/http_server.hpp"

namespace pals::api {
namespace {

std::shared_ptr<const StateSnapshot> state() {
    auto s = std::make_shared<StateSnapshot>();
    s->policy = "cap-only";
    s->budget_w = 1000.0;
    s->groups.push_back({0, {0, 1}, 500.0, 128, 800.0, 1000.0, 10, 0, 0.0});
    return s;
}

std::shared_ptr<const ClusterSnapshot> cluster(bool coordinator, bool fallback) {
    auto c = std::make_shared<ClusterSnapshot>();
    c->cluster = "hall-a";
    c->node = "n1";
    c->member = true;
    c->connected = !fallback;
    c->coordinator = coordinator;
    c->fallback = fallback;
    c->leader = coordinator ? "n1" : "n0";
    c->cluster_budget_w = 4000.0;
    c->allocation_w = 1000.0;
    c->node_budget_w = 1000.0;
    c->in_force_w = 1000.0;
    c->floor_w = 400.0;
    c->since_contact_s = fallback ? 2.5 : 0.2;
    c->last_error = fallback ? "lease keepalive: etcd unreachable" : "";
    c->elections_won_total = coordinator ? 1 : 0;
    if (coordinator) {
        c->members = 2;
        c->shares = {{"n0", 3000.0, 3000.0, 400.0, 5000.0, true},
                     {"n1", 1000.0, 1000.0, 400.0, 800.0, true}};
    }
    return c;
}

class ClusterApiTest : public ::testing::Test {
protected:
    void start(bool member) {
        m_store.publish(state());
        ServerOptions options;
        options.token = "secret";
        if (member) {
            options.node_budget_from_cluster = true;
            options.set_cluster_budget = [this](std::optional<double> w) {
                m_written.push_back(w);
                return Status::ok();
            };
        }
        m_server = std::make_unique<HttpServer>(m_store, options);
        ASSERT_TRUE(m_server->start().is_ok());
        m_client = std::make_unique<httplib::Client>("127.0.0.1", m_server->port());
        m_client->set_connection_timeout(5);
        m_client->set_read_timeout(5);
    }
    httplib::Result put(const std::string& path, const std::string& body, bool token = true) {
        httplib::Headers h;
        if (token) {
            h.emplace("Authorization", "Bearer secret");
        }
        return m_client->Put(path, h, body, "application/json");
    }
    StateStore m_store;
    std::unique_ptr<HttpServer> m_server;
    std::unique_ptr<httplib::Client> m_client;
    std::vector<std::optional<double>> m_written;
};

TEST_F(ClusterApiTest, ClusterBudgetIsWrittenWithTheToken) {
    start(true);
    auto r = put("/v1/cluster/budget", R"({"watts": 12000})");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << r->body;
    auto cleared = put("/v1/cluster/budget", R"({"watts": null})");
    ASSERT_TRUE(cleared);
    EXPECT_EQ(cleared->status, 200) << cleared->body;
    ASSERT_EQ(m_written.size(), 2U);
    EXPECT_EQ(m_written[0], std::optional<double>(12000.0));
    EXPECT_EQ(m_written[1], std::nullopt);
    auto no_token = put("/v1/cluster/budget", R"({"watts": 1})", false);
    ASSERT_TRUE(no_token);
    EXPECT_EQ(no_token->status, 401);
    auto steps = put("/v1/cluster/budget", R"({"steps": [[0, 100], [10, 50]]})");
    ASSERT_TRUE(steps);
    EXPECT_EQ(steps->status, 400);
    EXPECT_EQ(m_written.size(), 2U);
}

TEST_F(ClusterApiTest, NodeBudgetIsTheClustersOnAMember) {
    start(true);
    auto r = put("/v1/budget", R"({"watts": 500})");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 409);
    EXPECT_NE(r->body.find("/v1/cluster/budget"), std::string::npos) << r->body;
}

TEST_F(ClusterApiTest, NotAMemberIs404) {
    start(false);
    auto r = put("/v1/cluster/budget", R"({"watts": 12000})");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 404);
}

TEST_F(ClusterApiTest, StateMetricsAndHealthShowTheCluster) {
    start(true);
    m_store.publish_cluster(cluster(true, false));
    auto s = m_client->Get("/v1/state");
    ASSERT_TRUE(s);
    const auto j = nlohmann::json::parse(s->body);
    EXPECT_EQ(j["cluster"]["cluster"], "hall-a");
    EXPECT_EQ(j["cluster"]["coordinator"], true);
    EXPECT_EQ(j["cluster"]["allocation_w"], 1000.0);
    EXPECT_EQ(j["cluster"]["shares"].size(), 2U);
    auto m = m_client->Get("/metrics");
    ASSERT_TRUE(m);
    for (const char* line :
         {"pals_cluster_coordinator 1", "pals_cluster_allocation_watts 1000",
          "pals_cluster_share_watts{node=\"n0\"} 3000", "pals_cluster_budget_watts 4000",
          "pals_cluster_elections_won_total 1"}) {
        EXPECT_NE(m->body.find(line), std::string::npos) << line << "\n" << m->body;
    }
    auto h = m_client->Get("/healthz");
    ASSERT_TRUE(h);
    EXPECT_NE(h->body.find("\"ok\""), std::string::npos) << h->body;
}

TEST_F(ClusterApiTest, FallbackIsDegraded) {
    start(true);
    m_store.publish_cluster(cluster(false, true));
    auto h = m_client->Get("/healthz");
    ASSERT_TRUE(h);
    EXPECT_NE(h->body.find("\"degraded\""), std::string::npos) << h->body;
    EXPECT_NE(h->body.find("floor of 400 W"), std::string::npos) << h->body;
    auto m = m_client->Get("/metrics");
    ASSERT_TRUE(m);
    EXPECT_NE(m->body.find("pals_cluster_fallback 1"), std::string::npos);
    // Only the coordinator exposes the shares.
    EXPECT_EQ(m->body.find("pals_cluster_share_watts"), std::string::npos);
}

TEST(ClusterMetricsTest, PassPromtool) {
    const std::string text =
        render_metrics(*state()) + render_cluster_metrics(*cluster(true, false));
    const std::string path = ::testing::TempDir() + "/cluster_metrics.prom";
    std::ofstream(path) << text;
    if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
        GTEST_SKIP() << "promtool not installed";
    }
    const std::string cmd = "promtool check metrics < " + path + " >/dev/null 2>&1";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << text;
}

}  // namespace
}  // namespace pals::api
