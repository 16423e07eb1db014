#pragma once
/// @file serving_figures.hpp
/// @brief Published serving figures of deployments the calibration rows do not cover (FP8, TP8,
/// EP8, long prompts), replayed as closed loops and compared; and the closed-loop replay both
/// this and the decode figures use. They are held out: no fit reads them (docs/fidelity.md).

#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "pals/common/status.hpp"
#include "pals/model/model_spec.hpp"
#include "pals/sim/gpu_spec.hpp"

namespace pals::sim {

/// A closed loop of `concurrency` sequences with fixed lengths, all arriving at t = 0.
struct ClosedLoopSetup {
    model::ModelSpec model;
    GpuSpec gpu;
    int tp = 1;
    int ep = 1;
    int concurrency = 8;  ///< max_num_seqs; requests = concurrency x requests_per_seq
    int requests_per_seq = 4;
    int input_len = 128;
    int output_len = 1024;
    double locked_clock_mhz = 0;
};

/// Steady-state figures of a closed loop (the whole run where no steady state is found).
struct ClosedLoopResult {
    double tok_s = 0;  ///< output tokens per second, whole replica
    double median_itl_s = 0;
    double j_per_token = 0;
    double power_per_gpu_w = 0;
};

[[nodiscard]] Result<ClosedLoopResult> run_closed_loop(const ClosedLoopSetup& setup);

/// A published figure's GPU (by name) carrying the calibration under test (GH100 parts share one
/// set); errors are prefixed with the figure's source.
[[nodiscard]] Result<GpuSpec> figure_gpu(const std::string& gpu_name, const GpuSpec& calibrated,
                                         const std::string& source);

/// One published measurement of a serving deployment: median TPOT/ITL and, where given, output
/// throughput at a fixed concurrency.
struct PublishedServingFigure {
    std::string source;      ///< citation (repository path, page)
    std::string engine;      ///< what produced it ("vLLM 0.6.0", "TensorRT-LLM")
    std::string gpu;         ///< GpuSpec name
    std::string model_file;  ///< <org>__<name>.json in the models folder
    std::string dtype;       ///< matmul precision override ("fp8"), empty: the config's
    int tp = 1;
    int ep = 1;
    int concurrency = 1;
    int input_len = 0;
    int output_len = 0;
    double itl_ms = 0;  ///< published median TPOT or ITL
    double tok_s = 0;   ///< published output tok/s; 0 when not published
};

/// The built-in published serving figures (sources in the definitions).
[[nodiscard]] std::span<const PublishedServingFigure> published_serving_figures();

struct ServingFigureRow {
    PublishedServingFigure published;
    double itl_ms = 0;  ///< predicted median ITL
    double tok_s = 0;   ///< predicted output tok/s
    double power_per_gpu_w = 0;
    [[nodiscard]] double itl_error_pct() const;
    [[nodiscard]] double tok_s_error_pct() const;  ///< 0 when not published
};

/// Replays each figure on its GPU with the calibration of `gpu_for_h100_family` (GH100 parts
/// share one set).
[[nodiscard]] Result<std::vector<ServingFigureRow>> replay_serving_figures(
    std::span<const PublishedServingFigure> figures, const GpuSpec& gpu_for_h100_family,
    const std::filesystem::path& models_dir);

}  // namespace pals::sim
