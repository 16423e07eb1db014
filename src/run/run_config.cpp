#include "pals/run/run_config.hpp"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <limits>
#include <set>
#include <system_error>
#include <variant>

#include "pals/common/config_keys.hpp"
#include "pals/common/file_util.hpp"
#include "pals/common/strings.hpp"
#include "pals/common/toml_values.hpp"
#include "pals/common/url.hpp"

namespace pals::run {

namespace {

/// The shortest control period: the loop polls for stop requests every 0.1 s anyway, and NVML
/// power is a 1-s average.
constexpr double kMinPeriodS = 0.05;

using Member = std::variant<std::string RunConfig::*, double RunConfig::*, int RunConfig::*>;

struct KeyDef {
    RunConfigKey key;
    Member member;
};

const std::vector<KeyDef>& key_defs() {
    static const std::vector<KeyDef> kDefs = {
        {{"policy", RunKeyType::kString, "pals, default, cap-only, batch-only or clock-only"},
         &RunConfig::policy},
        {{"power_model", RunKeyType::kString,
          "MODEL.json written by `pals fit` (needed by policy pals)"},
         &RunConfig::power_model},
        {{"workload", RunKeyType::kString, "workload mix of the model (default: its first)"},
         &RunConfig::workload},
        {{"period_s", RunKeyType::kNumber, "control period, s"}, &RunConfig::period_s},
        {{"latency_window_s", RunKeyType::kNumber, "latency quantiles span this long, s"},
         &RunConfig::latency_window_s},
        {{"budget_w", RunKeyType::kNumber, "node power budget at start, W (0: none)"},
         &RunConfig::budget_w},
        {{"slo_ttft_s", RunKeyType::kNumber, "time-to-first-token SLO, s"}, &RunConfig::slo_ttft_s},
        {{"slo_tpot_s", RunKeyType::kNumber, "time-per-output-token SLO, s"},
         &RunConfig::slo_tpot_s},
        {{"sm_clock_max_mhz", RunKeyType::kNumber,
          "highest SM clock, MHz (clock-locking policies)"},
         &RunConfig::sm_clock_max_mhz},
        {{"listen", RunKeyType::kString, "HOST:PORT of the HTTP API (port 0: any free port)"},
         &RunConfig::listen},
        {{"token_file", RunKeyType::kString, "file holding the bearer token for PUT /v1/budget"},
         &RunConfig::token_file},
        {{"nvml_lib", RunKeyType::kString,
          "NVML library (default: the system's libnvidia-ml.so.1)"},
         &RunConfig::nvml_lib},
        {{"saved_controls", RunKeyType::kString, "state file of the saved GPU controls"},
         &RunConfig::saved_controls},
        {{"scrape_timeout_s", RunKeyType::kNumber, "timeout of one vLLM /metrics scrape, s"},
         &RunConfig::scrape_timeout_s},
        {{"log_level", RunKeyType::kString, "trace, debug, info, warn, error, critical or off"},
         &RunConfig::log_level},
        {{"retry_periods", RunKeyType::kInteger,
          "degraded mode: retry control every this many periods"},
         &RunConfig::retry_periods},
    };
    return kDefs;
}

const KeyDef* find_key(std::string_view key) {
    for (const KeyDef& d : key_defs()) {
        if (d.key.key == key) {
            return &d;
        }
    }
    return nullptr;
}

constexpr std::array<std::string_view, 6> kGroupKeys = {
    "url", "gpus", "max_num_seqs", "batch_cap_file", "model_name", "engine"};
constexpr std::array<std::string_view, 5> kPolicies = {"pals", "default", "cap-only", "batch-only",
                                                       "clock-only"};
constexpr std::array<std::string_view, 7> kLogLevels = {"trace", "debug",    "info", "warn",
                                                        "error", "critical", "off"};

template <std::size_t N>
bool contains(const std::array<std::string_view, N>& values, std::string_view v) {
    return std::find(values.begin(), values.end(), v) != values.end();
}

template <std::size_t N>
std::string join(const std::array<std::string_view, N>& values) {
    return fmt::format("{}", fmt::join(values, ", "));
}

/// Sets a scalar key from text (flags and environment).
Status set_from_text(RunConfig& config, const KeyDef& def, std::string_view text) {
    if (const auto* s = std::get_if<std::string RunConfig::*>(&def.member)) {
        config.*(*s) = std::string(text);
        return Status::ok();
    }
    if (const auto* d = std::get_if<double RunConfig::*>(&def.member)) {
        PALS_ASSIGN_OR_RETURN(double v, parse_number(text));
        config.*(*d) = v;
        return Status::ok();
    }
    PALS_ASSIGN_OR_RETURN(int v, parse_integer(text));
    config.*(std::get<int RunConfig::*>(def.member)) = v;
    return Status::ok();
}

/// Sets a scalar key from a TOML node; errors without prefix.
Status set_from_toml(RunConfig& config, const KeyDef& def, const toml::node& node) {
    if (const auto* s = std::get_if<std::string RunConfig::*>(&def.member)) {
        PALS_ASSIGN_OR_RETURN(config.*(*s), toml_value<std::string>(node));
    } else if (const auto* d = std::get_if<double RunConfig::*>(&def.member)) {
        PALS_ASSIGN_OR_RETURN(config.*(*d), toml_value<double>(node));
    } else {
        PALS_ASSIGN_OR_RETURN(config.*(std::get<int RunConfig::*>(def.member)),
                              toml_value<int>(node));
    }
    return Status::ok();
}

/// Sets a group key from text (flags, environment). Errors without prefix.
Status set_group_from_text(RunGroupConfig& g, std::string_view key, std::string_view value) {
    if (key == "url") {
        g.url = std::string(trim(value));
    } else if (key == "gpus") {
        PALS_ASSIGN_OR_RETURN(std::vector<int> gpus, parse_gpu_set(value));
        g.gpus = std::move(gpus);
    } else if (key == "max_num_seqs") {
        PALS_ASSIGN_OR_RETURN(int n, parse_integer(value));
        g.max_num_seqs = n;
    } else if (key == "batch_cap_file") {
        g.batch_cap_file = std::string(trim(value));
    } else if (key == "model_name") {
        g.model_name = std::string(trim(value));
    } else {
        g.engine = std::string(trim(value));
    }
    return Status::ok();
}

/// Sets a group key from a TOML node. Errors without prefix.
Status set_group_from_toml(RunGroupConfig& g, std::string_view key, const toml::node& node) {
    if (key == "gpus") {
        const toml::array* array = node.as_array();
        if (array == nullptr) {
            return Status::invalid_argument(fmt::format(
                "must be an array of GPU indices such as [0, 1], not {}", toml_type_name(node)));
        }
        g.gpus.clear();
        for (const toml::node& item : *array) {
            auto v = item.value_exact<std::int64_t>();
            if (!v || *v < 0 || *v > kMaxGpuIndex) {
                return Status::invalid_argument(
                    fmt::format("must be an array of GPU indices (integers 0-{})", kMaxGpuIndex));
            }
            if (g.gpus.size() > static_cast<std::size_t>(kMaxGpuIndex)) {
                return Status::out_of_range(fmt::format("more than {} GPUs", kMaxGpuIndex + 1));
            }
            g.gpus.push_back(static_cast<int>(*v));
        }
        return Status::ok();
    }
    if (key == "max_num_seqs") {
        auto v = node.value_exact<std::int64_t>();
        if (!v) {
            return Status::invalid_argument(
                fmt::format("must be an integer, not {}", toml_type_name(node)));
        }
        if (*v < 1 || *v > std::numeric_limits<int>::max()) {
            return Status::invalid_argument("must be >= 1 (the server's --max-num-seqs)");
        }
        g.max_num_seqs = static_cast<int>(*v);
        return Status::ok();
    }
    if (key == "engine") {
        if (auto i = node.value_exact<std::int64_t>()) {
            g.engine = std::to_string(*i);
            return Status::ok();
        }
    }
    auto s = node.value_exact<std::string>();
    if (!s) {
        return Status::invalid_argument(
            fmt::format("must be a string, not {}", toml_type_name(node)));
    }
    return set_group_from_text(g, key, *s);
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

/// Reads the TOML file into `config` (scalars and groups), recording origins.
Status read_file(RunConfig& config, const std::string& path) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
        return Status::not_found(path + ": no such config file");
    }
    // One reader for every input file: a regular file, bounded size (no FIFO, no /dev/zero).
    PALS_ASSIGN_OR_RETURN(std::string text, pals::read_file(path));
    toml::table root;
    try {
        root = toml::parse(text, path);
    } catch (const toml::parse_error& e) {
        return Status::invalid_argument(toml_location(path, e.source()) + ": " +
                                        std::string(e.description()));
    }
    const std::filesystem::path dir = std::filesystem::path(path).parent_path();
    config.file = path;
    for (const auto& [key, node] : root) {
        const std::string name(key.str());
        const std::string at = toml_location(path, key.source());
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
                for (const auto& [gkey, gnode] : table) {
                    const std::string gname(gkey.str());
                    const std::string prefix = fmt::format(
                        "{}: group[{}].{}", toml_location(path, gkey.source()), i, gname);
                    if (!contains(kGroupKeys, gname)) {
                        return Status::invalid_argument(
                            fmt::format("{}: group[{}]: unknown key '{}'{} (known: {})",
                                        toml_location(path, gkey.source()), i, gname,
                                        did_you_mean(gname, {kGroupKeys.begin(), kGroupKeys.end()}),
                                        join(kGroupKeys)));
                    }
                    if (Status s = set_group_from_toml(g, gname, gnode); !s.is_ok()) {
                        return s.with_prefix(prefix);
                    }
                    g.origins[gname] = prefix;
                }
                if (g.origins.count("batch_cap_file") != 0U) {
                    g.batch_cap_file = resolve_path(g.batch_cap_file, dir);
                }
                config.groups.push_back(std::move(g));
            }
            continue;
        }
        const KeyDef* def = find_key(name);
        if (def == nullptr) {
            std::vector<std::string_view> names;
            for (const KeyDef& d : key_defs()) {
                names.push_back(d.key.key);
            }
            names.emplace_back("group");
            return Status::invalid_argument(fmt::format("{}: unknown key '{}'{} (known: {})", at,
                                                        name, did_you_mean(name, names),
                                                        fmt::join(names, ", ")));
        }
        if (Status s = set_from_toml(config, *def, node); !s.is_ok()) {
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
    if (!contains(kPolicies, c.policy)) {
        return key_error(c, "policy",
                         fmt::format("unknown policy '{}'{} (known: {})", c.policy,
                                     did_you_mean(c.policy, {kPolicies.begin(), kPolicies.end()}),
                                     join(kPolicies)));
    }
    if (c.policy == "pals" && c.power_model.empty()) {
        return key_error(
            c, "policy",
            "policy 'pals' needs power_model (the MODEL.json `pals fit` writes); set power_model "
            "or "
            "choose a policy without a model (cap-only, batch-only, clock-only, default)");
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
        const double v = c.*(std::get<double RunConfig::*>(find_key(key)->member));
        if (v > max) {
            return key_error(c, key, fmt::format("must be <= {:g}", max));
        }
    }
    if (c.retry_periods > 1'000'000) {
        return key_error(c, "retry_periods", "must be <= 1000000");
    }
    if (c.latency_window_s < c.period_s) {
        return key_error(c, "latency_window_s", "must be >= period_s");
    }
    if (c.budget_w < 0.0) {
        return key_error(c, "budget_w", "must be >= 0 (0: no budget)");
    }
    for (std::string_view key :
         {"slo_ttft_s", "slo_tpot_s", "sm_clock_max_mhz", "scrape_timeout_s"}) {
        const double v = c.*(std::get<double RunConfig::*>(find_key(key)->member));
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

std::string quote(std::string_view s) {
    std::string out = "\"";
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (ch == '"' || ch == '\\') {
            out += '\\';
            out += ch;
        } else if (c < 0x20 || c == 0x7f) {
            out += fmt::format("\\u{:04x}", c);
        } else {
            out += ch;
        }
    }
    return out + "\"";
}

std::string toml_number(double v) {
    std::string s = fmt::format("{}", v);
    if (s.find_first_of(".eEn") == std::string::npos) {
        s += ".0";
    }
    return s;
}

std::string value_text(const RunConfig& c, const KeyDef& def, bool toml) {
    if (const auto* s = std::get_if<std::string RunConfig::*>(&def.member)) {
        return quote(c.*(*s));
    }
    if (const auto* d = std::get_if<double RunConfig::*>(&def.member)) {
        return toml ? toml_number(c.*(*d)) : fmt::format("{}", c.*(*d));
    }
    return std::to_string(c.*(std::get<int RunConfig::*>(def.member)));
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
        for (const KeyDef& d : key_defs()) {
            keys.push_back(d.key);
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
        if (eq == std::string::npos) {
            return Status::invalid_argument(fmt::format("{}: '{}' is not key=value (keys: {})",
                                                        origin, item, join(kGroupKeys)));
        }
        const std::string key(trim(item.substr(0, eq)));
        if (!contains(kGroupKeys, key)) {
            return Status::invalid_argument(fmt::format(
                "{}: unknown key '{}'{} (known: {})", origin, key,
                did_you_mean(key, {kGroupKeys.begin(), kGroupKeys.end()}), join(kGroupKeys)));
        }
        const std::string prefix = origin + ": " + key;
        if (g.origins.count(key) != 0U) {
            return Status::invalid_argument(prefix + ": given twice");
        }
        if (Status s = set_group_from_text(g, key, item.substr(eq + 1)); !s.is_ok()) {
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
        for (const KeyDef& def : key_defs()) {
            const std::string name = run_config_env_name(def.key.key);
            std::optional<std::string> value = sources.env(name);
            if (!value || value->empty()) {
                continue;
            }
            if (Status s = set_from_text(c, def, *value); !s.is_ok()) {
                return s.with_prefix(name);
            }
            c.origins[std::string(def.key.key)] = name;
        }
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
        const KeyDef* def = find_key(key);
        const std::string flag = run_config_flag_name(key);
        if (def == nullptr) {
            return Status::invalid_argument(flag + ": unknown option");
        }
        if (Status s = set_from_text(c, *def, value); !s.is_ok()) {
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
    for (const KeyDef& def : key_defs()) {
        const std::string key(def.key.key);
        auto it = c.origins.find(key);
        out += fmt::format(
            "{} = {}  # {}\n", key, value_text(c, def, true),
            it == c.origins.end() ? std::string("default") : origin_comment(it->second, key));
    }
    for (const RunGroupConfig& g : c.groups) {
        out += fmt::format("\n[[group]]  # {}\n", g.origin);
        out += fmt::format("url = {}\n", quote(g.url));
        out += fmt::format("gpus = [{}]\n", fmt::join(g.gpus, ", "));
        out += fmt::format("max_num_seqs = {}\n", g.max_num_seqs);
        out += fmt::format("batch_cap_file = {}\n", quote(g.batch_cap_file));
        out += fmt::format("model_name = {}\n", quote(g.model_name));
        out += fmt::format("engine = {}\n", quote(g.engine));
    }
    return out;
}

std::string run_config_to_json(const RunConfig& c) {
    std::vector<std::string> fields;
    for (const KeyDef& def : key_defs()) {
        fields.push_back(fmt::format("  {}: {}", quote(def.key.key), value_text(c, def, false)));
    }
    std::vector<std::string> groups;
    for (const RunGroupConfig& g : c.groups) {
        groups.push_back(
            fmt::format("    {{\"url\": {}, \"gpus\": [{}], \"max_num_seqs\": {}, "
                        "\"batch_cap_file\": {}, \"model_name\": {}, "
                        "\"engine\": {}}}",
                        quote(g.url), fmt::join(g.gpus, ", "), g.max_num_seqs,
                        quote(g.batch_cap_file), quote(g.model_name), quote(g.engine)));
    }
    fields.push_back(fmt::format("  \"group\": [\n{}\n  ]", fmt::join(groups, ",\n")));
    std::vector<std::string> origins;
    for (const KeyDef& def : key_defs()) {
        const std::string key(def.key.key);
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
