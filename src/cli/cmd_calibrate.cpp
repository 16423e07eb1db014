// `pals calibrate`: predicted vs measured, one table per source (ML.ENERGY H100 runs at 700 W,
// measured A100 clock sweeps, published decode figures at locked clocks), and the parameter fits.
#include <fmt/format.h>

#include <cstdio>
#include <memory>

#include "cli/commands.hpp"
#include "cli/flag_checks.hpp"
#include "cli/report_format.hpp"
#include "pals/common/file_util.hpp"
#include "pals/sim/calibration.hpp"
#include "pals/sim/dvfs_calibration.hpp"
#include "pals/sim/serving_figures.hpp"
#include "pals/workload/workload_options.hpp"

namespace pals::cli {

namespace {

struct CalibrateOptions {
    std::string csv;
    std::string gpu = "H100-SXM";
    bool fit = false;
    bool fit_power = false;
    int evaluations = 150;
    bool json = false;
    double max_mape = 0.0;
    std::string input_len = "uniform:64:512";
    std::string source = "all";
    std::vector<std::string> sweeps;  ///< clock-sweep CSVs (default: shared/calibration/dvfs/*.csv)
    std::string sweep_gpu = "A100-80GB";
    double sweep_limit_w = 0.0;
};

/// Every `kSweepRowStride`-th clock of a sweep is printed (all of them in --json).
constexpr std::size_t kSweepRowStride = 4;

std::string sweep_table(const std::vector<sim::SweepReport>& reports) {
    std::string out;
    for (const sim::SweepReport& r : reports) {
        std::vector<std::vector<std::string>> rows;
        for (std::size_t i = 0; i < r.rows.size(); ++i) {
            if (i % kSweepRowStride != 0 && i + 1 != r.rows.size()) {
                continue;
            }
            const sim::SweepRow& row = r.rows[i];
            rows.push_back({fmt::format("{:.0f}", row.clock_mhz),
                            fmt::format("{:.0f}", row.sim_clock_mhz),
                            fmt::format("{:.3f}", row.time_ratio_meas),
                            fmt::format("{:.3f}", row.time_ratio_sim),
                            fmt::format("{:.3f}", row.energy_ratio_meas),
                            fmt::format("{:.3f}", row.energy_ratio_sim)});
        }
        out += fmt::format("{} (GEMM share {:.2f}, fitted to the time curve; limit {:.0f} W)\n",
                           r.name, r.compute_share, r.power_limit_w);
        out += format_table(
            {"locked MHz", "sim MHz", "time meas", "time sim", "energy meas", "energy sim"}, rows);
        out += fmt::format(
            "power at the top clock: {:.0f} W measured, {:.0f} W simulated; energy minimum at "
            "{:.0f} MHz measured, "
            "{:.0f} MHz simulated; mean abs error: time {:.1f} points, energy {:.1f} points\n\n",
            r.power_top_meas_w, r.power_top_sim_w, r.min_energy_clock_meas_mhz,
            r.min_energy_clock_sim_mhz, r.mae_time_pct, r.mae_energy_pct);
    }
    return out;
}

nlohmann::json sweep_json(const std::vector<sim::SweepReport>& reports) {
    nlohmann::json out = nlohmann::json::array();
    for (const sim::SweepReport& r : reports) {
        nlohmann::json rows = nlohmann::json::array();
        for (const sim::SweepRow& row : r.rows) {
            rows.push_back(
                {{"clock_mhz", row.clock_mhz},
                 {"sim_clock_mhz", row.sim_clock_mhz},
                 {"time_ratio",
                  {{"measured", row.time_ratio_meas}, {"predicted", row.time_ratio_sim}}},
                 {"energy_ratio",
                  {{"measured", row.energy_ratio_meas}, {"predicted", row.energy_ratio_sim}}}});
        }
        out.push_back(
            {{"name", r.name},
             {"compute_share", r.compute_share},
             {"power_top_w", {{"measured", r.power_top_meas_w}, {"predicted", r.power_top_sim_w}}},
             {"min_energy_clock_mhz",
              {{"measured", r.min_energy_clock_meas_mhz},
               {"predicted", r.min_energy_clock_sim_mhz}}},
             {"mae_points", {{"time_ratio", r.mae_time_pct}, {"energy_ratio", r.mae_energy_pct}}},
             {"rows", rows}});
    }
    return out;
}

std::string decode_table(const std::vector<sim::DecodeFigureRow>& rows) {
    std::vector<std::vector<std::string>> cells;
    for (const sim::DecodeFigureRow& r : rows) {
        const sim::PublishedDecodeFigure& f = r.published;
        const std::string model = f.model_file.substr(f.model_file.find("__") + 2);
        cells.push_back({f.source,
                         fmt::format("{} {} TP{} B={}", f.gpu, model.substr(0, model.rfind('.')),
                                     f.tp, r.batch),
                         fmt::format("{:.0f}", r.clock_mhz),
                         fmt::format("{:.0f}", f.energy_saving_pct),
                         fmt::format("{:.1f}", r.energy_saving_pct),
                         fmt::format("{:.0f}", f.latency_increase_pct),
                         fmt::format("{:.1f}", r.latency_increase_pct),
                         fmt::format("{:.0f} -> {:.0f}", r.power_default_w, r.power_locked_w)});
    }
    std::string out = format_table({"source", "run", "locked MHz", "saving % pub", "saving % sim",
                                    "ITL +% pub", "ITL +% sim", "W/GPU sim"},
                                   cells);
    out += fmt::format("error (mean |saving| + half mean |ITL|): {:.1f} points ({} figures)\n\n",
                       sim::decode_figure_error(rows), rows.size());
    return out;
}

nlohmann::json decode_json(const std::vector<sim::DecodeFigureRow>& rows) {
    nlohmann::json out = nlohmann::json::array();
    for (const sim::DecodeFigureRow& r : rows) {
        const sim::PublishedDecodeFigure& f = r.published;
        out.push_back(
            {{"source", f.source},
             {"gpu", f.gpu},
             {"model", f.model_file},
             {"tp", f.tp},
             {"batch", r.batch},
             {"clock_mhz", r.clock_mhz},
             {"energy_saving_pct",
              {{"published", f.energy_saving_pct}, {"predicted", r.energy_saving_pct}}},
             {"latency_increase_pct",
              {{"published", f.latency_increase_pct}, {"predicted", r.latency_increase_pct}}},
             {"power_w", {{"default", r.power_default_w}, {"locked", r.power_locked_w}}}});
    }
    return out;
}

std::string serving_table(const std::vector<sim::ServingFigureRow>& rows) {
    std::vector<std::vector<std::string>> cells;
    for (const sim::ServingFigureRow& r : rows) {
        const sim::PublishedServingFigure& f = r.published;
        const std::string model = f.model_file.substr(f.model_file.find("__") + 2);
        const std::string tok_s_pub =
            f.tok_s > 0.0 ? fmt::format("{:.0f}", f.tok_s) : std::string("-");
        const std::string tok_s_err =
            f.tok_s > 0.0 ? fmt::format("{:+.0f}", r.tok_s_error_pct()) : std::string("-");
        cells.push_back(
            {f.source, f.engine,
             fmt::format("{} {}{} TP{} EP{} C={} {}/{}", f.gpu, model.substr(0, model.rfind('.')),
                         f.dtype.empty() ? std::string() : " " + f.dtype, f.tp, f.ep, f.concurrency,
                         f.input_len, f.output_len),
             fmt::format("{:.1f}", f.itl_ms), fmt::format("{:.1f}", r.itl_ms),
             fmt::format("{:+.0f}", r.itl_error_pct()), tok_s_pub, fmt::format("{:.0f}", r.tok_s),
             tok_s_err});
    }
    return format_table({"source", "engine", "run", "ITL ms pub", "ITL ms sim", "ITL err %",
                         "tok/s pub", "tok/s sim", "tok/s err %"},
                        cells) +
           "\n";
}

nlohmann::json serving_json(const std::vector<sim::ServingFigureRow>& rows) {
    nlohmann::json out = nlohmann::json::array();
    for (const sim::ServingFigureRow& r : rows) {
        const sim::PublishedServingFigure& f = r.published;
        nlohmann::json row = {{"source", f.source},
                              {"engine", f.engine},
                              {"gpu", f.gpu},
                              {"model", f.model_file},
                              {"dtype", f.dtype},
                              {"tp", f.tp},
                              {"ep", f.ep},
                              {"concurrency", f.concurrency},
                              {"input_len", f.input_len},
                              {"output_len", f.output_len},
                              {"itl_ms", {{"published", f.itl_ms}, {"predicted", r.itl_ms}}},
                              {"power_per_gpu_w", r.power_per_gpu_w}};
        row["tok_s"] = {
            {"published", f.tok_s > 0.0 ? nlohmann::json(f.tok_s) : nlohmann::json(nullptr)},
            {"predicted", r.tok_s}};
        out.push_back(row);
    }
    return out;
}

std::string calibration_text(const sim::GpuSpec& spec) {
    const sim::GpuCalibration& c = spec.calibration;
    return fmt::format(
        "fitted {} calibration:\n  mem_efficiency {:.4f}\n  compute_efficiency {:.4f}\n  "
        "attention_efficiency {:.4f}\n"
        "  step_overhead_s {:.6g}\n  layer_overhead_s {:.6g}\n  moe_layer_overhead_s {:.6g}\n"
        "  ep_layer_latency_s {:.6g}\n  sample_s_per_vocab {:.6g}\n  mem_power_w {:.2f}\n  "
        "sm_power_w {:.2f}\n"
        "  sm_busy_fraction {:.4f}\n  active_power_w {:.2f}\n  leakage_w {:.2f}\n  voltage_floor "
        "{:.4f}\n"
        "  voltage_floor_clock {:.4f}\n  mem_clock_knee {:.4f}\n\n",
        spec.name, c.mem_efficiency, c.compute_efficiency, c.attention_efficiency,
        c.step_overhead_s, c.layer_overhead_s, c.moe_layer_overhead_s, c.ep_layer_latency_s,
        c.sample_s_per_vocab, c.mem_power_w, c.sm_power_w, c.sm_busy_fraction, c.active_power_w,
        c.leakage_w, c.voltage_floor, c.voltage_floor_clock, c.mem_clock_knee);
}

std::string fidelity_table(const sim::FidelityReport& report) {
    std::vector<std::vector<std::string>> rows;
    for (const sim::FidelityRow& r : report.rows) {
        const sim::MeasuredRun& m = r.measured;
        std::string name = m.model.substr(m.model.find('/') + 1);
        rows.push_back(
            {fmt::format("{} {}x ep{} B={}", name, m.num_gpus, m.ep, m.max_num_seqs),
             fmt::format("{:.0f}", m.tok_s), fmt::format("{:.0f}", r.tok_s),
             fmt::format("{:.3f}", m.j_per_tok), fmt::format("{:.3f}", r.j_per_tok),
             fmt::format("{:.1f}", m.median_itl_ms), fmt::format("{:.1f}", r.median_itl_ms),
             fmt::format("{:.0f}", m.avg_power_w), fmt::format("{:.0f}", r.avg_power_w)});
    }
    std::string out =
        format_table({"run (model, GPUs, EP, max_num_seqs)", "tok/s meas", "tok/s sim",
                      "J/tok meas", "J/tok sim", "ITL ms meas", "ITL ms sim", "W meas", "W sim"},
                     rows);
    out += fmt::format(
        "\nMAPE: tok/s {:.1f} %, J/tok {:.1f} %, median ITL {:.1f} %, power {:.1f} % ({} rows)\n",
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
                        {"measured",
                         {{"tok_s", m.tok_s},
                          {"j_per_tok", m.j_per_tok},
                          {"median_itl_ms", m.median_itl_ms},
                          {"avg_power_w", m.avg_power_w}}},
                        {"predicted",
                         {{"tok_s", r.tok_s},
                          {"j_per_tok", r.j_per_tok},
                          {"median_itl_ms", r.median_itl_ms},
                          {"avg_power_w", r.avg_power_w},
                          {"avg_batch", r.avg_batch}}}});
    }
    return {{"rows", rows},
            {"mape_percent",
             {{"tok_s", report.mape_tok_s},
              {"j_per_tok", report.mape_j_per_tok},
              {"median_itl_ms", report.mape_median_itl},
              {"avg_power_w", report.mape_avg_power}}}};
}

bool wants(const CalibrateOptions& opt, std::string_view source) {
    return opt.source == "all" || opt.source == source;
}

/// ML.ENERGY v3 H100 runs at 700 W.
Status run_mlenergy(const CalibrateOptions& opt, const std::string& shared, sim::GpuSpec& spec,
                    nlohmann::json& json_out, std::string& text_out) {
    const std::string csv =
        opt.csv.empty() ? shared + "/calibration/mlenergy-v3/h100_lm_arena_chat.csv" : opt.csv;
    PALS_ASSIGN_OR_RETURN(std::vector<sim::MeasuredRun> runs, sim::load_measured_runs(csv));
    sim::FidelitySettings settings;
    settings.models_dir = shared + "/models";
    settings.output_lengths = shared + "/calibration/mlenergy-v3/output_length_distributions.json";
    settings.input_len = opt.input_len;
    if (opt.fit) {
        PALS_ASSIGN_OR_RETURN(sim::GpuCalibration fitted,
                              sim::fit_calibration(runs, spec, settings, opt.evaluations,
                                                   sim::published_decode_figures(), opt.fit_power));
        spec.calibration = fitted;
        text_out += calibration_text(spec);
    }
    PALS_ASSIGN_OR_RETURN(sim::FidelityReport report, sim::evaluate_fidelity(runs, spec, settings));
    const sim::CapRangeCheck cap = sim::check_cap_range(spec);
    json_out["mlenergy"] = fidelity_json(report);
    json_out["cap_range"] = {{"power_limit_min_w", cap.power_limit_min_w},
                             {"gemm_power_at_min_clock_w", cap.gemm_power_at_min_clock_w},
                             {"stream_power_at_min_clock_w", cap.stream_power_at_min_clock_w},
                             {"excess_w", cap.excess_w()}};
    text_out += "== ML.ENERGY v3, " + spec.name + " at the default limit (" + csv + ")\n" +
                fidelity_table(report) +
                fmt::format(
                    "lowest limit {:.0f} W at {:.0f} MHz: saturated GEMM {:.0f} W ({}), weight "
                    "streaming {:.0f} W\n\n",
                    cap.power_limit_min_w, spec.sm_clock_min_mhz, cap.gemm_power_at_min_clock_w,
                    cap.excess_w() > 0.0 ? fmt::format("unreachable by {:.0f} W", cap.excess_w())
                                         : std::string("reachable"),
                    cap.stream_power_at_min_clock_w);
    if (opt.max_mape > 0.0 && report.worst_mape() > opt.max_mape) {
        return Status::out_of_range(fmt::format("worst MAPE {:.1f} % exceeds --max-mape {:.1f} %",
                                                report.worst_mape(), opt.max_mape));
    }
    return Status::ok();
}

/// Measured clock sweeps of compute-bound stages.
Status run_sweeps(const CalibrateOptions& opt, const std::string& shared, nlohmann::json& json_out,
                  std::string& text_out) {
    std::vector<std::string> files = opt.sweeps;
    if (files.empty()) {
        for (const char* name : {"gpt3-175b+a100_sxm_bf16.csv", "bloom+a100_sxm_bf16.csv"}) {
            files.push_back(shared + "/calibration/dvfs/" + name);
        }
    }
    std::vector<sim::ClockSweep> sweeps;
    for (const std::string& file : files) {
        PALS_ASSIGN_OR_RETURN(std::vector<sim::ClockSweep> loaded, sim::load_clock_sweeps(file));
        sweeps.insert(sweeps.end(), loaded.begin(), loaded.end());
    }
    PALS_ASSIGN_OR_RETURN(sim::GpuSpec spec,
                          sim::find_gpu_spec(opt.sweep_gpu).with_prefix("--sweep-gpu"));
    if (opt.fit) {
        PALS_ASSIGN_OR_RETURN(
            sim::GpuSpec fitted,
            sim::fit_sweep_calibration(sweeps, spec, opt.sweep_limit_w, opt.evaluations));
        spec = fitted;
        text_out += calibration_text(spec);
    }
    std::vector<sim::SweepReport> reports;
    for (const sim::ClockSweep& sweep : sweeps) {
        reports.push_back(sim::replay_clock_sweep(sweep, spec, opt.sweep_limit_w));
    }
    json_out["clock_sweeps"] = sweep_json(reports);
    text_out +=
        "== Measured clock sweeps, " + spec.name +
        (opt.sweep_limit_w > 0.0 ? fmt::format(" under a {:.0f} W limit\n", opt.sweep_limit_w)
                                 : std::string(" under each sweep's measured top-clock power\n")) +
        sweep_table(reports);
    return Status::ok();
}

/// Published decode figures at a locked clock.
Status run_decode_figures(const std::string& shared, const sim::GpuSpec& spec,
                          nlohmann::json& json_out, std::string& text_out) {
    PALS_ASSIGN_OR_RETURN(
        std::vector<sim::DecodeFigureRow> rows,
        sim::replay_decode_figures(sim::published_decode_figures(), spec, shared + "/models"));
    json_out["decode_figures"] = decode_json(rows);
    text_out += "== Published decode figures at a locked SM clock (" + spec.name +
                " parameters)\n" + decode_table(rows);
    return Status::ok();
}

/// Published serving figures of deployments the calibration rows do not cover (held out).
Status run_serving_figures(const std::string& shared, const sim::GpuSpec& spec,
                           nlohmann::json& json_out, std::string& text_out) {
    PALS_ASSIGN_OR_RETURN(
        std::vector<sim::ServingFigureRow> rows,
        sim::replay_serving_figures(sim::published_serving_figures(), spec, shared + "/models"));
    json_out["serving_figures"] = serving_json(rows);
    text_out += "== Published serving figures, held out (" + spec.name +
                " parameters; closed loop, fixed lengths)\n" + serving_table(rows);
    return Status::ok();
}

Status run_calibrate(const CalibrateOptions& opt) {
    PALS_ASSIGN_OR_RETURN(const std::string shared, data_dir());
    PALS_ASSIGN_OR_RETURN(sim::GpuSpec spec, sim::find_gpu_spec(opt.gpu).with_prefix("--gpu"));
    if (Status st = workload::check_length_text("--input-len", opt.input_len); !st.is_ok()) {
        return st;
    }
    nlohmann::json json_out = nlohmann::json::object();
    std::string text_out;
    Status status = Status::ok();
    if (wants(opt, "mlenergy")) {
        status = run_mlenergy(opt, shared, spec, json_out, text_out);
    }
    if (status.is_ok() && wants(opt, "decode")) {
        status = run_decode_figures(shared, spec, json_out, text_out);
    }
    if (status.is_ok() && wants(opt, "serving")) {
        status = run_serving_figures(shared, spec, json_out, text_out);
    }
    if (status.is_ok() && wants(opt, "sweep")) {
        status = run_sweeps(opt, shared, json_out, text_out);
    }
    if (!status.is_ok() && status.code() != StatusCode::kOutOfRange) {
        return status;
    }
    const std::string text = opt.json ? json_out.dump(2) + "\n" : text_out;
    std::fputs(text.c_str(), stdout);
    return status;
}

}  // namespace

void add_calibrate_command(CLI::App& app, CommandContext& ctx) {
    auto opt = std::make_shared<CalibrateOptions>();
    CLI::App* cmd =
        app.add_subcommand("calibrate",
                           "compare the simulator with measurements, one table per source "
                           "(ML.ENERGY H100 runs, A100 clock sweeps, "
                           "published decode figures, held-out serving figures); --fit refits");
    cmd->add_option("--source", opt->source, "which source: all, mlenergy, sweep, decode, serving")
        ->check(one_of({"all", "mlenergy", "sweep", "decode", "serving"}))
        ->capture_default_str();
    cmd->add_option(
        "--csv", opt->csv,
        "measured runs (default: shared/calibration/mlenergy-v3/h100_lm_arena_chat.csv)");
    cmd->add_option("--gpu", opt->gpu, "GPU type of the ML.ENERGY runs and decode figures")
        ->capture_default_str();
    cmd->add_option("--sweep", opt->sweeps,
                    "clock-sweep CSV (stage,instruction,frequency,time,energy); repeatable "
                    "(default: shared/calibration/dvfs/*.csv)");
    cmd->add_option("--sweep-gpu", opt->sweep_gpu, "GPU type of the clock sweeps")
        ->capture_default_str();
    cmd->add_option(
           "--sweep-limit", opt->sweep_limit_w,
           "power limit the sweeps ran under (W); 0: each sweep's measured power at its top clock")
        ->check(finite_in(0.0, 5000.0, "W"))
        ->capture_default_str();
    cmd->add_flag("--fit", opt->fit,
                  "fit the GPUs' free parameters first (H100: ML.ENERGY rows + decode figures; "
                  "sweep GPU: the sweeps)");
    cmd->add_flag(
        "--fit-power", opt->fit_power,
        "with --fit on the H100: also fit the power split (under the lowest-limit check), not only "
        "the time parameters");
    cmd->add_option("--evaluations", opt->evaluations, "fit budget: full fidelity runs")
        ->check(integer_in(1, 100000))
        ->capture_default_str();
    cmd->add_option("--input-len", opt->input_len, "prompt lengths of the replayed runs")
        ->capture_default_str();
    cmd->add_option("--max-mape", opt->max_mape, "exit 2 if any MAPE exceeds this (percent)")
        ->check(finite_in(0.0, 1e6, "%"));
    cmd->add_flag("--json", opt->json, "print JSON instead of a table");
    cmd->callback([opt, &ctx] {
        const Status status = run_calibrate(*opt);
        ctx.exit_code = status.is_ok() ? 0 : report_error(status);
    });
}

}  // namespace pals::cli
