#pragma once
/// @file run_config.hpp
/// @brief The configuration of `pals run` (the live daemon, docs/deploy.md): a TOML file whose
/// every key is also a command-line flag and a `PALS_*` environment variable.
///
/// Precedence: flag > environment > file > default (STYLE.md 3.9). Key `period_s` is the flag
/// `--period-s` and the variable `PALS_PERIOD_S`. GPU groups are `[[group]]` tables in the file,
/// repeatable `--group "url=http://127.0.0.1:8000,gpus=0+1,max_num_seqs=256"` flags, or
/// `PALS_GROUPS` (groups separated by ';'); flags, else the environment, replace the file's
/// groups as a whole. Everything is validated at load: unknown keys, wrong types and bad values
/// are kInvalidArgument naming where the value came from ("pals.toml:7:1: budget_w: ...",
/// "--budget-w: ...", "PALS_BUDGET_W: ..."). What needs the hardware (GPU indices against the
/// GPU count) is checked by check_gpu_count() once NVML is open.
///
/// Thread-safety: plain values and pure functions.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pals/common/gpu_set.hpp"
#include "pals/common/status.hpp"
#include "pals/power/saved_controls.hpp"

namespace pals::run {

/// One GPU group: one vLLM server (or one data-parallel rank of it) and the GPUs it runs on.
struct RunGroupConfig {
    std::string url = "http://127.0.0.1:8000";  ///< where its /metrics is served
    std::string host = "127.0.0.1";             ///< parsed from `url`
    int port = 8000;                            ///< parsed from `url`
    std::vector<int> gpus;                      ///< NVML indices; a TP group shares one cap
    int max_num_seqs = 256;                     ///< the server's launch --max-num-seqs
    std::string batch_cap_file = "/run/pals/batch_cap";  ///< the plugin's $PALS_BATCH_CAP_FILE
    /// The server's launch --max-num-batched-tokens (0: the value the plugin acknowledges).
    int max_num_batched_tokens = 0;
    /// The plugin's $PALS_STEP_TOKENS_FILE ("": batch_cap_file + ".step_tokens").
    std::string step_tokens_file;
    std::string model_name;  ///< keep only series with this model_name label
    std::string engine;      ///< keep only series of this DP rank ("" = all)
    /// Where the group was defined ("pals.toml:9:1: group[0]", "--group #1", "PALS_GROUPS #1").
    std::string origin;
    /// Where each key's value came from, as an error prefix ("pals.toml:9:8: group[0].gpus").
    std::map<std::string, std::string, std::less<>> origins;
};

/// The `[cluster]` table: membership of a cluster power budget coordinated through etcd
/// (docs/cluster.md). Flags `--cluster-KEY`, variables `PALS_CLUSTER_KEY`. No endpoint: the node
/// is not a cluster member (its budget is budget_w / PUT /v1/budget as before).
struct RunClusterConfig {
    /// etcd client URLs, comma-separated in a flag or variable, a string or an array of strings
    /// in the file ("http://10.0.0.1:2379,http://10.0.0.2:2379"); "" = not a member.
    std::string endpoints;
    std::vector<std::string> endpoint_list;  ///< parsed from `endpoints`
    std::string name = "default";            ///< the cluster: keys under /pals/<name>/
    std::string node;                        ///< this node's name ("" = the host name)
    int lease_ttl_s = 10;                    ///< membership lease, s
    double floor_w = 0.0;       ///< safe node budget, W (0: the sum of the GPUs' minimum limits)
    std::string ca_file;        ///< https endpoints: CA of the etcd servers' certificates
    std::string cert_file;      ///< client certificate (etcd --client-cert-auth)
    std::string key_file;       ///< its key
    std::string user;           ///< etcd user (etcd authentication; "" = none)
    std::string password_file;  ///< file holding that user's password (first line)
    double request_timeout_s = 2.0;  ///< one etcd request
    /// Where each key's value came from ("pals.toml:30:1: cluster.lease_ttl_s").
    std::map<std::string, std::string, std::less<>> origins;

    [[nodiscard]] bool enabled() const { return !endpoint_list.empty(); }
};

/// Everything `pals run` needs. Defaults are those of a file that sets nothing.
struct RunConfig {
    std::string policy = "pals";    ///< pals | default | cap-only | batch-only | clock-only
    std::string power_model;        ///< MODEL.json written by `pals fit` (policy pals)
    std::string workload;           ///< workload mix of the model ("" = its first)
    double period_s = 1.0;          ///< control period
    double latency_window_s = 5.0;  ///< latency quantiles span this long
    double budget_w = 0.0;          ///< node power budget at start; 0 = none
    double slo_ttft_s = 1.0;
    double slo_tpot_s = 0.1;
    double sm_clock_max_mhz = 1980.0;       ///< for clock-locking policies (NVML cannot report it)
    std::string listen = "127.0.0.1:9520";  ///< HOST:PORT of the HTTP API; port 0 = any free
    std::string listen_host = "127.0.0.1";  ///< parsed from `listen`
    int listen_port = 9520;                 ///< parsed from `listen`
    std::string token_file;  ///< bearer token for PUT /v1/budget; "" = writes refused
    std::string nvml_lib;    ///< "" = $PALS_NVML_LIB, else the system's libnvidia-ml.so.1
    std::string saved_controls = power::SavedControls::kDefaultPath;  ///< SavedControls file
    double scrape_timeout_s = 2.0;   ///< connect + read timeout of one /metrics scrape
    std::string log_level = "info";  ///< trace | debug | info | warn | error | critical | off
    int retry_periods = 5;           ///< degraded mode: retry every this many periods
    /// A batch cap not acknowledged by the engine for this many periods is a fault (0: never).
    int batch_cap_fault_periods = 3;
    std::vector<RunGroupConfig> groups;
    RunClusterConfig cluster;

    std::string file;  ///< the TOML file read ("" = none)
    /// Where each scalar key's value came from, as an error prefix ("pals.toml:3:1: budget_w",
    /// "--budget-w", "PALS_BUDGET_W", "budget_w (default)").
    std::map<std::string, std::string, std::less<>> origins;
    /// Where the groups came from ("pals.toml", "--group", "PALS_GROUPS", "" = none).
    std::string groups_origin;
};

/// What a scalar key holds.
enum class RunKeyType { kString, kNumber, kInteger };

/// One scalar key of the configuration (groups excluded).
struct RunConfigKey {
    std::string_view key;
    RunKeyType type;
    std::string_view help;  ///< one line, for --help and docs
};

/// Every scalar key, in the order the effective configuration prints them.
[[nodiscard]] const std::vector<RunConfigKey>& run_config_keys();
/// Every key of `[cluster]`: key "cluster.lease_ttl_s", its flag "--cluster-lease-ttl-s" (the
/// variable is PALS_CLUSTER_LEASE_TTL_S). RunConfigSources::flags takes them by key.
struct ClusterConfigKey {
    std::string key;
    std::string flag;
    std::string env;
    std::string_view help;
};
[[nodiscard]] const std::vector<ClusterConfigKey>& cluster_config_keys();
/// "PALS_" + the key in upper case ("period_s" -> "PALS_PERIOD_S").
[[nodiscard]] std::string run_config_env_name(std::string_view key);
/// "--" + the key with '-' for '_' ("period_s" -> "--period-s").
[[nodiscard]] std::string run_config_flag_name(std::string_view key);
/// A group's max_num_batched_tokens is 0 .. kMaxGroupBatchedTokens.
inline constexpr int kMaxGroupBatchedTokens = 1 << 24;
/// A group's max_num_seqs is 1 .. kMaxGroupNumSeqs.
inline constexpr int kMaxGroupNumSeqs = 1'000'000;
/// The environment variable holding groups, separated by ';'.
inline constexpr const char* kRunGroupsEnvVar = "PALS_GROUPS";

/// Where the values come from. Every part is optional.
struct RunConfigSources {
    std::string file;  ///< TOML file; "" = none
    /// Looks a variable up (PALS_* names only); nullptr = no environment. An empty value counts
    /// as unset.
    std::function<std::optional<std::string>(const std::string&)> env;
    /// (key, value) given on the command line, e.g. {"budget_w", "1200"}; later ones win.
    std::vector<std::pair<std::string, std::string>> flags;
    /// The values of repeated --group flags.
    std::vector<std::string> group_flags;
};

/// Reads the file (if any), then the environment, then the flags; validates the result.
/// Relative paths in the file (power_model, token_file, saved_controls, batch_cap_file, and
/// nvml_lib when it contains '/') are taken relative to the file's folder.
[[nodiscard]] Result<RunConfig> load_run_config(const RunConfigSources& sources);

/// Parses one group given as "key=value,key=value" (keys of [[group]]; gpus as "0+1+2" or a
/// range "0-3"). `origin` prefixes errors ("--group #2"). Values are not cross-checked yet.
[[nodiscard]] Result<RunGroupConfig> parse_group_spec(std::string_view spec,
                                                      const std::string& origin);

/// Every group's GPUs must exist: kInvalidArgument naming the group's origin otherwise.
[[nodiscard]] Status check_gpu_count(const RunConfig& config, int gpu_count);

/// The budget at start must be one the groups' GPUs can hold: kInvalidArgument naming budget_w's
/// origin and the minimum (W) when 0 < budget_w < `budget_min_w` (the sum of the GPUs' minimum
/// power limits, see min_budget_w() in daemon.hpp).
[[nodiscard]] Status check_budget_feasible(const RunConfig& config, double budget_min_w);

/// The effective configuration as a TOML file that load_run_config() reads back, each value
/// commented with where it came from.
[[nodiscard]] std::string run_config_to_toml(const RunConfig& config);
/// The same as a JSON object (groups under "group").
[[nodiscard]] std::string run_config_to_json(const RunConfig& config);

/// Where the value of scalar key `key` came from, as an error prefix ("pals.toml:3:1: budget_w",
/// "--budget-w", "PALS_BUDGET_W", "budget_w (default)").
[[nodiscard]] std::string run_config_origin(const RunConfig& config, std::string_view key);

}  // namespace pals::run
