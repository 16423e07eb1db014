#include "pals/sim/dvfs_calibration.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <map>

#include "pals/common/file_util.hpp"
#include "pals/common/log.hpp"
#include "pals/model/model_spec.hpp"
#include "pals/sim/gpu_physics.hpp"
#include "pals/sim/serving_figures.hpp"
#include "pals/sim/simulator.hpp"
#include "sim/csv_fields.hpp"

namespace pals::sim {

namespace {

/// Grid of the stage's GEMM share searched against its time curve.
constexpr double kShareLo = 0.20;
constexpr double kShareHi = 1.00;
constexpr double kShareStep = 0.005;
/// Starting points of the voltage floor clock (f / f_max) in the sweep fit.
constexpr int kFloorClockStarts = 9;
constexpr double kFloorClockLo = 0.45;
constexpr double kFloorClockHi = 0.85;
/// Clocks searched for an "up to X % at minimal loss" figure.
constexpr double kDecodeClockStrideMhz = 45.0;
/// Requests per sequence slot of a decode replay (enough for a steady state).
constexpr int kDecodeRequestsPerSeq = 4;

bool parse_number(std::string_view text, double& out) {
    return detail::parse_field(text, out) && std::isfinite(out);
}

/// The stage as the simulator sees it: `share` of the time at f_max in GEMMs, the rest
/// streaming memory (elementwise ops, norms, optimizer-free activations).
StepWork stage_work(const GpuSpec& gpu, double share, double time_at_fmax_s) {
    const GpuCalibration& cal = gpu.calibration;
    StepWork w;
    w.add(share * time_at_fmax_s * cal.compute_efficiency * gpu.peak_bf16_flops, 0.0);
    w.add(0.0, (1.0 - share) * time_at_fmax_s * cal.mem_efficiency * gpu.hbm_bandwidth_bps);
    return w;
}

struct SweepPrediction {
    std::vector<StepOutcome> outcomes;  ///< one per point
};

SweepPrediction predict(const ClockSweep& sweep, const GpuPhysics& physics, double share,
                        double limit_w) {
    SweepPrediction p;
    const double t_top = sweep.points.front().time_s;
    const StepWork work = stage_work(physics.spec(), share, t_top);
    for (const ClockSweep::Point& pt : sweep.points) {
        p.outcomes.push_back(physics.run_step(work, limit_w, pt.clock_mhz));
    }
    return p;
}

double time_error(const ClockSweep& sweep, const SweepPrediction& p) {
    double err = 0.0;
    const double t0 = p.outcomes.front().duration_s;
    const double m0 = sweep.points.front().time_s;
    for (std::size_t i = 0; i < sweep.points.size(); ++i) {
        err += std::abs(p.outcomes[i].duration_s / t0 - sweep.points[i].time_s / m0);
    }
    return err / static_cast<double>(sweep.points.size());
}

}  // namespace

Result<std::vector<ClockSweep>> load_clock_sweeps(const std::filesystem::path& csv) {
    PALS_ASSIGN_OR_RETURN(std::string text, read_file(csv));
    // instruction -> clock -> (time, energy) summed over stages
    std::map<std::string, std::map<double, std::pair<double, double>>> sums;
    std::map<std::string, std::size_t> column;
    std::size_t pos = 0;
    int line_no = 0;
    std::string_view line;
    while (detail::next_line(text, pos, line)) {
        ++line_no;
        if (line.empty()) {
            continue;
        }
        const auto fields = detail::split_fields(line);
        const std::string where = csv.string() + ":" + std::to_string(line_no);
        if (column.empty()) {
            for (std::size_t i = 0; i < fields.size(); ++i) {
                column[std::string(fields[i])] = i;
            }
            for (const char* name : {"instruction", "frequency", "time", "energy"}) {
                if (!column.contains(name)) {
                    return Status::invalid_argument(where + ": missing column '" + name + "'");
                }
            }
            continue;
        }
        if (fields.size() != column.size()) {
            return Status::invalid_argument(where + ": expected " + std::to_string(column.size()) +
                                            " fields, found " + std::to_string(fields.size()));
        }
        double values[3] = {};
        const char* names[3] = {"frequency", "time", "energy"};
        for (int i = 0; i < 3; ++i) {
            const std::string_view field = fields[column.at(names[i])];
            if (!parse_number(field, values[i]) || values[i] <= 0.0) {
                return Status::invalid_argument(where + ": column '" + names[i] +
                                                "' must be a positive number, got '" +
                                                std::string(field) + "'");
            }
        }
        auto& cell = sums[std::string(fields[column.at("instruction")])][values[0]];
        cell.first += values[1];
        cell.second += values[2];
    }
    if (sums.empty()) {
        return Status::invalid_argument(csv.string() + ": no data rows");
    }
    std::vector<ClockSweep> out;
    for (const auto& [instruction, by_clock] : sums) {
        ClockSweep sweep;
        sweep.name = csv.stem().string() + " " + instruction;
        for (auto it = by_clock.rbegin(); it != by_clock.rend(); ++it) {
            sweep.points.push_back({it->first, it->second.first, it->second.second});
        }
        if (sweep.points.size() < 2) {
            return Status::invalid_argument(csv.string() + ": '" + instruction +
                                            "' has fewer than two clocks");
        }
        out.push_back(std::move(sweep));
    }
    return out;
}

SweepReport replay_clock_sweep(const ClockSweep& sweep, const GpuSpec& gpu, double power_limit_w) {
    if (power_limit_w <= 0.0) {
        power_limit_w = sweep.points.front().energy_j / sweep.points.front().time_s;
    }
    GpuSpec spec = gpu;
    spec.power_limit_max_w = std::max(spec.power_limit_max_w, power_limit_w);
    const GpuPhysics physics(spec);
    // The GEMM share is a property of the workload: fit it to the time curve alone.
    double best_share = kShareLo;
    double best_err = std::numeric_limits<double>::infinity();
    for (double share = kShareLo; share <= kShareHi + 1e-9; share += kShareStep) {
        const double err = time_error(sweep, predict(sweep, physics, share, power_limit_w));
        if (err < best_err) {
            best_err = err;
            best_share = share;
        }
    }
    const SweepPrediction p = predict(sweep, physics, best_share, power_limit_w);
    SweepReport r;
    r.name = sweep.name;
    r.power_limit_w = power_limit_w;
    r.compute_share = best_share;
    const ClockSweep::Point& top = sweep.points.front();
    const StepOutcome& sim_top = p.outcomes.front();
    r.power_top_meas_w = top.energy_j / top.time_s;
    r.power_top_sim_w = sim_top.power_w;
    double min_meas = std::numeric_limits<double>::infinity();
    double min_sim = std::numeric_limits<double>::infinity();
    for (std::size_t i = 0; i < sweep.points.size(); ++i) {
        const ClockSweep::Point& m = sweep.points[i];
        const StepOutcome& o = p.outcomes[i];
        SweepRow row;
        row.clock_mhz = m.clock_mhz;
        row.sim_clock_mhz = o.sm_clock_mhz;
        row.time_ratio_meas = m.time_s / top.time_s;
        row.time_ratio_sim = o.duration_s / sim_top.duration_s;
        row.energy_ratio_meas = m.energy_j / top.energy_j;
        row.energy_ratio_sim = (o.power_w * o.duration_s) / (sim_top.power_w * sim_top.duration_s);
        r.mae_time_pct += std::abs(row.time_ratio_sim - row.time_ratio_meas) * 100.0;
        r.mae_energy_pct += std::abs(row.energy_ratio_sim - row.energy_ratio_meas) * 100.0;
        if (row.energy_ratio_meas < min_meas) {
            min_meas = row.energy_ratio_meas;
            r.min_energy_clock_meas_mhz = m.clock_mhz;
        }
        if (row.energy_ratio_sim < min_sim) {
            min_sim = row.energy_ratio_sim;
            r.min_energy_clock_sim_mhz = m.clock_mhz;
        }
        r.rows.push_back(row);
    }
    const auto n = static_cast<double>(r.rows.size());
    r.mae_time_pct /= n;
    r.mae_energy_pct /= n;
    return r;
}

std::span<const PublishedDecodeFigure> published_decode_figures() {
    static const std::vector<PublishedDecodeFigure> kFigures = [] {
        // arXiv 2605.11999 (Ma et al., "The Illusion of Power Capping in LLM Decode", H200):
        // locking the SM clock recovers "up to 32 % of decode energy at minimal throughput
        // loss". The paper's clock and batch are not in its abstract: read as the best saving
        // over batches 1-32 whose ITL rises by at most 5 %; its GQA model is stood in for by
        // Llama-3.1-8B (GQA), pure decode (short prompts, long outputs).
        PublishedDecodeFigure h200;
        h200.source = "arXiv 2605.11999";
        h200.gpu = "H200";
        h200.model_file = "meta-llama__Llama-3.1-8B-Instruct.json";
        h200.batches = {1, 8, 32};
        h200.max_latency_increase_pct = 5.0;
        h200.energy_saving_pct = 32.0;
        h200.latency_increase_pct = 5.0;
        return std::vector<PublishedDecodeFigure>{h200};
    }();
    return kFigures;
}

namespace {

Result<ClosedLoopResult> run_decode(const model::ModelSpec& model, const GpuSpec& gpu,
                                    const PublishedDecodeFigure& f, int batch,
                                    double locked_clock_mhz) {
    ClosedLoopSetup setup;
    setup.model = model;
    setup.gpu = gpu;
    setup.tp = f.tp;
    setup.concurrency = batch;
    setup.requests_per_seq = kDecodeRequestsPerSeq;
    setup.input_len = f.input_len;
    setup.output_len = f.output_len;
    setup.locked_clock_mhz = locked_clock_mhz;
    PALS_ASSIGN_OR_RETURN(ClosedLoopResult run, run_closed_loop(setup).with_prefix(f.source));
    return run;
}

}  // namespace

Result<std::vector<DecodeFigureRow>> replay_decode_figures(
    std::span<const PublishedDecodeFigure> figures, const GpuSpec& gpu_for_h100_family,
    const std::filesystem::path& models_dir) {
    std::vector<DecodeFigureRow> rows;
    for (const PublishedDecodeFigure& f : figures) {
        PALS_ASSIGN_OR_RETURN(GpuSpec named, figure_gpu(f.gpu, gpu_for_h100_family, f.source));
        const GpuSpec& gpu = named;
        PALS_ASSIGN_OR_RETURN(
            model::ModelSpec model,
            model::load_model_spec(models_dir / f.model_file).with_prefix(f.source));
        const GpuPhysics physics(gpu);
        std::vector<double> clocks;
        if (f.max_latency_increase_pct > 0.0) {
            for (double mhz = gpu.sm_clock_max_mhz - kDecodeClockStrideMhz;
                 mhz >= gpu.sm_clock_min_mhz; mhz -= kDecodeClockStrideMhz) {
                clocks.push_back(physics.supported_clock_mhz(mhz));
            }
        } else {
            clocks.push_back(f.locked_clock_mhz > 0.0
                                 ? physics.supported_clock_mhz(f.locked_clock_mhz)
                                 : gpu.sm_clock_min_mhz);
        }
        DecodeFigureRow best;
        best.published = f;
        best.energy_saving_pct = -std::numeric_limits<double>::infinity();
        for (const int batch : f.batches) {
            PALS_ASSIGN_OR_RETURN(ClosedLoopResult base, run_decode(model, gpu, f, batch, 0.0));
            for (const double clock : clocks) {
                PALS_ASSIGN_OR_RETURN(ClosedLoopResult locked,
                                      run_decode(model, gpu, f, batch, clock));
                const double saving = (1.0 - locked.j_per_token / base.j_per_token) * 100.0;
                const double slower = (locked.median_itl_s / base.median_itl_s - 1.0) * 100.0;
                if (f.max_latency_increase_pct > 0.0 && slower > f.max_latency_increase_pct) {
                    continue;
                }
                if (saving > best.energy_saving_pct) {
                    best.batch = batch;
                    best.clock_mhz = clock;
                    best.energy_saving_pct = saving;
                    best.latency_increase_pct = slower;
                    best.power_default_w = base.power_per_gpu_w;
                    best.power_locked_w = locked.power_per_gpu_w;
                }
            }
        }
        if (!std::isfinite(best.energy_saving_pct)) {
            best.energy_saving_pct = 0.0;  // no clock within the latency bound: nothing saved
            best.clock_mhz = gpu.sm_clock_max_mhz;
        }
        rows.push_back(best);
    }
    return rows;
}

double decode_figure_error(const std::vector<DecodeFigureRow>& rows) {
    if (rows.empty()) {
        return 0.0;
    }
    double err = 0.0;
    for (const DecodeFigureRow& r : rows) {
        err += std::abs(r.energy_saving_pct - r.published.energy_saving_pct) +
               0.5 * std::abs(r.latency_increase_pct - r.published.latency_increase_pct);
    }
    return err / static_cast<double>(rows.size());
}

Result<GpuSpec> coordinate_search(const GpuSpec& start, std::span<const FitParam> params,
                                  const std::function<Result<double>(const GpuSpec&)>& score,
                                  int evaluations) {
    GpuSpec best = start;
    for (const FitParam& p : params) {
        double& value = best.calibration.*(p.field);
        value = std::clamp(value, p.lo, p.hi);
    }
    PALS_ASSIGN_OR_RETURN(double first, score(best));
    double best_score = first;
    int used = 1;
    double step = 0.2;
    while (used < evaluations && step > 0.005) {
        bool improved = false;
        for (const FitParam& p : params) {
            for (const double direction : {1.0, -1.0}) {
                if (used >= evaluations) {
                    break;
                }
                GpuSpec candidate = best;
                double& value = candidate.calibration.*(p.field);
                const double base = value == 0.0 ? p.hi * 0.01 : value;
                value = std::clamp(base * (1.0 + direction * step), p.lo, p.hi);
                Result<double> s = score(candidate);
                ++used;
                if (!s.is_ok()) {
                    return s.status();
                }
                if (s.value() < best_score) {
                    best_score = s.value();
                    best = candidate;
                    improved = true;
                    PALS_LOG_INFO("calibrate: {} -> {:.6g} (score {:.3f}, eval {})", p.name, value,
                                  best_score, used);
                    break;
                }
            }
        }
        if (!improved) {
            step /= 2.0;
        }
    }
    return best;
}

Result<GpuSpec> fit_sweep_calibration(const std::vector<ClockSweep>& sweeps, const GpuSpec& start,
                                      double power_limit_w, int evaluations) {
    // Compute-bound stages: the busy fraction of memory-bound kernels is not identified here.
    static constexpr std::array<FitParam, 5> kParams = {{
        {"sm_power_w", &GpuCalibration::sm_power_w, 50.0, 2000.0},
        // Bounded as on the H100 (calibration.cpp): a loaded A100 holds its 100 W minimum limit.
        {"active_power_w", &GpuCalibration::active_power_w, 0.0, 25.0},
        {"leakage_w", &GpuCalibration::leakage_w, 0.0, 400.0},
        {"voltage_floor", &GpuCalibration::voltage_floor, 0.3, 1.0},
        {"voltage_floor_clock", &GpuCalibration::voltage_floor_clock, 0.2, 0.95},
    }};
    auto score = [&](const GpuSpec& gpu) -> Result<double> {
        double s = 0.0;
        for (const ClockSweep& sweep : sweeps) {
            const SweepReport r = replay_clock_sweep(sweep, gpu, power_limit_w);
            s += r.mae_time_pct + r.mae_energy_pct +
                 std::abs(r.power_top_sim_w - r.power_top_meas_w) / r.power_top_meas_w * 100.0;
        }
        return s / static_cast<double>(sweeps.size());
    };
    // The floor clock moves the curve's kink, where a local search stalls: start from a grid.
    GpuSpec best = start;
    double best_score = std::numeric_limits<double>::infinity();
    const int per_start = std::max(1, evaluations / kFloorClockStarts);
    for (int i = 0; i < kFloorClockStarts; ++i) {
        GpuSpec from = start;
        from.calibration.voltage_floor_clock =
            kFloorClockLo +
            (kFloorClockHi - kFloorClockLo) * i / static_cast<double>(kFloorClockStarts - 1);
        PALS_ASSIGN_OR_RETURN(GpuSpec fitted, coordinate_search(from, kParams, score, per_start));
        Result<double> s = score(fitted);
        if (s.is_ok() && s.value() < best_score) {
            best_score = s.value();
            best = fitted;
        }
    }
    return best;
}

}  // namespace pals::sim
