// `pals calibrate`: predicted vs measured on the ML.ENERGY H100 runs, and the parameter fit.
#include <fmt/format.h>

#include <cstdio>
#include <memory>

#include "cli/commands.hpp"
#include "cli/flag_checks.hpp"
#include "cli/report_format.hpp"
#include "pals/common/file_util.hpp"
#include "pals/sim/calibration.hpp"

namespace pals::cli {

namespace {

struct CalibrateOptions {
    std::string csv;
    std::string gpu = "H100-SXM";
    bool fit = false;
    int evaluations = 150;
    bool json = false;
    double max_mape = 0.0;
    std::string input_len = "uniform:64:512";
};

std::string fidelity_table(const sim::FidelityReport& report) {
    std::vector<std::vector<std::string>> rows;
    for (const sim::FidelityRow& r : report.rows) {
        const sim::MeasuredRun& m = r.measured;
        std::string name = m.model.substr(m.model.find('/') + 1);
        rows.push_back({fmt::format("{} {}x ep{} B={}", name, m.num_gpus, m.ep, m.max_num_seqs),
                        fmt::format("{:.0f}", m.tok_s), fmt::format("{:.0f}", r.tok_s),
                        fmt::format("{:.3f}", m.j_per_tok), fmt::format("{:.3f}", r.j_per_tok),
                        fmt::format("{:.1f}", m.median_itl_ms), fmt::format("{:.1f}", r.median_itl_ms),
                        fmt::format("{:.0f}", m.avg_power_w), fmt::format("{:.0f}", r.avg_power_w)});
    }
    std::string out = format_table({"run (model, GPUs, EP, max_num_seqs)", "tok/s meas", "tok/s sim", "J/tok meas",
                                    "J/tok sim", "ITL ms meas", "ITL ms sim", "W meas", "W sim"},
                                   rows);
    out += fmt::format("\nMAPE: tok/s {:.1f} %, J/tok {:.1f} %, median ITL {:.1f} %, power {:.1f} % ({} rows)\n",
                       report.mape_tok_s, report.mape_j_per_tok, report.mape_median_itl, report.mape_avg_power,
                       report.rows.size());
    return out;
}

nlohmann::json fidelity_json(const sim::FidelityReport& report) {
    nlohmann::json rows = nlohmann::json::array();
    for (const sim::FidelityRow& r : report.rows) {
        const sim::MeasuredRun& m = r.measured;
        rows.push_back({{"model", m.model},
                        {"num_gpus", m.num_gpus},
                        {"ep", m.ep},
                        {"max_num_seqs", m.max_num_seqs},
                        {"measured", {{"tok_s", m.tok_s}, {"j_per_tok", m.j_per_tok},
                                      {"median_itl_ms", m.median_itl_ms}, {"avg_power_w", m.avg_power_w}}},
                        {"predicted", {{"tok_s", r.tok_s}, {"j_per_tok", r.j_per_tok},
                                       {"median_itl_ms", r.median_itl_ms}, {"avg_power_w", r.avg_power_w},
                                       {"avg_batch", r.avg_batch}}}});
    }
    return {{"rows", rows},
            {"mape_percent", {{"tok_s", report.mape_tok_s}, {"j_per_tok", report.mape_j_per_tok},
                              {"median_itl_ms", report.mape_median_itl}, {"avg_power_w", report.mape_avg_power}}}};
}

Status run_calibrate(const CalibrateOptions& opt) {
    const std::string shared = default_shared_dir();
    const std::string csv = opt.csv.empty() ? shared + "/calibration/mlenergy-v3/h100_lm_arena_chat.csv" : opt.csv;
    Result<std::vector<sim::MeasuredRun>> runs = sim::load_measured_runs(csv);
    if (!runs.is_ok()) {
        return runs.status();
    }
    Result<sim::GpuSpec> gpu = sim::find_gpu_spec(opt.gpu);
    if (!gpu.is_ok()) {
        return gpu.status().with_prefix("--gpu");
    }
    sim::FidelitySettings settings;
    settings.models_dir = shared + "/models";
    settings.output_lengths = shared + "/calibration/mlenergy-v3/output_length_distributions.json";
    if (Status st = check_length_text("--input-len", opt.input_len); !st.is_ok()) {
        return st;
    }
    settings.input_len = opt.input_len;
    sim::GpuSpec spec = gpu.value();
    if (opt.fit) {
        Result<sim::GpuCalibration> fitted = sim::fit_calibration(runs.value(), spec, settings, opt.evaluations);
        if (!fitted.is_ok()) {
            return fitted.status();
        }
        spec.calibration = fitted.value();
        const sim::GpuCalibration& c = spec.calibration;
        std::printf("fitted %s calibration:\n  mem_efficiency %.4f\n  compute_efficiency %.4f\n"
                    "  attention_efficiency %.4f\n  step_overhead_s %.6g\n  layer_overhead_s %.6g\n"
                    "  moe_layer_overhead_s %.6g\n  ep_layer_latency_s %.6g\n  sample_s_per_vocab %.6g\n"
                    "  mem_power_w %.2f\n  sm_power_w %.2f\n  sm_busy_fraction %.4f\n  clock_exponent %.3f\n"
                    "  mem_clock_knee %.3f\n\n",
                    spec.name.c_str(), c.mem_efficiency, c.compute_efficiency, c.attention_efficiency,
                    c.step_overhead_s, c.layer_overhead_s, c.moe_layer_overhead_s, c.ep_layer_latency_s,
                    c.sample_s_per_vocab, c.mem_power_w, c.sm_power_w, c.sm_busy_fraction, c.clock_exponent,
                    c.mem_clock_knee);
    }
    Result<sim::FidelityReport> report = sim::evaluate_fidelity(runs.value(), spec, settings);
    if (!report.is_ok()) {
        return report.status();
    }
    const std::string text = opt.json ? fidelity_json(report.value()).dump(2) + "\n" : fidelity_table(report.value());
    std::fputs(text.c_str(), stdout);
    if (opt.max_mape > 0.0 && report->worst_mape() > opt.max_mape) {
        return Status::out_of_range(fmt::format("worst MAPE {:.1f} % exceeds --max-mape {:.1f} %",
                                                report->worst_mape(), opt.max_mape));
    }
    return Status::ok();
}

}  // namespace

void add_calibrate_command(CLI::App& app, CommandContext& ctx) {
    auto opt = std::make_shared<CalibrateOptions>();
    CLI::App* cmd = app.add_subcommand(
        "calibrate", "compare the simulator with measured H100 runs (ML.ENERGY v3), row by row; --fit refits");
    cmd->add_option("--csv", opt->csv, "measured runs (default: shared/calibration/mlenergy-v3/h100_lm_arena_chat.csv)");
    cmd->add_option("--gpu", opt->gpu, "GPU type whose parameters are evaluated or fitted")->capture_default_str();
    cmd->add_flag("--fit", opt->fit, "fit the GPU's free efficiency and power parameters first");
    cmd->add_option("--evaluations", opt->evaluations, "fit budget: full fidelity runs")
        ->check(integer_in(1, 100000))
        ->capture_default_str();
    cmd->add_option("--input-len", opt->input_len, "prompt lengths of the replayed runs")->capture_default_str();
    cmd->add_option("--max-mape", opt->max_mape, "exit 2 if any MAPE exceeds this (percent)")
        ->check(finite_in(0.0, 1e6, "%"));
    cmd->add_flag("--json", opt->json, "print JSON instead of a table");
    cmd->callback([opt, &ctx] {
        const Status status = run_calibrate(*opt);
        ctx.exit_code = status.is_ok() ? 0 : report_error(status);
    });
}

}  // namespace pals::cli
