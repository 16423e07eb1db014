#include "pals/run/run_config.hpp"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <limits>
#include <set>
#include <system_error>
#include <variant>

#include "pals/common/config_keys.hpp"
#include "pals/common/file_util.hpp"
#include "pals/common/option_table.hpp"
#include "pals/common/strings.hpp"
#include "pals/common/toml_values.hpp"
#include "pals/common/url.hpp"
#include "pals/control/policy_registry.hpp"

namespace pals::run {

namespace {

/// The shortest control period: the loop polls for stop requests every 0.1 s anyway, and NVML
/// power is a 1-s average.
constexpr double kMinPeriodS = 0.05;

const OptionTable<RunConfig>& run_options() {
    static const OptionTable<RunConfig> kOptions = {
        {.key = "policy",
         .help = "pals, default, cap-only, batch-only or clock-only",
         .member = &RunConfig::policy},
        {.key = "power_model",
         .help = "MODEL.json written by `pals fit` (needed by policy pals)",
         .member = &RunConfig::power_model},
        {.key = "workload",
         .help = "workload mix of the model (default: its first)",
         .member = &RunConfig::workload},
        {.key = "period_s", .help = "control period, s", .member = &RunConfig::period_s},
        {.key = "latency_window_s",
         .help = "latency quantiles span this long, s",
         .member = &RunConfig::latency_window_s},
        {.key = "budget_w",
         .help = "node power budget at start, W (0: none)",
         .member = &RunConfig::budget_w},
        {.key = "slo_ttft_s",
         .help = "time-to-first-token SLO, s",
         .member = &RunConfig::slo_ttft_s},
        {.key = "slo_tpot_s",
         .help = "time-per-output-token SLO, s",
         .member = &RunConfig::slo_tpot_s},
        {.key = "sm_clock_max_mhz",
         .help = "highest SM clock, MHz (clock-locking policies)",
         .member = &RunConfig::sm_clock_max_mhz},
        {.key = "listen",
         .help = "HOST:PORT of the HTTP API (port 0: any free port)",
         .member = &RunConfig::listen},
        {.key = "token_file",
         .help = "file holding the bearer token for PUT /v1/budget",
         .member = &RunConfig::token_file},
        {.key = "nvml_lib",
         .help = "NVML library (default: the system's libnvidia-ml.so.1)",
         .member = &RunConfig::nvml_lib},
        {.key = "saved_controls",
         .help = "state file of the saved GPU controls",
         .member = &RunConfig::saved_controls},
        {.key = "scrape_timeout_s",
         .help = "timeout of one vLLM /metrics scrape, s",
         .member = &RunConfig::scrape_timeout_s},
        {.key = "log_level",
         .help = "trace, debug, info, warn, error, critical or off",
         .member = &RunConfig::log_level},
        {.key = "retry_periods",
         .help = "degraded mode: retry control every this many periods",
         .member = &RunConfig::retry_periods},
        {.key = "batch_cap_fault_periods",
         .help = "a batch cap the engine does not acknowledge for this many periods is a fault "
                 "(0: never)",
         .member = &RunConfig::batch_cap_fault_periods},
    };
    return kOptions;
}

/// The keys of a [[group]] table, a --group spec and a PALS_GROUPS entry: adding a group key is
/// one line here (and its check in validate(), if it needs one).
const OptionTable<RunGroupConfig>& group_options() {
    static const OptionTable<RunGroupConfig> kOptions = {
        {.key = "url", .help = "base URL of the vLLM server", .member = &RunGroupConfig::url},
        {.key = "gpus",
         .help = "NVML indices of its GPUs",
         .member = &RunGroupConfig::gpus,
         .range = {.lo = 0, .hi = kMaxGpuIndex}},
        {.key = "max_num_seqs",
         .help = "the server's launch --max-num-seqs",
         .member = &RunGroupConfig::max_num_seqs},
        {.key = "batch_cap_file",
         .help = "the plugin's PALS_BATCH_CAP_FILE",
         .member = &RunGroupConfig::batch_cap_file},
        {.key = "max_num_batched_tokens",
         .help = "the server's launch --max-num-batched-tokens (0: as the plugin acknowledges)",
         .member = &RunGroupConfig::max_num_batched_tokens},
        {.key = "step_tokens_file",
         .help = "the plugin's PALS_STEP_TOKENS_FILE (default: batch_cap_file.step_tokens)",
         .member = &RunGroupConfig::step_tokens_file},
        {.key = "model_name",
         .help = "keep only series with this model_name label",
         .member = &RunGroupConfig::model_name},
        {.key = "engine",
         .help = "keep only series of this DP rank",
         .member = &RunGroupConfig::engine,
         .integer_as_text = true},
    };
    return kOptions;
}

const OptionTable<RunClusterConfig>& cluster_options() {
    static const OptionTable<RunClusterConfig> kOptions = {
        {.key = "endpoints",
         .flag = "--cluster-endpoints",
         .help = "etcd client URLs, comma-separated (none: not a cluster member)",
         .member = &RunClusterConfig::endpoints},
        {.key = "name",
         .flag = "--cluster-name",
         .help = "cluster name: etcd keys under /pals/<name>/",
         .member = &RunClusterConfig::name},
        {.key = "node",
         .flag = "--cluster-node",
         .help = "this node's name in the cluster (default: the host name)",
         .member = &RunClusterConfig::node},
        {.key = "lease_ttl_s",
         .flag = "--cluster-lease-ttl-s",
         .help = "membership lease TTL, s: a dead node's share moves after it",
         .member = &RunClusterConfig::lease_ttl_s,
         .range = {.lo = 2, .hi = 3600, .unit = "s"}},
        {.key = "floor_w",
         .flag = "--cluster-floor-w",
         .help = "safe node budget, W, held without etcd (0: the GPUs' minimum)",
         .member = &RunClusterConfig::floor_w,
         .range = {.lo = 0, .hi = 1e7, .unit = "W"}},
        {.key = "ca_file",
         .flag = "--cluster-ca-file",
         .help = "https endpoints: CA file of the etcd servers' certificates",
         .member = &RunClusterConfig::ca_file},
        {.key = "cert_file",
         .flag = "--cluster-cert-file",
         .help = "client certificate for etcd (with key_file)",
         .member = &RunClusterConfig::cert_file},
        {.key = "key_file",
         .flag = "--cluster-key-file",
         .help = "client certificate's key",
         .member = &RunClusterConfig::key_file},
        {.key = "user",
         .flag = "--cluster-user",
         .help = "etcd user (etcd authentication)",
         .member = &RunClusterConfig::user},
        {.key = "password_file",
         .flag = "--cluster-password-file",
         .help = "file holding the etcd user's password",
         .member = &RunClusterConfig::password_file},
        {.key = "request_timeout_s",
         .flag = "--cluster-request-timeout-s",
         .help = "timeout of one etcd request, s",
         .member = &RunClusterConfig::request_timeout_s,
         .range = {.lo = 0.05, .hi = 60, .unit = "s"}},
    };
    return kOptions;
}

/// A cluster or node name: letters, digits, '.', '_' and '-' (it becomes part of etcd keys).
bool valid_name(std::string_view name) {
    return !name.empty() && name.size() <= 128 &&
           std::all_of(name.begin(), name.end(), [](char ch) {
               return std::isalnum(static_cast<unsigned char>(ch)) != 0 || ch == '.' || ch == '_' ||
                      ch == '-';
           });
}

std::string cluster_origin(const RunClusterConfig& c, std::string_view key) {
    if (auto it = c.origins.find(key); it != c.origins.end()) {
        return it->second;
    }
    return "cluster." + std::string(key) + " (default)";
}

Status cluster_error(const RunClusterConfig& c, std::string_view key, const std::string& what) {
    return Status::invalid_argument(cluster_origin(c, key) + ": " + what);
}

double number_value(const RunConfig& c, std::string_view key) {
    return c.*(std::get<double RunConfig::*>(find_option(run_options(), key)->member));
}

constexpr std::array<std::string_view, 7> kLogLevels = {"trace", "debug",    "info", "warn",
                                                        "error", "critical", "off"};

template <std::size_t N>
bool contains(const std::array<std::string_view, N>& values, std::string_view v) {
    return std::find(values.begin(), values.end(), v) != values.end();
}

template <class Values>
std::string join(const Values& values) {
    return fmt::format("{}", fmt::join(values, ", "));
}

/// A vLLM server's base URL: http://HOST:PORT[/]. Errors without prefix.
Result<Url> parse_server_url(std::string_view text) {
    PALS_ASSIGN_OR_RETURN(Url url, Url::parse(text));
    if (url.scheme != "http") {
        return Status::invalid_argument(
            "'" + std::string(text) +
            "': only http:// URLs are supported (vLLM's /metrics on the node)");
    }
    if (!url.path_prefix.empty()) {
        return Status::invalid_argument(
            "'" + std::string(text) +
            "': give the server's base URL, e.g. http://127.0.0.1:8000 (PALS adds /metrics)");
    }
    if (!url.port_given) {
        return Status::invalid_argument(
            "'" + std::string(text) +
            "' has no port (vLLM serves on 8000 by default: http://HOST:8000)");
    }
    return url;
}

std::string group_origin(const RunGroupConfig& g, std::string_view key) {
    if (auto it = g.origins.find(key); it != g.origins.end()) {
        return it->second;
    }
    return g.origin + ": " + std::string(key) + " (default)";
}

std::string key_origin(const RunConfig& c, std::string_view key) {
    if (auto it = c.origins.find(key); it != c.origins.end()) {
        return it->second;
    }
    return std::string(key) + " (default)";
}

Status key_error(const RunConfig& c, std::string_view key, const std::string& what) {
    return Status::invalid_argument(key_origin(c, key) + ": " + what);
}

Status group_error(const RunGroupConfig& g, std::string_view key, const std::string& what) {
    return Status::invalid_argument(group_origin(g, key) + ": " + what);
}

std::string resolve_path(const std::string& value, const std::filesystem::path& dir) {
    if (value.empty() || std::filesystem::path(value).is_absolute() || dir.empty()) {
        return value;
    }
    return (dir / value).lexically_normal().string();
}

/// Reads the [cluster] table.
Status read_cluster_table(RunClusterConfig& cluster, const toml::node& node,
                          const std::string& path, const std::string& at,
                          const std::filesystem::path& dir) {
    const toml::table* table = node.as_table();
    if (table == nullptr) {
        return Status::invalid_argument(at + ": cluster: write it as a [cluster] table");
    }
    OptionOrigins origins;
    PALS_RETURN_IF_ERROR(read_toml_options(cluster, cluster_options(), *table, path, "cluster",
                                           origins, {"endpoints"}));
    cluster.origins = std::move(origins.given);
    if (const toml::node* e = table->get("endpoints")) {
        const std::string where = toml_location(path, e->source()) + ": cluster.endpoints";
        if (const toml::array* list = e->as_array()) {
            std::vector<std::string> items;
            for (const toml::node& item : *list) {
                auto text = item.value_exact<std::string>();
                if (!text) {
                    return Status::invalid_argument(where + ": each endpoint must be a string");
                }
                items.push_back(*text);
            }
            cluster.endpoints = fmt::format("{}", fmt::join(items, ","));
        } else if (auto text = e->value_exact<std::string>()) {
            cluster.endpoints = *text;
        } else {
            return Status::invalid_argument(
                where + ": must be a string or an array of strings (etcd client URLs)");
        }
        cluster.origins["endpoints"] = where;
    }
    for (std::string* p :
         {&cluster.ca_file, &cluster.cert_file, &cluster.key_file, &cluster.password_file}) {
        *p = resolve_path(*p, dir);
    }
    return Status::ok();
}

Status validate_cluster(RunConfig& c) {
    RunClusterConfig& k = c.cluster;
    k.endpoint_list.clear();
    for (const std::string& raw : split(k.endpoints, ',')) {
        const std::string e(trim(raw));
        if (e.empty()) {
            continue;
        }
        auto url = Url::parse(e);
        if (!url.is_ok()) {
            return cluster_error(k, "endpoints", url.status().message());
        }
        if (url->scheme != "http" && url->scheme != "https") {
            return cluster_error(k, "endpoints", "'" + e + "': use http:// or https://");
        }
        if (!url->port_given || !url->path_prefix.empty()) {
            return cluster_error(k, "endpoints",
                                 "'" + e +
                                     "': give an etcd client URL with its port and no "
                                     "path, e.g. http://127.0.0.1:2379");
        }
        k.endpoint_list.push_back(url->origin());
    }
    if (!k.enabled()) {
        return Status::ok();
    }
    if (!valid_name(k.name)) {
        return cluster_error(k, "name", "use letters, digits, '.', '_' and '-' only");
    }
    if (!k.node.empty() && !valid_name(k.node)) {
        return cluster_error(k, "node", "use letters, digits, '.', '_' and '-' only");
    }
    if (k.cert_file.empty() != k.key_file.empty()) {
        // Named by the one given.
        return cluster_error(k, k.cert_file.empty() ? "key_file" : "cert_file",
                             "cert_file and key_file go together");
    }
    const bool tls = std::any_of(k.endpoint_list.begin(), k.endpoint_list.end(),
                                 [](const std::string& e) { return e.starts_with("https://"); });
    for (std::string_view key : {"ca_file", "cert_file", "key_file"}) {
        const std::string& v = key == "ca_file"     ? k.ca_file
                               : key == "cert_file" ? k.cert_file
                                                    : k.key_file;
        if (!v.empty() && !tls) {
            return cluster_error(k, key, "TLS files need https:// endpoints");
        }
    }
    if (k.user.empty() != k.password_file.empty()) {
        return cluster_error(k, k.user.empty() ? "password_file" : "user",
                             "user and password_file go together");
    }
    // The lease is renewed every ttl/3 and a node falls back from ttl/3 on: the agent must
    // poll (every period/2) well within that.
    if (static_cast<double>(k.lease_ttl_s) < 1.5 * c.period_s) {
        return cluster_error(k, "lease_ttl_s",
                             fmt::format("must be >= 1.5 x period_s ({:g} s)", 1.5 * c.period_s));
    }
    const control::PolicyInfo* policy = control::find_policy(c.policy);
    if (policy != nullptr && !policy->honours_budget) {
        return key_error(c, "policy",
                         fmt::format("policy '{}' ignores budgets: a cluster member needs one "
                                     "that holds its node budget",
                                     c.policy));
    }
    if (c.budget_w > 0.0) {
        return key_error(c, "budget_w",
                         "a cluster member's node budget comes from the cluster: leave budget_w "
                         "unset (cluster.floor_w is its safe budget)");
    }
    return Status::ok();
}

/// Reads the TOML file into `config` (scalars and groups), recording origins.
Status read_file(RunConfig& config, const std::string& path) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
        return Status::not_found(path + ": no such config file");
    }
    // One reader for every input file: a regular file, bounded size (no FIFO, no /dev/zero).
    PALS_ASSIGN_OR_RETURN(std::string text, pals::read_file(path));
    PALS_ASSIGN_OR_RETURN(const toml::table root, parse_toml(text, path));
    const std::filesystem::path dir = std::filesystem::path(path).parent_path();
    config.file = path;
    for (const auto& [key, node] : root) {
        const std::string name(key.str());
        const std::string at = toml_location(path, key.source());
        if (name == "cluster") {
            PALS_RETURN_IF_ERROR(read_cluster_table(config.cluster, node, path, at, dir));
            continue;
        }
        if (name == "group") {
            const toml::array* groups = node.as_array();
            if (groups == nullptr || !groups->is_array_of_tables()) {
                return Status::invalid_argument(at +
                                                ": group: write each group as a [[group]] table");
            }
            config.groups.clear();
            config.groups_origin = path;
            for (std::size_t i = 0; i < groups->size(); ++i) {
                const toml::table& table = *groups->get(i)->as_table();
                RunGroupConfig g;
                g.origin = fmt::format("{}: group[{}]", toml_location(path, table.source()), i);
                OptionOrigins origins;
                PALS_RETURN_IF_ERROR(read_toml_options(g, group_options(), table, path,
                                                       fmt::format("group[{}]", i), origins));
                g.origins = std::move(origins.given);
                if (g.origins.count("batch_cap_file") != 0U) {
                    g.batch_cap_file = resolve_path(g.batch_cap_file, dir);
                }
                if (g.origins.count("step_tokens_file") != 0U) {
                    g.step_tokens_file = resolve_path(g.step_tokens_file, dir);
                }
                config.groups.push_back(std::move(g));
            }
            continue;
        }
        const Option<RunConfig>* option = find_option(run_options(), name);
        if (option == nullptr) {
            std::vector<std::string_view> names = option_keys(run_options());
            names.emplace_back("group");
            names.emplace_back("cluster");
            return unknown_key_error(at, name, names);
        }
        if (Status s = set_option_from_toml(config, *option, node); !s.is_ok()) {
            return s.with_prefix(at + ": " + name);
        }
        config.origins[name] = at + ": " + name;
    }
    for (std::string* p : {&config.power_model, &config.token_file, &config.saved_controls}) {
        *p = resolve_path(*p, dir);
    }
    if (config.nvml_lib.find('/') != std::string::npos) {
        config.nvml_lib = resolve_path(config.nvml_lib, dir);
    }
    return Status::ok();
}

Result<std::vector<RunGroupConfig>> parse_group_list(const std::vector<std::string>& specs,
                                                     const std::string& origin_prefix) {
    std::vector<RunGroupConfig> groups;
    for (std::size_t i = 0; i < specs.size(); ++i) {
        PALS_ASSIGN_OR_RETURN(
            RunGroupConfig g,
            parse_group_spec(specs[i], fmt::format("{}{}", origin_prefix, i + 1)));
        groups.push_back(std::move(g));
    }
    return groups;
}

Status validate(RunConfig& c) {
    const control::PolicyInfo* policy = control::find_policy(c.policy);
    if (policy == nullptr || policy->evaluation_only) {
        return key_error(c, "policy", control::unknown_policy(c.policy, true).message());
    }
    if (policy->needs_model && c.power_model.empty()) {
        std::vector<std::string_view> without;
        for (const control::PolicyInfo& p : control::policy_registry()) {
            if (!p.needs_model && !p.evaluation_only) {
                without.push_back(p.name);
            }
        }
        return key_error(
            c, "policy",
            fmt::format("policy '{}' needs power_model (the MODEL.json `pals fit` writes); set "
                        "power_model or choose a policy without a model ({})",
                        c.policy, join(without)));
    }
    if (c.period_s < kMinPeriodS) {
        return key_error(c, "period_s", fmt::format("must be >= {} s", kMinPeriodS));
    }
    // Upper bounds: each value becomes a timer or a std::chrono duration, where 1e300 overflows.
    for (const auto& [key, max] : {std::pair<std::string_view, double>{"period_s", 3600.0},
                                   {"latency_window_s", 86400.0},
                                   {"scrape_timeout_s", 3600.0},
                                   {"slo_ttft_s", 1e6},
                                   {"slo_tpot_s", 1e6},
                                   {"sm_clock_max_mhz", 10000.0}}) {
        const double v = number_value(c, key);
        if (v > max) {
            return key_error(c, key, fmt::format("must be <= {:g}", max));
        }
    }
    if (c.retry_periods > 1'000'000) {
        return key_error(c, "retry_periods", "must be <= 1000000");
    }
    if (c.batch_cap_fault_periods < 0 || c.batch_cap_fault_periods > 1'000'000) {
        return key_error(c, "batch_cap_fault_periods", "must be 0-1000000 (0: never a fault)");
    }
    if (c.latency_window_s < c.period_s) {
        return key_error(c, "latency_window_s", "must be >= period_s");
    }
    if (c.budget_w < 0.0) {
        return key_error(c, "budget_w", "must be >= 0 (0: no budget)");
    }
    for (std::string_view key :
         {"slo_ttft_s", "slo_tpot_s", "sm_clock_max_mhz", "scrape_timeout_s"}) {
        const double v = number_value(c, key);
        if (v <= 0.0) {
            return key_error(c, key, "must be > 0");
        }
    }
    if (c.retry_periods < 1) {
        return key_error(c, "retry_periods", "must be >= 1");
    }
    if (!contains(kLogLevels, c.log_level)) {
        return key_error(
            c, "log_level",
            fmt::format("unknown level '{}' (known: {})", c.log_level, join(kLogLevels)));
    }
    auto listen = parse_host_port(c.listen, 0);
    if (!listen.is_ok()) {
        return key_error(c, "listen", listen.status().message());
    }
    c.listen_host = listen->host;
    c.listen_port = listen->port;
    if (c.saved_controls.empty()) {
        return key_error(c, "saved_controls", "must not be empty");
    }
    if (c.groups.empty()) {
        return Status::invalid_argument((c.file.empty() ? std::string("configuration") : c.file) +
                                        ": no GPU group: give at least one [[group]] (url and gpus "
                                        "of a vLLM server), --group or PALS_GROUPS");
    }
    for (std::size_t i = 0; i < c.groups.size(); ++i) {
        RunGroupConfig& g = c.groups[i];
        auto url = parse_server_url(g.url);
        if (!url.is_ok()) {
            return group_error(g, "url", url.status().message());
        }
        g.host = url->host;
        g.port = url->port;
        if (g.gpus.empty()) {
            return group_error(g, "gpus", "give the GPUs of this server, e.g. [0, 1]");
        }
        std::set<int> seen;
        for (int gpu : g.gpus) {
            if (gpu < 0) {
                return group_error(g, "gpus", fmt::format("GPU index {} is negative", gpu));
            }
            if (!seen.insert(gpu).second) {
                return group_error(g, "gpus", fmt::format("GPU {} is listed twice", gpu));
            }
        }
        if (g.max_num_seqs < 1 || g.max_num_seqs > kMaxGroupNumSeqs) {
            return group_error(
                g, "max_num_seqs",
                fmt::format("must be 1-{} (the server's --max-num-seqs)", kMaxGroupNumSeqs));
        }
        if (g.batch_cap_file.empty()) {
            return group_error(g, "batch_cap_file", "must not be empty");
        }
        if (g.max_num_batched_tokens < 0 || g.max_num_batched_tokens > kMaxGroupBatchedTokens) {
            return group_error(g, "max_num_batched_tokens",
                               fmt::format("must be 0-{} (the server's --max-num-batched-tokens; "
                                           "0: as the plugin acknowledges)",
                                           kMaxGroupBatchedTokens));
        }
        for (std::size_t j = 0; j < i; ++j) {
            const RunGroupConfig& other = c.groups[j];
            for (int gpu : g.gpus) {
                if (std::find(other.gpus.begin(), other.gpus.end(), gpu) != other.gpus.end()) {
                    return group_error(
                        g, "gpus",
                        fmt::format("GPU {} is also in group {} ({})", gpu, j, other.origin));
                }
            }
            if (g.batch_cap_file == other.batch_cap_file) {
                return group_error(
                    g, "batch_cap_file",
                    fmt::format("'{}' is also group {}'s: each server needs its own file (its "
                                "PALS_BATCH_CAP_FILE)",
                                g.batch_cap_file, j));
            }
            if (g.host == other.host && g.port == other.port && g.model_name == other.model_name &&
                g.engine == other.engine) {
                return group_error(
                    g, "url",
                    fmt::format("group {} already reads {} with the same model_name and engine "
                                "filter (set engine to a DP rank to split one server)",
                                j, g.url));
            }
        }
    }
    return Status::ok();
}

/// "default", "--budget-w", "PALS_BUDGET_W" or "pals.toml:3:1".
std::string origin_comment(const std::string& origin, std::string_view key) {
    const std::string suffix = ": " + std::string(key);
    if (origin.size() > suffix.size() &&
        origin.compare(origin.size() - suffix.size(), suffix.size(), suffix) == 0) {
        return origin.substr(0, origin.size() - suffix.size());
    }
    return origin;
}

}  // namespace

const std::vector<RunConfigKey>& run_config_keys() {
    static const std::vector<RunConfigKey> kKeys = [] {
        std::vector<RunConfigKey> keys;
        for (const Option<RunConfig>& o : run_options()) {
            const RunKeyType type =
                std::holds_alternative<std::string RunConfig::*>(o.member) ? RunKeyType::kString
                : std::holds_alternative<double RunConfig::*>(o.member)    ? RunKeyType::kNumber
                                                                           : RunKeyType::kInteger;
            keys.push_back({o.key, type, o.help});
        }
        return keys;
    }();
    return kKeys;
}

const std::vector<ClusterConfigKey>& cluster_config_keys() {
    static const std::vector<ClusterConfigKey> kKeys = [] {
        std::vector<ClusterConfigKey> keys;
        for (const Option<RunClusterConfig>& o : cluster_options()) {
            keys.push_back(
                {"cluster." + std::string(o.key), option_flag(o), option_env(o), o.help});
        }
        return keys;
    }();
    return kKeys;
}

std::string run_config_env_name(std::string_view key) {
    return config_env_name(key);
}

std::string run_config_flag_name(std::string_view key) {
    return config_flag_name(key);
}

Result<RunGroupConfig> parse_group_spec(std::string_view spec, const std::string& origin) {
    RunGroupConfig g;
    g.origin = origin;
    for (const std::string& raw : split(spec, ',')) {
        const std::string item(trim(raw));
        if (item.empty()) {
            continue;
        }
        const std::size_t eq = item.find('=');
        const std::vector<std::string_view> keys = option_keys(group_options());
        if (eq == std::string::npos) {
            return Status::invalid_argument(
                fmt::format("{}: '{}' is not key=value (keys: {})", origin, item, join(keys)));
        }
        const std::string key(trim(item.substr(0, eq)));
        const Option<RunGroupConfig>* option = find_option(group_options(), key);
        if (option == nullptr) {
            return unknown_key_error(origin, key, keys);
        }
        const std::string prefix = origin + ": " + key;
        if (g.origins.count(key) != 0U) {
            return Status::invalid_argument(prefix + ": given twice");
        }
        if (Status s = set_option_from_text(g, *option, trim(item.substr(eq + 1))); !s.is_ok()) {
            return s.with_prefix(prefix);
        }
        g.origins[key] = prefix;
    }
    return g;
}

Result<RunConfig> load_run_config(const RunConfigSources& sources) {
    RunConfig c;
    if (!sources.file.empty()) {
        PALS_RETURN_IF_ERROR(read_file(c, sources.file));
    }
    // Environment, then flags: each replaces what the layer below set.
    if (sources.env) {
        OptionOrigins origins{.given = std::move(c.origins)};
        PALS_RETURN_IF_ERROR(read_env_options(c, run_options(), sources.env, origins));
        c.origins = std::move(origins.given);
        OptionOrigins cluster_origins{.given = std::move(c.cluster.origins)};
        PALS_RETURN_IF_ERROR(
            read_env_options(c.cluster, cluster_options(), sources.env, cluster_origins));
        c.cluster.origins = std::move(cluster_origins.given);
        if (std::optional<std::string> groups = sources.env(kRunGroupsEnvVar);
            groups && !trim(*groups).empty()) {
            std::vector<std::string> specs;
            for (const std::string& spec : split(*groups, ';')) {
                if (!trim(spec).empty()) {
                    specs.push_back(spec);
                }
            }
            PALS_ASSIGN_OR_RETURN(auto parsed,
                                  parse_group_list(specs, std::string(kRunGroupsEnvVar) + " #"));
            c.groups = std::move(parsed);
            c.groups_origin = kRunGroupsEnvVar;
        }
    }
    for (const auto& [key, value] : sources.flags) {
        if (key.starts_with("cluster.")) {
            const std::string sub = key.substr(8);
            const Option<RunClusterConfig>* option = find_option(cluster_options(), sub);
            if (option == nullptr) {
                return Status::invalid_argument("--cluster-" + sub + ": unknown option");
            }
            if (Status s = set_option_from_text(c.cluster, *option, value); !s.is_ok()) {
                return s.with_prefix(option_flag(*option));
            }
            c.cluster.origins[sub] = option_flag(*option);
            continue;
        }
        const Option<RunConfig>* option = find_option(run_options(), key);
        const std::string flag = run_config_flag_name(key);
        if (option == nullptr) {
            return Status::invalid_argument(flag + ": unknown option");
        }
        if (Status s = set_option_from_text(c, *option, value); !s.is_ok()) {
            return s.with_prefix(flag);
        }
        c.origins[key] = flag;
    }
    if (!sources.group_flags.empty()) {
        PALS_ASSIGN_OR_RETURN(auto parsed, parse_group_list(sources.group_flags, "--group #"));
        c.groups = std::move(parsed);
        c.groups_origin = "--group";
    }
    PALS_RETURN_IF_ERROR(validate(c));
    PALS_RETURN_IF_ERROR(validate_cluster(c));
    return c;
}

Status check_gpu_count(const RunConfig& config, int gpu_count) {
    for (const RunGroupConfig& g : config.groups) {
        for (int gpu : g.gpus) {
            if (gpu >= gpu_count) {
                return group_error(
                    g, "gpus",
                    gpu_count > 0
                        ? fmt::format("GPU {} does not exist (NVML reports {} GPUs: 0-{})", gpu,
                                      gpu_count, gpu_count - 1)
                        : fmt::format("GPU {} does not exist (NVML reports no GPU)", gpu));
            }
        }
    }
    return Status::ok();
}

Status check_budget_feasible(const RunConfig& config, double budget_min_w) {
    constexpr double kToleranceW = 1e-6;
    if (config.budget_w > 0.0 && config.budget_w < budget_min_w - kToleranceW) {
        return Status::invalid_argument(
            key_origin(config, "budget_w") +
            fmt::format(": {:g} W is below the minimum of {:g} W the GPUs of the groups can hold "
                        "(the sum of their minimum power limits)",
                        config.budget_w, budget_min_w));
    }
    return Status::ok();
}

std::string run_config_to_toml(const RunConfig& c) {
    std::string out = "# pals run: effective configuration (flag > environment > file > default)\n";
    for (const Option<RunConfig>& option : run_options()) {
        const std::string key(option.key);
        auto it = c.origins.find(key);
        out += fmt::format(
            "{} = {}  # {}\n", key, option_value_text(c, option, true),
            it == c.origins.end() ? std::string("default") : origin_comment(it->second, key));
    }
    if (c.cluster.enabled()) {
        out += "\n[cluster]\n";
        for (const Option<RunClusterConfig>& option : cluster_options()) {
            const std::string key(option.key);
            auto it = c.cluster.origins.find(key);
            out += fmt::format("{} = {}  # {}\n", key, option_value_text(c.cluster, option, true),
                               it == c.cluster.origins.end()
                                   ? std::string("default")
                                   : origin_comment(it->second, "cluster." + key));
        }
    }
    for (const RunGroupConfig& g : c.groups) {
        out += fmt::format("\n[[group]]  # {}\n", g.origin);
        for (const Option<RunGroupConfig>& option : group_options()) {
            out += fmt::format("{} = {}\n", option.key, option_value_text(g, option, true));
        }
    }
    return out;
}

std::string run_config_to_json(const RunConfig& c) {
    using option_detail::quote;
    std::vector<std::string> fields;
    for (const Option<RunConfig>& option : run_options()) {
        fields.push_back(
            fmt::format("  {}: {}", quote(option.key), option_value_text(c, option, false)));
    }
    std::vector<std::string> groups;
    for (const RunGroupConfig& g : c.groups) {
        std::vector<std::string> members;
        for (const Option<RunGroupConfig>& option : group_options()) {
            members.push_back(
                fmt::format("{}: {}", quote(option.key), option_value_text(g, option, false)));
        }
        groups.push_back(fmt::format("    {{{}}}", fmt::join(members, ", ")));
    }
    fields.push_back(fmt::format("  \"group\": [\n{}\n  ]", fmt::join(groups, ",\n")));
    if (c.cluster.enabled()) {
        std::vector<std::string> members;
        for (const Option<RunClusterConfig>& option : cluster_options()) {
            members.push_back(fmt::format("{}: {}", quote(option.key),
                                          option_value_text(c.cluster, option, false)));
        }
        fields.push_back(fmt::format("  \"cluster\": {{{}}}", fmt::join(members, ", ")));
    }
    std::vector<std::string> origins;
    for (const Option<RunConfig>& option : run_options()) {
        const std::string key(option.key);
        auto it = c.origins.find(key);
        origins.push_back(
            fmt::format("    {}: {}", quote(key),
                        quote(it == c.origins.end() ? std::string("default")
                                                    : origin_comment(it->second, key))));
    }
    fields.push_back(fmt::format("  \"origins\": {{\n{}\n  }}", fmt::join(origins, ",\n")));
    return fmt::format("{{\n{}\n}}\n", fmt::join(fields, ",\n"));
}

std::string run_config_origin(const RunConfig& config, std::string_view key) {
    return key_origin(config, key);
}

}  // namespace pals::run
