#pragma once
/// @file gpu_spec.hpp
/// @brief Datasheet figures of the GPUs the simulator models, and the calibrated efficiency and
/// power parameters of its physics (docs/gpus.md lists the sources).

#include <span>
#include <string>
#include <string_view>

#include "pals/common/status.hpp"
#include "pals/model/model_spec.hpp"

namespace pals::sim {

/// The few free parameters of the step-time and power model, fitted per GPU type on measured
/// runs (`pals calibrate`). The same values serve every model: nothing here is per model.
struct GpuCalibration {
    double mem_efficiency = 0.8;         ///< achieved / peak HBM bandwidth for weight streaming
    double compute_efficiency = 0.7;     ///< achieved / peak tensor throughput for large GEMMs
    double attention_efficiency = 0.6;   ///< achieved / peak HBM bandwidth of paged attention
    double step_overhead_s = 1.5e-3;     ///< per engine step, not scaled by clocks (CPU, launches)
    double layer_overhead_s = 8e-6;      ///< per layer per step (kernel launches, small ops)
    double moe_layer_overhead_s = 2e-5;  ///< per MoE layer per step (routing, permute, combine)
    double ep_layer_latency_s = 2e-5;    ///< per MoE layer per step, per EP collective (two:
                                         ///< dispatch, combine) and per doubling of EP
    double sample_s_per_vocab = 2e-10;   ///< per sequence per vocabulary entry at f_max
                                         ///< (logits processing, top-p/top-k sampling)
    double mem_power_w = 150.0;          ///< HBM + interface power at full bandwidth
    double sm_power_w = 450.0;           ///< SM dynamic power at f_max and V_max, tensor cores
                                         ///< saturated; scales as f x V(f)^2 x activity
    double sm_busy_fraction = 0.5;       ///< SM power drawn by a busy, memory-bound kernel, as a
                                         ///< fraction of sm_power_w (issue, load/store units)
    double active_power_w = 0.0;         ///< drawn above idle by a GPU serving steps, whatever
                                         ///< its clock (P0 state: uncore, links, regulators)
    double leakage_w = 0.0;              ///< leakage at V_max above its value at the voltage floor;
                                         ///< scales with V(f)
    double voltage_floor = 0.7;          ///< V at and below the floor clock, relative to V(f_max)
    double voltage_floor_clock = 0.5;    ///< f / f_max below which the voltage stays at the floor
    double mem_clock_knee = 0.45;        ///< below this f/f_max the SMs cannot keep HBM saturated
};

/// One GPU model. Throughputs are dense (no sparsity), per GPU, SI units.
struct GpuSpec {
    std::string name;              ///< canonical name, e.g. "H100-SXM"
    double peak_bf16_flops = 0;    ///< FLOP/s
    double peak_fp8_flops = 0;     ///< FLOP/s; equal to bf16 where the GPU has no FP8 tensor cores
    double peak_int8_flops = 0;    ///< OP/s of the INT8 tensor cores
    double hbm_bandwidth_bps = 0;  ///< bytes/s
    double hbm_bytes = 0;          ///< bytes
    double nvlink_bandwidth_bps = 0;  ///< bytes/s per direction
    /// Latency of a small all-reduce over the NVLink switch: base + 2 (ranks - 1) x hop, the
    /// form of NCCL's ring latency model. Base is NCCL's ring-LL base latency; the hop is fitted
    /// to measured H100 DGX all-reduces at 2, 4 and 8 ranks (docs/gpus.md).
    double allreduce_base_latency_s = 6.6e-6;
    double allreduce_hop_latency_s = 0.94e-6;
    double power_limit_min_w = 0;
    double power_limit_max_w = 0;
    double power_limit_default_w = 0;
    double sm_clock_max_mhz = 0;
    double sm_clock_min_mhz = 0;
    double sm_clock_step_mhz = 15;  ///< supported SM clocks: max - k x step, down to min
    double idle_power_w = 0;
    GpuCalibration calibration;
};

/// The built-in GPU table (H100-SXM, H800, H200, A100-40GB, A100-80GB, B200).
[[nodiscard]] std::span<const GpuSpec> gpu_specs();

/// The dense tensor-core peak for matmuls in `precision` (bf16, FP8 or INT8) on `spec`.
[[nodiscard]] double matmul_peak_flops(const GpuSpec& spec, model::WeightDtype precision);

/// Latency of one small all-reduce over `ranks` GPUs (0 for one rank).
[[nodiscard]] double allreduce_latency_s(const GpuSpec& spec, int ranks);

/// Looks up a GPU by name, case-insensitively; accepts aliases ("h100" = "H100-SXM",
/// "a100" = "A100-80GB"). The error lists the known names.
[[nodiscard]] Result<GpuSpec> find_gpu_spec(std::string_view name);

}  // namespace pals::sim
