#include "pals/api/http_server.hpp"

#include <gtest/gtest.h>
#include <httplib.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

namespace pals::api {
namespace {

std::shared_ptr<const StateSnapshot> sample_state() {
    auto s = std::make_shared<StateSnapshot>();
    s->time_s = 12.0;
    s->policy = "pals";
    s->budget_w = 1400.0;
    s->budget_steps = {{0.0, 1400.0}};
    s->power_w = 900.5;
    s->energy_j = 10000.0;
    s->generation_tokens = 25000.0;
    s->groups.push_back(
        {0, {0, 1}, 350.0, 128, 900.5, 1234.0, 40, 2, 1290.0, 128, 256, "mismatch", 256, 0.25});
    s->groups.back().kv_cache_usage = 0.75;
    s->groups.back().step_tokens = 2048;
    s->groups.back().step_tokens_applied = 2048;
    s->groups.back().engine_max_num_batched_tokens = 8192;
    s->step_tokens_changes_total = 3;
    s->groups.push_back({1, {2}, 350.0, 256, 400.0, 100.0, 1, 0, 0.0});  // no cap, no ack
    s->batch_cap_faults_total = 2;
    s->gpu_power_w = {450.0, 450.5};
    s->gpu_energy_j = {5000.0, 5000.0};
    s->last_decision = "feasible: demand 1400 tok/s";
    s->decisions_total = 12;
    return s;
}

class HttpServerTest : public ::testing::Test {
protected:
    void SetUp() override {
        m_store.publish(sample_state());
        ServerOptions options;
        options.token = "secret";
        m_server = std::make_unique<HttpServer>(m_store, options);
        ASSERT_TRUE(m_server->start().is_ok());
        m_client = std::make_unique<httplib::Client>("127.0.0.1", m_server->port());
        m_client->set_connection_timeout(5);
        m_client->set_read_timeout(5);
    }
    StateStore m_store;
    std::unique_ptr<HttpServer> m_server;
    std::unique_ptr<httplib::Client> m_client;
};

TEST_F(HttpServerTest, HealthAndState) {
    auto health = m_client->Get("/healthz");
    ASSERT_TRUE(health);
    EXPECT_EQ(health->status, 200);
    EXPECT_NE(health->body.find("\"ok\""), std::string::npos);
    auto state = m_client->Get("/v1/state");
    ASSERT_TRUE(state);
    EXPECT_EQ(state->status, 200);
    EXPECT_NE(state->body.find("\"power_cap_w\": 350.0"), std::string::npos) << state->body;
    EXPECT_NE(state->body.find("\"locked_clock_mhz\": 1290.0"), std::string::npos) << state->body;
    EXPECT_NE(state->body.find("\"kv_cache_usage\": 0.75"), std::string::npos) << state->body;
    EXPECT_NE(state->body.find("feasible: demand"), std::string::npos);
    auto metrics = m_client->Get("/metrics");
    ASSERT_TRUE(metrics);
    EXPECT_NE(metrics->body.find("pals_group_locked_clock_mhz{group=\"0\"} 1290"),
              std::string::npos)
        << metrics->body;
}

TEST_F(HttpServerTest, SloMissSharesAreShownAndAbsentWhenUnknown) {
    auto state = m_client->Get("/v1/state");
    ASSERT_TRUE(state);
    EXPECT_NE(state->body.find("\"ttft_miss_share\": 0.25"), std::string::npos) << state->body;
    EXPECT_NE(state->body.find("\"tpot_miss_share\": null"), std::string::npos) << state->body;
    auto metrics = m_client->Get("/metrics");
    ASSERT_TRUE(metrics);
    EXPECT_NE(metrics->body.find("pals_group_ttft_slo_miss_ratio{group=\"0\"} 0.25"),
              std::string::npos)
        << metrics->body;
    // NaN (no request in the window, or the group not controlled) leaves the sample out.
    EXPECT_EQ(metrics->body.find("pals_group_ttft_slo_miss_ratio{group=\"1\"}"), std::string::npos);
    EXPECT_EQ(metrics->body.find("pals_group_tpot_slo_miss_ratio{group="), std::string::npos);
}

TEST_F(HttpServerTest, TheStepTokenBudgetIsShownAndAbsentWithoutOne) {
    auto state = m_client->Get("/v1/state");
    ASSERT_TRUE(state);
    const auto j = nlohmann::json::parse(state->body);
    EXPECT_EQ(j["groups"][0]["step_tokens"], 2048);
    EXPECT_EQ(j["groups"][0]["step_tokens_applied"], 2048);
    EXPECT_EQ(j["groups"][0]["engine_max_num_batched_tokens"], 8192);
    EXPECT_TRUE(j["groups"][1]["step_tokens"].is_null());
    EXPECT_TRUE(j["groups"][1]["step_tokens_applied"].is_null());
    EXPECT_TRUE(j["groups"][1]["engine_max_num_batched_tokens"].is_null());
    EXPECT_EQ(j["step_tokens_changes_total"], 3);
    auto metrics = m_client->Get("/metrics");
    ASSERT_TRUE(metrics);
    const std::string& m = metrics->body;
    for (const char* line : {"pals_group_step_tokens{group=\"0\"} 2048\n",
                             "pals_group_step_tokens_applied{group=\"0\"} 2048\n",
                             "pals_step_tokens_changes_total 3\n"}) {
        EXPECT_NE(m.find(line), std::string::npos) << line << "\n" << m;
    }
    EXPECT_EQ(m.find("pals_group_step_tokens{group=\"1\"}"), std::string::npos);
}

TEST_F(HttpServerTest, RequestedAndAppliedBatchCapsAreShown) {
    auto state = m_client->Get("/v1/state");
    ASSERT_TRUE(state);
    const auto j = nlohmann::json::parse(state->body);
    const auto& g0 = j["groups"][0];
    EXPECT_EQ(g0["batch_cap"], 128);
    EXPECT_EQ(g0["batch_cap_requested"], 128);
    EXPECT_EQ(g0["batch_cap_applied"], 256);
    EXPECT_EQ(g0["batch_cap_ack"], "mismatch");
    EXPECT_EQ(g0["engine_max_num_seqs"], 256);
    const auto& g1 = j["groups"][1];
    EXPECT_TRUE(g1["batch_cap_requested"].is_null());
    EXPECT_TRUE(g1["batch_cap_applied"].is_null());
    EXPECT_EQ(g1["batch_cap_ack"], "unchecked");
    EXPECT_TRUE(g1["engine_max_num_seqs"].is_null());
    EXPECT_EQ(j["batch_cap_faults_total"], 2);
    auto metrics = m_client->Get("/metrics");
    ASSERT_TRUE(metrics);
    const std::string& m = metrics->body;
    for (const char* line :
         {"pals_group_batch_cap_requested{group=\"0\"} 128\n",
          "pals_group_batch_cap_applied{group=\"0\"} 256\n",
          "pals_group_batch_cap_mismatch{group=\"0\"} 1\n",
          "pals_group_engine_max_num_seqs{group=\"0\"} 256\n",
          "pals_group_batch_cap_requested{group=\"1\"} 0\n",
          "pals_group_batch_cap_mismatch{group=\"1\"} 0\n", "pals_batch_cap_faults_total 2\n",
          "# TYPE pals_batch_cap_faults_total counter\n"}) {
        EXPECT_NE(m.find(line), std::string::npos) << line << "\n" << m;
    }
    EXPECT_EQ(m.find("pals_group_batch_cap_applied{group=\"1\"}"), std::string::npos);
}

TEST_F(HttpServerTest, BudgetNeedsTheTokenAndAWellFormedBody) {
    auto none = m_client->Put("/v1/budget", R"({"watts": 800})", "application/json");
    ASSERT_TRUE(none);
    EXPECT_EQ(none->status, 401);
    httplib::Headers auth = {{"Authorization", "Bearer secret"}};
    auto bad = m_client->Put("/v1/budget", auth, R"({"watts": "lots"})", "application/json");
    ASSERT_TRUE(bad);
    EXPECT_EQ(bad->status, 400);
    EXPECT_NE(bad->body.find("\"invalid_argument\""), std::string::npos);
    auto junk = m_client->Put("/v1/budget", auth, "{not json", "application/json");
    ASSERT_TRUE(junk);
    EXPECT_EQ(junk->status, 400);
    EXPECT_FALSE(m_store.take_budget().has_value());
    auto ok = m_client->Put("/v1/budget", auth, R"({"steps": [[0, 1000], [30, 700]]})",
                            "application/json");
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->status, 200) << ok->body;
    auto queued = m_store.take_budget();
    ASSERT_TRUE(queued.has_value());
    ASSERT_EQ(queued->steps.size(), 2U);
    EXPECT_DOUBLE_EQ(queued->steps[1].second, 700.0);
}

TEST_F(HttpServerTest, OversizedBodyIs413AndUnknownRouteIs404) {
    httplib::Headers auth = {{"Authorization", "Bearer secret"}};
    auto big = m_client->Put("/v1/budget", auth, std::string(200 * 1024, ' '), "application/json");
    ASSERT_TRUE(big);
    EXPECT_EQ(big->status, 413);
    EXPECT_NE(big->body.find("\"payload_too_large\""), std::string::npos) << big->body;
    auto missing = m_client->Get("/nope");
    ASSERT_TRUE(missing);
    EXPECT_EQ(missing->status, 404);
    EXPECT_NE(missing->body.find("\"error\""), std::string::npos);
}

TEST_F(HttpServerTest, MetricsPassPromtool) {
    auto metrics = m_client->Get("/metrics");
    ASSERT_TRUE(metrics);
    EXPECT_EQ(metrics->status, 200);
    EXPECT_NE(metrics->body.find("pals_gpu_power_watts{gpu=\"1\"} 450.5"), std::string::npos)
        << metrics->body;
    EXPECT_NE(metrics->body.find("pals_group_power_cap_watts{group=\"0\"} 350"), std::string::npos);
    if (std::system("command -v promtool > /dev/null 2>&1") != 0) {
        GTEST_SKIP() << "promtool not installed (Debian package prometheus)";
    }
    const std::string path = ::testing::TempDir() + "/pals_metrics.txt";
    std::ofstream(path) << metrics->body;
    EXPECT_EQ(std::system(("promtool check metrics < " + path).c_str()), 0);
}

TEST(BudgetRequestTest, ParsesAndRejects) {
    auto w = parse_budget_request(R"({"watts": 900})");
    ASSERT_TRUE(w.is_ok());
    EXPECT_DOUBLE_EQ(w->steps.front().second, 900.0);
    EXPECT_FALSE(parse_budget_request(R"({"watts": -1})").is_ok());
    EXPECT_FALSE(parse_budget_request(R"({"watts": 900, "steps": [[0, 1]]})").is_ok());
    EXPECT_FALSE(parse_budget_request(R"({"steps": [[10, 900], [5, 800]]})").is_ok());
    EXPECT_FALSE(parse_budget_request(R"([1, 2])").is_ok());
    EXPECT_FALSE(parse_budget_request(R"({})").is_ok());
    auto cleared = parse_budget_request(R"({"watts": null})");
    ASSERT_TRUE(cleared.is_ok());
    EXPECT_TRUE(cleared->steps.empty());  // no budget
    EXPECT_NE(parse_budget_request(R"({"watts": 0})").status().message().find("or null to clear"),
              std::string::npos);
}

TEST(MetricsTest, InfiniteBudgetIsWrittenAsPromDoes) {
    StateSnapshot s;
    s.budget_w = std::numeric_limits<double>::infinity();
    EXPECT_NE(render_metrics(s).find("pals_power_budget_watts +Inf"), std::string::npos);
}

// Defect: a budget below the sum of the GPUs' minimum limits was accepted and reported healthy.
TEST_F(HttpServerTest, ABudgetBelowTheGpusMinimumIsRefusedWith409NamingIt) {
    m_store.set_budget_min_w(400.0);  // 2 GPUs x 200 W
    httplib::Headers auth = {{"Authorization", "Bearer secret"}};
    auto low = m_client->Put("/v1/budget", auth, R"({"watts": 300})", "application/json");
    ASSERT_TRUE(low);
    EXPECT_EQ(low->status, 409);
    EXPECT_NE(low->body.find("\"infeasible\""), std::string::npos) << low->body;
    EXPECT_NE(low->body.find("300 W is below the minimum of 400 W"), std::string::npos)
        << low->body;
    auto step = m_client->Put("/v1/budget", auth, R"({"steps": [[0, 1000], [30, 399]]})",
                              "application/json");
    ASSERT_TRUE(step);
    EXPECT_EQ(step->status, 409);
    EXPECT_NE(step->body.find("\\\"steps\\\"[1]"), std::string::npos) << step->body;
    EXPECT_FALSE(m_store.take_budget().has_value());
    auto ok = m_client->Put("/v1/budget", auth, R"({"watts": 400})", "application/json");
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->status, 200) << ok->body;
}

TEST(HealthTest, AnInfeasibleBudgetIsDegradedInHealthStateAndMetrics) {
    auto s = std::make_shared<StateSnapshot>(*sample_state());
    s->budget_w = 300.0;
    s->budget_min_w = 400.0;
    s->budget_feasible = false;
    const std::string health = health_json(s.get());
    EXPECT_NE(health.find("\"status\":\"degraded\""), std::string::npos) << health;
    EXPECT_NE(health.find("infeasible budget: 300 W is below the minimum of 400 W"),
              std::string::npos)
        << health;
    const std::string state = state_json(*s);
    EXPECT_NE(state.find("\"budget_feasible\": false"), std::string::npos) << state;
    EXPECT_NE(state.find("\"budget_min_w\": 400.0"), std::string::npos) << state;
    const std::string metrics = render_metrics(*s);
    EXPECT_NE(metrics.find("pals_budget_feasible 0\n"), std::string::npos) << metrics;
    EXPECT_NE(metrics.find("pals_power_budget_min_watts 400\n"), std::string::npos) << metrics;
    s->budget_feasible = true;
    EXPECT_EQ(health_json(s.get()), "{\"status\":\"ok\"}");
    EXPECT_NE(render_metrics(*s).find("pals_budget_feasible 1\n"), std::string::npos);
    EXPECT_EQ(health_json(nullptr), "{\"status\":\"starting\"}");
}

TEST(StateJsonTest, BudgetStepsAreAlsoGivenFromNowAndAsDates) {
    StateSnapshot s;
    s.time_s = 100.0;
    s.wall_time_unix_s = 1796342400.0;  // 2026-12-04T00:00:00Z
    s.budget_w = 1400.0;
    s.budget_steps = {{0.0, 1400.0}, {160.5, 800.0}};
    const nlohmann::json j = nlohmann::json::parse(state_json(s));
    ASSERT_EQ(j["budget_schedule"].size(), 2U);
    EXPECT_DOUBLE_EQ(j["budget_schedule"][0]["in_s"].get<double>(), -100.0);
    EXPECT_EQ(j["budget_schedule"][0]["at"], "2026-12-03T23:58:20.000Z");
    EXPECT_DOUBLE_EQ(j["budget_schedule"][1]["in_s"].get<double>(), 60.5);
    EXPECT_EQ(j["budget_schedule"][1]["at"], "2026-12-04T00:01:00.500Z");
    EXPECT_EQ(j["budget_schedule"][1]["watts"], 800.0);
    EXPECT_EQ(j["budget_steps"][1][0], 160.5);  // kept: seconds since start
    EXPECT_EQ(utc_timestamp(0.0), "1970-01-01T00:00:00.000Z");
}

}  // namespace
}  // namespace pals::api
