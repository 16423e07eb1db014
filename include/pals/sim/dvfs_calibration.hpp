#pragma once
/// @file dvfs_calibration.hpp
/// @brief Fidelity of the simulator's DVFS model away from the default limit: measured clock
/// sweeps (time and energy of a compute-bound stage at every locked SM clock, A100) and
/// published decode figures at a locked clock (H100/H200), and the fit of the GPU's voltage-
/// frequency and power parameters to them (docs/fidelity.md, "Capped and clock-locked").

#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "pals/common/status.hpp"
#include "pals/sim/gpu_spec.hpp"

namespace pals::sim {

/// One measured clock sweep: one pipeline stage's forward or backward pass of a micro-batch,
/// summed over the stages of the CSV, at each locked SM clock (highest first).
struct ClockSweep {
    std::string name;  ///< "<file stem> <instruction>"
    struct Point {
        double clock_mhz = 0;
        double time_s = 0;    ///< summed over stages
        double energy_j = 0;  ///< summed over stages
    };
    std::vector<Point> points;
};

/// Reads a Perseus/Zeus stage profile (`stage,instruction,frequency,time,energy`): one sweep
/// per instruction. Errors name the file, line and column.
[[nodiscard]] Result<std::vector<ClockSweep>> load_clock_sweeps(const std::filesystem::path& csv);

/// Predicted next to measured at one clock, relative to the highest clock of the sweep.
struct SweepRow {
    double clock_mhz = 0;      ///< locked clock
    double sim_clock_mhz = 0;  ///< the clock the simulated GPU ran at (cap may hold it lower)
    double time_ratio_meas = 0;
    double time_ratio_sim = 0;
    double energy_ratio_meas = 0;
    double energy_ratio_sim = 0;
};

struct SweepReport {
    std::string name;
    double compute_share = 0;     ///< fitted share of the stage's time in GEMMs at f_max
    double power_limit_w = 0;     ///< the limit it was replayed under
    double power_top_meas_w = 0;  ///< average power at the highest clock
    double power_top_sim_w = 0;
    double min_energy_clock_meas_mhz = 0;
    double min_energy_clock_sim_mhz = 0;
    double mae_time_pct = 0;    ///< mean absolute error of the time ratio, in points
    double mae_energy_pct = 0;  ///< same for the energy ratio
    std::vector<SweepRow> rows;
};

/// Replays a sweep on `gpu` under `power_limit_w`: the stage is a GEMM part (compute-bound) and
/// a memory-bound rest, whose split is fitted to the sweep's own time curve; energy then
/// follows from the GPU's power model alone. `power_limit_w` <= 0: the measured average power at
/// the top clock (the Perseus sweeps are power-limited there: their time is flat from 1410 to
/// 1365 MHz while the GPU draws about 475 W).
[[nodiscard]] SweepReport replay_clock_sweep(const ClockSweep& sweep, const GpuSpec& gpu,
                                             double power_limit_w);

/// A published decode measurement at a locked SM clock (no raw data: the paper's figure).
/// Either at one clock (`locked_clock_mhz`; 0 = the lowest supported), or "up to X % saved at
/// minimal throughput loss": the best saving over batches and supported clocks whose ITL rises
/// by at most `max_latency_increase_pct`.
struct PublishedDecodeFigure {
    std::string source;      ///< citation
    std::string gpu;         ///< GpuSpec name
    std::string model_file;  ///< <org>__<name>.json in the models folder
    int tp = 1;
    std::vector<int> batches = {8};  ///< concurrent sequences (max_num_seqs, closed loop)
    int input_len = 128;
    int output_len = 1024;
    double locked_clock_mhz = 0;
    double max_latency_increase_pct = 0;  ///< > 0: search the best clock within this ITL rise
    double energy_saving_pct = 0;         ///< published: 1 - J/token(locked) / J/token(default)
    double latency_increase_pct = 0;      ///< published: ITL(locked) / ITL(default) - 1
};

/// The published decode figures the DVFS fit uses (sources in the definitions).
[[nodiscard]] std::span<const PublishedDecodeFigure> published_decode_figures();

struct DecodeFigureRow {
    PublishedDecodeFigure published;
    int batch = 0;                 ///< the batch of the predicted figure
    double clock_mhz = 0;          ///< the locked clock of the predicted figure
    double energy_saving_pct = 0;  ///< predicted
    double latency_increase_pct = 0;
    double power_default_w = 0;  ///< predicted per-GPU power at the default clock
    double power_locked_w = 0;
};

/// Simulates each figure's decode run at the default clock and at the locked clock.
[[nodiscard]] Result<std::vector<DecodeFigureRow>> replay_decode_figures(
    std::span<const PublishedDecodeFigure> figures, const GpuSpec& gpu,
    const std::filesystem::path& models_dir);

/// The fit's error over decode figures: mean absolute error of the energy saving plus half that
/// of the latency increase, in percentage points.
[[nodiscard]] double decode_figure_error(const std::vector<DecodeFigureRow>& rows);

/// One free parameter of GpuCalibration and its search range.
struct FitParam {
    const char* name;
    double GpuCalibration::*field;
    double lo;
    double hi;
};

/// Coordinate search over `params` of `start.calibration` minimising `score` (lower is better),
/// within `evaluations` calls of `score`. Relative steps from 20 % down to 0.5 %.
[[nodiscard]] Result<GpuSpec> coordinate_search(
    const GpuSpec& start, std::span<const FitParam> params,
    const std::function<Result<double>(const GpuSpec&)>& score, int evaluations);

/// Fits the voltage-frequency curve and power terms of `start` to the clock sweeps.
[[nodiscard]] Result<GpuSpec> fit_sweep_calibration(const std::vector<ClockSweep>& sweeps,
                                                    const GpuSpec& start, double power_limit_w,
                                                    int evaluations);

}  // namespace pals::sim
