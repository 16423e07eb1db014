#pragma once
/// @file calibration.hpp
/// @brief Fidelity of the simulator against measured closed-loop runs (ML.ENERGY v3 H100 CSV),
/// and the fit of the GPU's few free parameters (GpuCalibration) to them.
///
/// Each measured row is replayed as ML.ENERGY ran it: all requests at t = 0, vLLM with
/// --max-num-batched-tokens 8192, the model's output-length histogram, TP over all GPUs and,
/// for MoE rows with ep > 1, expert parallelism over the same GPUs. The simulator's steady state
/// (saturated queue) is compared with the row. Nothing is per model: one GpuCalibration serves
/// all rows.

#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "pals/common/status.hpp"
#include "pals/sim/dvfs_calibration.hpp"
#include "pals/sim/gpu_spec.hpp"

namespace pals::sim {

/// One measured run (columns of h100_lm_arena_chat.csv that the comparison uses).
struct MeasuredRun {
    int line = 0;  ///< line in the CSV (for messages)
    std::string model;
    std::string gpu;
    int num_gpus = 1;
    int ep = 1;
    int max_num_seqs = 0;
    double avg_batch = 0;
    double avg_power_w = 0;  ///< all GPUs
    double j_per_tok = 0;
    double tok_s = 0;
    double median_itl_ms = 0;
    double avg_out_len = 0;
};

/// Reads the ML.ENERGY CSV. Errors name the file, line and column.
[[nodiscard]] Result<std::vector<MeasuredRun>> load_measured_runs(const std::filesystem::path& csv);

/// Where the inputs of a fidelity run live and how requests are drawn.
struct FidelitySettings {
    std::filesystem::path models_dir;          ///< <org>__<name>.json configs
    std::filesystem::path output_lengths;      ///< output_length_distributions.json
    std::string input_len = "uniform:64:512";  ///< LM-Arena prompts: short chat prompts
    int requests_per_seq = 3;                  ///< num_requests = this x max_num_seqs ...
    int min_requests = 400;                    ///< ... but at least this many
    std::uint64_t seed = 1;
};

/// Predicted next to measured, for one row.
struct FidelityRow {
    MeasuredRun measured;
    double tok_s = 0;
    double j_per_tok = 0;
    double median_itl_ms = 0;
    double avg_power_w = 0;
    double avg_batch = 0;
};

/// All rows and the mean absolute percentage error of each quantity (in percent).
struct FidelityReport {
    std::vector<FidelityRow> rows;
    double mape_tok_s = 0;
    double mape_j_per_tok = 0;
    double mape_median_itl = 0;
    double mape_avg_power = 0;
    [[nodiscard]] double worst_mape() const;
};

/// Simulates every row with `gpu` (its calibration included) and compares.
[[nodiscard]] Result<FidelityReport> evaluate_fidelity(const std::vector<MeasuredRun>& runs,
                                                       const GpuSpec& gpu,
                                                       const FidelitySettings& settings);

/// Whether the GPU's lowest power limit can be met: the power of a saturated GEMM step and of a
/// saturated weight-streaming step at the lowest supported clock. NVIDIA's minimum enforceable
/// limit is one the firmware holds by clocking down, so compute-bound work must fit under it;
/// streaming is reported only (HBM power follows the achieved bandwidth, not the SM clock, and
/// no measurement here says whether an H100 meets 200 W on it).
struct CapRangeCheck {
    double power_limit_min_w = 0;
    double gemm_power_at_min_clock_w = 0;
    double stream_power_at_min_clock_w = 0;
    /// Watts by which the GEMM step exceeds the lowest limit (0 when it fits).
    [[nodiscard]] double excess_w() const;
};
[[nodiscard]] CapRangeCheck check_cap_range(const GpuSpec& gpu);

/// Coordinate search over the free parameters of `start.calibration`, minimising the mean of
/// the four MAPEs (and their maximum), penalised where the lowest power limit becomes unreachable
/// (check_cap_range). `evaluations` bounds the number of full fidelity runs.
/// With `decode_figures`, their errors join the objective and leakage is fitted too (the 700 W
/// rows alone cannot identify it; the voltage curve and HBM knee stay as set, docs/gpus.md).
[[nodiscard]] Result<GpuCalibration> fit_calibration(
    const std::vector<MeasuredRun>& runs, const GpuSpec& start, const FidelitySettings& settings,
    int evaluations, std::span<const PublishedDecodeFigure> decode_figures = {},
    bool fit_power = true);

}  // namespace pals::sim
