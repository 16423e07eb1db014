#pragma once
/// @file profile_store.hpp
/// @brief A profile: one measured row per (workload mix, power cap, batch cap) point, as
/// `pals profile` writes it and `pals fit` reads it. CSV with a header (STYLE.md 3.9: people
/// open profiles in pandas or a spreadsheet); every column is documented in docs/profile.md.
///
/// Units: caps in W per GPU; power and energy for all GPUs of the measured group; throughput in
/// output tokens/s of the group; latencies in seconds.
/// Thread-safety: value types and free functions; no shared state.

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "pals/common/status.hpp"
#include "pals/model/model_spec.hpp"

namespace pals::profile {

/// The model, GPU and layout a profile describes, carried on every row so that profiles of
/// different models (dense vs MoE) can be compared without side files.
struct ModelShape {
    std::string model;  ///< model name (config file stem), e.g. "Qwen__Qwen3-30B-A3B-Instruct-2507"
    std::string gpu;    ///< GPU type, e.g. "H100-SXM"
    int tp = 1;         ///< GPUs per group (tensor-parallel degree)
    int ep = 1;         ///< expert-parallel degree (1 or tp)
    int num_experts = 0;         ///< routed experts per MoE layer (0: dense)
    int experts_per_token = 0;   ///< top-k (0: dense)
    double active_params_b = 0;  ///< parameters used per token, billions
    double total_params_b = 0;   ///< all parameters, billions

    [[nodiscard]] bool is_moe() const { return num_experts > 0 && experts_per_token > 0; }
    /// "Qwen3-30B-A3B (MoE 128 experts, top-8, 3.3B/30.5B active/total) on 1x H100-SXM".
    [[nodiscard]] std::string describe() const;
    /// True when model, GPU and layout agree (parameter counts are derived, not compared).
    [[nodiscard]] bool same_setup(const ModelShape& other) const;
};

/// The shape of `spec` on `tp` x `gpu` with expert parallelism `ep`.
[[nodiscard]] ModelShape model_shape_of(const model::ModelSpec& spec, std::string gpu, int tp,
                                        int ep);

/// Expected number of distinct experts one MoE layer touches when `tokens` tokens are routed
/// top-k over `num_experts` experts uniformly: E * (1 - (1 - k/E)^tokens) (DESIGN.md 1.3 with no
/// routing skew). 0 for a dense model.
[[nodiscard]] double expected_distinct_experts(int num_experts, int experts_per_token,
                                               double tokens);

/// One measured point. Quantiles of a window with no observation are NaN.
struct ProfileRow {
    std::string workload;           ///< workload mix name
    double power_cap_w = 0.0;       ///< requested cap per GPU
    int batch_cap = 0;              ///< requested batch cap (max running sequences)
    double enforced_cap_w = 0.0;    ///< lowest enforced cap over the group's GPUs at the end
    int gpus = 0;                   ///< GPUs in the measured group
    double throughput_tok_s = 0.0;  ///< output tokens/s
    double prompt_tok_s = 0.0;      ///< prompt tokens computed per second
    double requests_s = 0.0;        ///< requests finished per second
    double power_w = 0.0;           ///< all GPUs of the group, from energy-counter deltas
    double j_per_token = 0.0;       ///< energy / output tokens over the window
    double itl_p50_s = 0.0;
    double itl_p90_s = 0.0;
    double itl_p99_s = 0.0;
    double tpot_p50_s = 0.0;
    double tpot_p90_s = 0.0;
    double tpot_p99_s = 0.0;
    double ttft_p50_s = 0.0;
    double ttft_p90_s = 0.0;
    double ttft_p99_s = 0.0;
    double avg_batch = 0.0;          ///< mean of the running-sequences gauge over the window
    double kv_usage = 0.0;           ///< mean KV-cache use over the window, 0..1
    double sm_clock_mhz = 0.0;       ///< mean SM clock over the window and the group's GPUs
    double power_capped_frac = 0.0;  ///< share of GPU samples throttled by the power cap
    double preemptions = 0.0;        ///< preemptions during the window
    bool saturated = false;          ///< requests were waiting at every sample (engine-bound)
    double warmup_s = 0.0;
    double window_s = 0.0;  ///< measured window length
    std::string backend;    ///< "simulated", "nvml", ...
    ModelShape shape;
};

/// The rows of a profile and where they came from.
struct ProfileTable {
    std::filesystem::path source;  ///< file read (empty when built in memory)
    std::vector<ProfileRow> rows;
    std::vector<int> lines;  ///< line number of each row in `source` (header = line 1)

    /// Index of the row for this point, or npos. Caps match within 1e-6 W.
    [[nodiscard]] std::size_t find(std::string_view workload, double power_cap_w,
                                   int batch_cap) const;
    void append(ProfileRow row);
    /// "FILE:LINE" for row `i` (or "row i+1" when the table was built in memory).
    [[nodiscard]] std::string where(std::size_t i) const;
};

/// The CSV header line (no newline), in column order.
[[nodiscard]] std::string profile_csv_header();
/// Column names, in order.
[[nodiscard]] const std::vector<std::string>& profile_columns();

/// The whole CSV text (header + one line per row, '\n' endings).
[[nodiscard]] std::string format_profile_csv(const ProfileTable& table);

/// Parses CSV text. `source` names the file in errors ("FILE:LINE: column 'x': ..."). Missing
/// columns, a wrong field count, or a value that is not a number (NaN and inf are numbers here;
/// the fit rejects them where it needs a value) are kInvalidArgument. Unknown extra columns are
/// ignored. Duplicate points are kInvalidArgument naming both lines.
[[nodiscard]] Result<ProfileTable> parse_profile_csv(std::string_view text,
                                                     const std::filesystem::path& source);

/// Reads a profile file (kNotFound if it does not exist).
[[nodiscard]] Result<ProfileTable> read_profile(const std::filesystem::path& path);

/// Writes the table atomically (temporary file + rename): a reader never sees a half row.
[[nodiscard]] Status write_profile(const std::filesystem::path& path, const ProfileTable& table);

}  // namespace pals::profile
