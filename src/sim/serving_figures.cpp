#include "pals/sim/serving_figures.hpp"

#include <utility>

#include "pals/sim/simulator.hpp"

namespace pals::sim {

Result<ClosedLoopResult> run_closed_loop(const ClosedLoopSetup& setup) {
    NodeConfig node;
    node.model = setup.model;
    node.gpu = setup.gpu;
    node.parallel.tp = setup.tp;
    node.parallel.ep = setup.ep;
    node.engine.max_num_seqs = setup.concurrency;
    node.locked_clock_mhz = setup.locked_clock_mhz;
    std::vector<workload::Request> requests;
    for (int i = 0; i < setup.concurrency * setup.requests_per_seq; ++i) {
        requests.push_back({static_cast<std::uint64_t>(i), 0.0, setup.input_len, setup.output_len});
    }
    PALS_ASSIGN_OR_RETURN(Simulator sim, Simulator::create(node, std::move(requests)));
    sim.run_to_completion();
    const SimulationReport report = sim.report();
    ClosedLoopResult r;
    if (report.steady) {
        r.tok_s = report.steady->throughput_tok_s;
        r.median_itl_s = report.steady->itl_s.p50;
        r.j_per_token = report.steady->j_per_token;
        r.power_per_gpu_w = report.steady->avg_power_w / setup.tp;
    } else {
        r.tok_s = report.throughput_tok_s;
        r.median_itl_s = report.itl_s.p50;
        r.j_per_token = report.j_per_token;
        r.power_per_gpu_w = report.avg_power_w / setup.tp;
    }
    return r;
}

Result<GpuSpec> figure_gpu(const std::string& gpu_name, const GpuSpec& calibrated,
                           const std::string& source) {
    PALS_ASSIGN_OR_RETURN(GpuSpec out, find_gpu_spec(gpu_name).with_prefix(source));
    out.calibration = calibrated.calibration;
    return out;
}

std::span<const PublishedServingFigure> published_serving_figures() {
    static const std::vector<PublishedServingFigure> kFigures = [] {
        std::vector<PublishedServingFigure> f;
        // LambdaLabsML/vllm-benchmark, results/prompt_10/8xH100-80GB-SXM/
        // Meta-Llama-3.1-70B-Instruct-FP8_tp8_len2048.json: 10 ShareGPT prompts at once (mean 137
        // tokens in, 212 out; replayed as fixed lengths), median TPOT.
        f.push_back({"LambdaLabsML/vllm-benchmark prompt_10 8xH100 Llama-3.1-70B-FP8 tp8",
                     "vLLM 0.5.4/0.6.0", "H100-SXM", "meta-llama__Llama-3.1-70B-Instruct.json",
                     "fp8", 8, 1, 10, 137, 212, 10.2, 0.0});
        // NVIDIA NIM for LLMs 1.8.0 benchmark page, Llama-3.3-70B-Instruct FP8 on 2 H100 (same
        // architecture as Llama-3.1-70B), 5000 tokens in, 500 out: ITL and output tok/s.
        for (const auto& [conc, itl, tok_s] :
             {std::tuple{1, 18.6, 51.7}, std::tuple{5, 21.8, 218.0}, std::tuple{25, 38.8, 623.0}}) {
            f.push_back({"NVIDIA NIM 1.8.0 benchmarks, Llama-3.3-70B FP8 TP2", "TensorRT-LLM (NIM)",
                         "H100-SXM", "meta-llama__Llama-3.1-70B-Instruct.json", "fp8", 2, 1, conc,
                         5000, 500, itl, tok_s});
        }
        return f;
    }();
    return kFigures;
}

double ServingFigureRow::itl_error_pct() const {
    return (itl_ms / published.itl_ms - 1.0) * 100.0;
}

double ServingFigureRow::tok_s_error_pct() const {
    return published.tok_s > 0.0 ? (tok_s / published.tok_s - 1.0) * 100.0 : 0.0;
}

Result<std::vector<ServingFigureRow>> replay_serving_figures(
    std::span<const PublishedServingFigure> figures, const GpuSpec& gpu_for_h100_family,
    const std::filesystem::path& models_dir) {
    std::vector<ServingFigureRow> rows;
    for (const PublishedServingFigure& f : figures) {
        PALS_ASSIGN_OR_RETURN(GpuSpec gpu, figure_gpu(f.gpu, gpu_for_h100_family, f.source));
        std::optional<model::WeightDtype> dtype;
        if (!f.dtype.empty()) {
            PALS_ASSIGN_OR_RETURN(dtype, model::parse_weight_dtype(f.dtype).with_prefix(f.source));
        }
        PALS_ASSIGN_OR_RETURN(
            model::ModelSpec model,
            model::load_model_spec(models_dir / f.model_file, dtype).with_prefix(f.source));
        ClosedLoopSetup setup;
        setup.model = std::move(model);
        setup.gpu = gpu;
        setup.tp = f.tp;
        setup.ep = f.ep;
        setup.concurrency = f.concurrency;
        setup.input_len = f.input_len;
        setup.output_len = f.output_len;
        Result<ClosedLoopResult> run = run_closed_loop(setup);
        if (!run.is_ok()) {
            return run.status().with_prefix(f.source);
        }
        rows.push_back({f, run->median_itl_s * 1e3, run->tok_s, run->power_per_gpu_w});
    }
    return rows;
}

}  // namespace pals::sim
