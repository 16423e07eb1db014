// The Grafana dashboard shipped in deploy/grafana/ may only query metrics that the daemon really
// exports: every metric name in every PromQL expression (panel targets and template variables)
// must be one render_metrics() emits for a populated snapshot.
#include <gtest/gtest.h>

#include <cctype>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "pals/api/http_server.hpp"

namespace pals::api {
namespace {

/// A snapshot with every optional part filled in, so that every metric family has samples.
StateSnapshot populated_state() {
    StateSnapshot s;
    s.time_s = 12.0;
    s.policy = "pals";
    s.budget_w = 1400.0;
    s.budget_steps = {{0.0, 1400.0}};
    s.power_w = 900.0;
    s.energy_j = 10000.0;
    s.generation_tokens = 25000.0;
    s.groups.push_back(
        {0, {0, 1}, 350.0, 128, 900.0, 1234.0, 40, 2, 0.0, 128, 128, "ok", 256, 0.02, 0.0});
    s.gpu_power_w = {450.0, 450.0};
    s.gpu_energy_j = {5000.0, 5000.0};
    s.decisions_total = 12;
    s.cap_changes_total = 3;
    s.batch_changes_total = 2;
    s.errors_total = 1;
    s.budget_updates_total = 1;
    return s;
}

/// A coordinator's cluster state (docs/cluster.md), so that every pals_cluster_* family has
/// samples.
ClusterSnapshot populated_cluster() {
    ClusterSnapshot c;
    c.member = true;
    c.coordinator = true;
    c.cluster_budget_w = 4000.0;
    c.allocation_w = 1000.0;
    c.shares = {{"n0", 3000.0, 3000.0, 400.0, 5000.0, true}};
    return c;
}

/// The metric names of a text exposition (sample lines, and TYPE lines).
std::set<std::string> exported_names(const std::string& text) {
    std::set<std::string> names;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("# TYPE ", 0) == 0) {
            names.insert(line.substr(7, line.find(' ', 7) - 7));
        } else if (!line.empty() && line[0] != '#') {
            names.insert(line.substr(0, line.find_first_of("{ ")));
        }
    }
    return names;
}

bool is_ident_start(char c) {
    return std::isalpha(static_cast<unsigned char>(c)) != 0 || c == '_' || c == ':';
}
bool is_ident(char c) {
    return is_ident_start(c) || std::isdigit(static_cast<unsigned char>(c)) != 0;
}

/// The metric names a PromQL expression selects: identifiers outside label matchers, strings and
/// range brackets that are neither functions/aggregations (followed by '(') nor keywords.
std::vector<std::string> metric_names_in(const std::string& expr) {
    // Followed by a parenthesised label list, which is skipped.
    static const std::set<std::string> kGrouping = {"by",       "without",    "on",
                                                    "ignoring", "group_left", "group_right"};
    // Aggregation operators ("sum by (x) (...)" puts the clause before the parenthesis) and
    // keywords.
    static const std::set<std::string> kKeywords = {
        "sum",  "min",     "max",      "avg",          "count", "stddev", "stdvar",
        "topk", "bottomk", "quantile", "count_values", "group", "offset", "bool",
        "and",  "or",      "unless",   "inf",          "nan"};
    std::vector<std::string> names;
    std::size_t i = 0;
    while (i < expr.size()) {
        const char c = expr[i];
        if (c == '"' || c == '\'') {  // a string: skip to its end
            const std::size_t end = expr.find(c, i + 1);
            i = end == std::string::npos ? expr.size() : end + 1;
        } else if (c == '{' || c == '[') {  // label matchers, range or subquery
            const std::size_t end = expr.find(c == '{' ? '}' : ']', i + 1);
            i = end == std::string::npos ? expr.size() : end + 1;
        } else if (c == '$') {  // a Grafana variable such as $__rate_interval
            ++i;
            while (i < expr.size() && is_ident(expr[i])) {
                ++i;
            }
        } else if (std::isdigit(static_cast<unsigned char>(c)) != 0) {  // a number (or 5m)
            while (i < expr.size() && (is_ident(expr[i]) || expr[i] == '.')) {
                ++i;
            }
        } else if (is_ident_start(c)) {
            const std::size_t start = i;
            while (i < expr.size() && is_ident(expr[i])) {
                ++i;
            }
            const std::string word = expr.substr(start, i - start);
            std::size_t next = i;
            while (next < expr.size() && expr[next] == ' ') {
                ++next;
            }
            const bool is_call = next < expr.size() && expr[next] == '(';
            if (kGrouping.count(word) != 0U) {
                if (is_call) {
                    const std::size_t end = expr.find(')', next);
                    i = end == std::string::npos ? expr.size() : end + 1;
                }
            } else if (!is_call && kKeywords.count(word) == 0U) {
                names.push_back(word);
            }
        } else {
            ++i;
        }
    }
    return names;
}

/// Every PromQL expression of the dashboard: panel targets and query variables.
void collect_exprs(const nlohmann::json& node, std::vector<std::string>& out) {
    if (node.is_object()) {
        if (node.contains("expr") && node["expr"].is_string()) {
            out.push_back(node["expr"].get<std::string>());
        }
        if (node.contains("definition") && node["definition"].is_string()) {
            out.push_back(node["definition"].get<std::string>());
        }
        for (const auto& [key, value] : node.items()) {
            collect_exprs(value, out);
        }
    } else if (node.is_array()) {
        for (const auto& value : node) {
            collect_exprs(value, out);
        }
    }
}

nlohmann::json load_dashboard() {
    std::ifstream in(std::string(PALS_SOURCE_DIR) + "/deploy/grafana/pals-dashboard.json");
    EXPECT_TRUE(in.good()) << "deploy/grafana/pals-dashboard.json is missing";
    return nlohmann::json::parse(in);
}

TEST(GrafanaDashboardTest, ParsesPromqlMetricNames) {
    EXPECT_EQ(
        metric_names_in(
            "rate(pals_a_total{instance=~\"$instance\"}[5m]) / on (instance) sum by (instance) "
            "(rate(pals_b[$__rate_interval]))"),
        (std::vector<std::string>{"pals_a_total", "pals_b"}));
    EXPECT_EQ(metric_names_in("60 * rate(x_total[1m]) > bool 0"),
              (std::vector<std::string>{"x_total"}));
    EXPECT_EQ(metric_names_in("label_values(pals_node_power_watts, instance)"),
              (std::vector<std::string>{"pals_node_power_watts", "instance"}));
}

TEST(GrafanaDashboardTest, QueriesOnlyMetricsTheDaemonExports) {
    const std::set<std::string> exported = exported_names(
        render_metrics(populated_state()) + render_cluster_metrics(populated_cluster()));
    ASSERT_GE(exported.size(), 15U);
    const nlohmann::json dashboard = load_dashboard();
    std::vector<std::string> exprs;
    collect_exprs(dashboard, exprs);
    ASSERT_GE(exprs.size(), 10U);
    std::set<std::string> used;
    for (const std::string& expr : exprs) {
        std::vector<std::string> names = metric_names_in(expr);
        // label_values(METRIC, LABEL): the second argument is a label, not a metric.
        if (expr.rfind("label_values(", 0) == 0 && names.size() == 2) {
            names.pop_back();
        }
        EXPECT_FALSE(names.empty()) << "no metric in: " << expr;
        for (const std::string& name : names) {
            EXPECT_EQ(exported.count(name), 1U)
                << "'" << name << "' is not exported by render_metrics: " << expr;
            used.insert(name);
        }
    }
    // The panels the deployment docs promise.
    for (const char* name :
         {"pals_node_power_watts", "pals_power_budget_watts", "pals_gpu_power_watts",
          "pals_group_power_cap_watts", "pals_group_batch_cap", "pals_generation_tokens_total",
          "pals_tokens_per_joule", "pals_decisions_total", "pals_errors_total", "pals_degraded",
          // docs/cluster.md: shares and elections
          "pals_cluster_budget_watts", "pals_cluster_allocation_watts",
          "pals_cluster_in_force_watts", "pals_cluster_share_watts", "pals_cluster_coordinator",
          "pals_cluster_fallback", "pals_cluster_elections_won_total",
          "pals_cluster_leader_changes_total", "pals_cluster_etcd_errors_total",
          "pals_cluster_round_seconds"}) {
        EXPECT_EQ(used.count(name), 1U) << name << " has no panel";
    }
}

TEST(GrafanaDashboardTest, IsAnImportableDashboard) {
    const nlohmann::json d = load_dashboard();
    EXPECT_GE(d.at("schemaVersion").get<int>(), 36);
    EXPECT_FALSE(d.at("title").get<std::string>().empty());
    EXPECT_FALSE(d.at("uid").get<std::string>().empty());
    bool has_datasource_variable = false;
    for (const auto& v : d.at("templating").at("list")) {
        has_datasource_variable = has_datasource_variable ||
                                  (v.at("type") == "datasource" && v.at("query") == "prometheus");
    }
    EXPECT_TRUE(has_datasource_variable);
    std::set<int> ids;
    for (const auto& p : d.at("panels")) {
        EXPECT_TRUE(ids.insert(p.at("id").get<int>()).second)
            << "duplicate panel id " << p.at("id");
        EXPECT_EQ(p.at("datasource").at("uid"), "${datasource}") << p.at("title");
        EXPECT_FALSE(p.at("targets").empty()) << p.at("title");
    }
}

}  // namespace
}  // namespace pals::api
