#include "pals/sim/gpu_spec.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <string>

namespace pals::sim {

namespace {

constexpr double kTera = 1e12;
constexpr double kGiga = 1e9;

/// Time parameters fitted with `pals calibrate --fit --evaluations 300` on shared/calibration/
/// mlenergy-v3/h100_lm_arena_chat.csv. The power split is the one set against the 700 W rows and
/// the published decode figure: a fit of it that keeps the lowest limit reachable costs the 10 %
/// bound (`--fit-power`, docs/fidelity.md). Other GPUs carry the same efficiencies; their power
/// terms scale with TDP.
GpuCalibration h100_calibration() {
    GpuCalibration c;
    c.mem_efficiency = 0.9216;
    c.compute_efficiency = 0.7185;
    c.attention_efficiency = 0.5735;
    c.step_overhead_s = 0.00054601;
    c.layer_overhead_s = 4.41896e-05;
    c.moe_layer_overhead_s = 1.30221e-06;
    c.ep_layer_latency_s = 3.36141e-05;
    c.sample_s_per_vocab = 3.456e-10;
    c.mem_power_w = 240;
    c.sm_power_w = 850;
    c.sm_busy_fraction = 0.32;
    c.active_power_w = 30.0;
    c.leakage_w = 57.6;
    // Assumed (docs/gpus.md): 685 mV measured at 345 MHz over an assumed 1.0 V at 1980 MHz; the
    // floor at the base clock 1590 MHz, as the A100's sweep fit puts its floor at its base clock.
    c.voltage_floor = 0.685;
    c.voltage_floor_clock = 1590.0 / 1980.0;
    // Assumed: streaming holds full bandwidth down to ~38 % of f_max (research notes).
    c.mem_clock_knee = 0.38;
    return c;
}

/// Scales the H100's power terms to a GPU of another board power.
GpuCalibration scaled_calibration(double tdp_w, double idle_w) {
    GpuCalibration c = h100_calibration();
    constexpr double kH100DynamicW = 700.0 - 75.0;
    const double scale = (tdp_w - idle_w) / kH100DynamicW;
    c.mem_power_w *= scale;
    c.sm_power_w *= scale;
    c.active_power_w *= scale;
    c.leakage_w *= scale;
    return c;
}

/// The A100's own voltage-frequency curve and power split, fitted on the measured clock sweeps
/// (`pals calibrate --source sweep --fit`, docs/fidelity.md); efficiencies stay the H100's.
GpuCalibration a100_calibration(double tdp_w, double idle_w) {
    GpuCalibration c = scaled_calibration(tdp_w, idle_w);
    c.sm_power_w = 587.52;
    c.active_power_w = 21.94;
    c.leakage_w = 86.70;
    c.voltage_floor = 0.7356;
    c.voltage_floor_clock = 0.79;
    c.mem_clock_knee = 0.38;
    return c;
}

GpuSpec make(std::string name, double bf16_tflops, double fp8_tflops, double int8_tops,
             double hbm_tbps, double hbm_gb, double nvlink_gbps_per_dir, double limit_min_w,
             double limit_max_w, double clock_max_mhz, double clock_min_mhz, double idle_w) {
    GpuSpec s;
    s.name = std::move(name);
    s.peak_bf16_flops = bf16_tflops * kTera;
    s.peak_fp8_flops = fp8_tflops * kTera;
    s.peak_int8_flops = int8_tops * kTera;
    s.hbm_bandwidth_bps = hbm_tbps * kTera;
    s.hbm_bytes = hbm_gb * kGiga;
    s.nvlink_bandwidth_bps = nvlink_gbps_per_dir * kGiga;
    s.power_limit_min_w = limit_min_w;
    s.power_limit_max_w = limit_max_w;
    s.power_limit_default_w = limit_max_w;
    s.sm_clock_max_mhz = clock_max_mhz;
    s.sm_clock_min_mhz = clock_min_mhz;
    s.idle_power_w = idle_w;
    s.calibration = scaled_calibration(limit_max_w, idle_w);
    return s;
}

GpuSpec with_calibration(GpuSpec spec, const GpuCalibration& calibration) {
    spec.calibration = calibration;
    return spec;
}

const std::array<GpuSpec, 6>& table() {
    // Sources: docs/gpus.md. Throughputs dense (no sparsity); NVLink per direction.
    static const std::array<GpuSpec, 6> kTable = {
        make("H100-SXM", 989.4, 1978.9, 1978.9, 3.35, 80, 450, 200, 700, 1980, 345, 75),
        make("H800", 989.4, 1978.9, 1978.9, 3.35, 80, 200, 200, 700, 1980, 345, 75),
        make("H200", 989.4, 1978.9, 1978.9, 4.8, 141, 450, 200, 700, 1980, 345, 75),
        with_calibration(make("A100-40GB", 312, 312, 624, 1.555, 40, 300, 100, 400, 1410, 210, 55),
                         a100_calibration(400, 55)),
        with_calibration(make("A100-80GB", 312, 312, 624, 2.039, 80, 300, 100, 400, 1410, 210, 60),
                         a100_calibration(400, 60)),
        make("B200", 2250, 4500, 4500, 8.0, 180, 900, 200, 1000, 1965, 600, 140),
    };
    return kTable;
}

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

}  // namespace

std::span<const GpuSpec> gpu_specs() {
    return table();
}

double allreduce_latency_s(const GpuSpec& spec, int ranks) {
    if (ranks <= 1) {
        return 0.0;
    }
    return spec.allreduce_base_latency_s + 2.0 * (ranks - 1.0) * spec.allreduce_hop_latency_s;
}

double matmul_peak_flops(const GpuSpec& spec, model::WeightDtype precision) {
    switch (precision) {
        case model::WeightDtype::kFp8:
            return spec.peak_fp8_flops;
        case model::WeightDtype::kInt8:
            return spec.peak_int8_flops;
        case model::WeightDtype::kBf16:
            break;
    }
    return spec.peak_bf16_flops;
}

Result<GpuSpec> find_gpu_spec(std::string_view name) {
    std::string key = lower(name);
    if (key == "h100" || key == "h100-sxm5" || key == "h100sxm") {
        key = "h100-sxm";
    } else if (key == "a100") {
        key = "a100-80gb";
    } else if (key == "h200-sxm") {
        key = "h200";
    } else if (key == "h800-sxm") {
        key = "h800";
    }
    std::string known;
    for (const GpuSpec& spec : table()) {
        if (lower(spec.name) == key) {
            return spec;
        }
        known += (known.empty() ? "" : ", ") + spec.name;
    }
    return Status::invalid_argument("unknown GPU '" + std::string(name) + "' (known: " + known +
                                    ")");
}

}  // namespace pals::sim
