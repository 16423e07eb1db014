#pragma once
/// @file gpu_physics.hpp
/// @brief Step time, SM clock and power of one GPU under a power cap (DESIGN.md 1.3).
///
/// Time: each kernel is a roofline, max(FLOPs / (eta_c * F * r), bytes / (eta_m * BW * m(r))),
/// where r = f / f_max and m(r) = min(1, r / knee): HBM bandwidth does not follow the SM clock
/// until the clock is too low to issue enough loads. Communication and launch time are not
/// scaled by the clock; the per-step host time leaves the GPU waiting.
///
/// Voltage: v(r) = V(f) / V(f_max) falls linearly with the clock from 1 at f_max to the floor
/// v0 at r0, and stays at v0 below: there the clock falls without the voltage.
///
/// Power (average over the step):
///   P(r) = P_idle + P_active + P_leak * (v(r) - v0) + P_mem * u_mem
///          + P_sm * r * v(r)^2 * (a * u_busy + (1 - a) * u_tensor)
/// with u_mem the achieved fraction of peak bandwidth, u_busy the fraction of the step the SMs
/// run kernels, u_tensor the fraction of tensor peak (at clock r) achieved. Above the floor,
/// dynamic power falls about as f^3; below it, only as f.
///
/// Cap enforcement: the firmware runs at the largest supported clock (f_max - k * step) whose
/// power fits the cap, as NVIDIA's power controller settles; a locked clock bounds it further.
/// The outcome says what held the clock down, which NVML reports as clocks-event reasons (SW
/// power cap; HW slowdown when even the lowest clock exceeds the cap). Thread-safety: immutable
/// after construction.

#include <array>

#include "pals/sim/gpu_spec.hpp"

namespace pals::sim {

/// One kernel class of a step: its FLOPs and the bytes it moves through HBM, on one GPU.
struct KernelWork {
    double flops = 0.0;
    double bytes = 0.0;
    double bandwidth_scale = 1.0;  ///< achieved bandwidth relative to weight streaming
};

/// The work one GPU does in one engine step.
struct StepWork {
    static constexpr int kMaxKernels = 4;
    std::array<KernelWork, kMaxKernels> kernels{};
    int num_kernels = 0;
    double scaled_busy_s = 0.0;  ///< SM-bound time at f_max that stretches as f_max / f
    double wait_s = 0.0;         ///< time not scaled by clocks with SMs idle (collectives, gaps)
    double host_s = 0.0;         ///< host-side time per step while the GPU waits
    /// SM-busy time of the replica's average GPU over that of this (busiest) GPU, at f_max, in
    /// (0, 1]; 1 without expert parallelism. With EP the busiest rank sets the step time and
    /// the others idle-wait part of each MoE layer: average power over the replica's GPUs
    /// should scale the busy/tensor activity by this (set by StepCostModel; not yet consumed).
    double mean_rank_busy_scale = 1.0;

    void add(double flops, double bytes, double bandwidth_scale = 1.0) {
        kernels[static_cast<std::size_t>(num_kernels++)] =
            KernelWork{flops, bytes, bandwidth_scale};
    }
    /// The share `fraction` (in [0, 1]) of this work: what is left of a step that far from its
    /// end, when its limits change in flight.
    [[nodiscard]] StepWork scaled(double fraction) const;
};

/// What held the SM clock below f_max during a step (a bit mask).
enum ClockLimit : unsigned {
    kClockFree = 0,
    kClockLocked = 1U << 0,      ///< a locked clock (nvidia-smi -lgc) set the ceiling
    kClockPowerCap = 1U << 1,    ///< the power cap lowered the clock (NVML: SW power cap)
    kClockCapAtFloor = 1U << 2,  ///< the cap is not met even at the lowest clock (HW slowdown)
};

/// What a step took on one GPU.
struct StepOutcome {
    double duration_s = 0.0;
    double power_w = 0.0;      ///< average over the step
    double clock_ratio = 1.0;  ///< f / f_max
    double sm_clock_mhz = 0.0;
    unsigned limits = kClockFree;  ///< ClockLimit bits
};

/// The GPU model: one per GPU type and compute precision.
class GpuPhysics {
public:
    /// @param matmul_precision selects the tensor-core peak (bf16, FP8 or INT8).
    explicit GpuPhysics(GpuSpec spec,
                        model::WeightDtype matmul_precision = model::WeightDtype::kBf16);

    /// Runs `work` under `power_cap_w` (clamped to the spec's range). `locked_clock_mhz` > 0
    /// caps the SM clock as `nvidia-smi -lgc` would (rounded down to a supported clock).
    [[nodiscard]] StepOutcome run_step(const StepWork& work, double power_cap_w,
                                       double locked_clock_mhz = 0.0) const;

    /// Duration and power of `work` at a fixed clock ratio r in (0, 1].
    [[nodiscard]] StepOutcome evaluate(const StepWork& work, double clock_ratio) const;

    [[nodiscard]] double idle_power_w() const { return m_spec.idle_power_w; }
    [[nodiscard]] const GpuSpec& spec() const { return m_spec; }
    [[nodiscard]] double peak_flops() const { return m_peak_flops; }
    /// Clamps a requested cap to [power_limit_min_w, power_limit_max_w].
    [[nodiscard]] double clamp_cap(double power_cap_w) const;
    /// v(r): core voltage at clock ratio r relative to the voltage at f_max.
    [[nodiscard]] double voltage_ratio(double clock_ratio) const;
    /// The highest supported SM clock at or below `mhz` (within [min, max]).
    [[nodiscard]] double supported_clock_mhz(double mhz) const;

private:
    /// Supported clock k steps below f_max, as a ratio.
    [[nodiscard]] double step_ratio(int k) const;

    GpuSpec m_spec;
    double m_peak_flops;
    double m_step_mhz;  ///< spacing of supported clocks
    int m_clock_steps;  ///< supported clocks below f_max down to f_min
};

}  // namespace pals::sim
