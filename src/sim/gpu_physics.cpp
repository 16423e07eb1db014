#include "pals/sim/gpu_physics.hpp"

#include <algorithm>
#include <cmath>

namespace pals::sim {

GpuPhysics::GpuPhysics(GpuSpec spec, model::WeightDtype matmul_precision)
    : m_spec(std::move(spec))
    , m_peak_flops(matmul_peak_flops(m_spec, matmul_precision))
    , m_step_mhz(m_spec.sm_clock_step_mhz > 0.0 ? m_spec.sm_clock_step_mhz : 1.0)
    , m_clock_steps(std::max(
          0, static_cast<int>(std::floor(
                 (m_spec.sm_clock_max_mhz - m_spec.sm_clock_min_mhz) / m_step_mhz + 1e-9)))) {}

StepWork StepWork::scaled(double fraction) const {
    StepWork w = *this;
    for (int k = 0; k < w.num_kernels; ++k) {
        w.kernels[static_cast<std::size_t>(k)].flops *= fraction;
        w.kernels[static_cast<std::size_t>(k)].bytes *= fraction;
    }
    w.scaled_busy_s *= fraction;
    w.wait_s *= fraction;
    w.host_s *= fraction;
    return w;
}

double GpuPhysics::clamp_cap(double power_cap_w) const {
    return std::clamp(power_cap_w, m_spec.power_limit_min_w, m_spec.power_limit_max_w);
}

double GpuPhysics::voltage_ratio(double clock_ratio) const {
    const GpuCalibration& cal = m_spec.calibration;
    const double floor_clock = std::clamp(cal.voltage_floor_clock, 0.0, 1.0 - 1e-9);
    if (clock_ratio <= floor_clock) {
        return cal.voltage_floor;
    }
    return cal.voltage_floor +
           (1.0 - cal.voltage_floor) * (clock_ratio - floor_clock) / (1.0 - floor_clock);
}

double GpuPhysics::step_ratio(int k) const {
    if (k >= m_clock_steps) {
        return m_spec.sm_clock_min_mhz / m_spec.sm_clock_max_mhz;
    }
    return (m_spec.sm_clock_max_mhz - k * m_step_mhz) / m_spec.sm_clock_max_mhz;
}

double GpuPhysics::supported_clock_mhz(double mhz) const {
    const double clamped = std::clamp(mhz, m_spec.sm_clock_min_mhz, m_spec.sm_clock_max_mhz);
    const int k =
        static_cast<int>(std::ceil((m_spec.sm_clock_max_mhz - clamped) / m_step_mhz - 1e-9));
    return step_ratio(k) * m_spec.sm_clock_max_mhz;
}

StepOutcome GpuPhysics::evaluate(const StepWork& work, double clock_ratio) const {
    const GpuCalibration& cal = m_spec.calibration;
    const double flops_rate = cal.compute_efficiency * m_peak_flops * clock_ratio;
    const double mem_rate = cal.mem_efficiency * m_spec.hbm_bandwidth_bps *
                            std::min(1.0, clock_ratio / cal.mem_clock_knee);
    double kernel_s = 0.0;
    double total_flops = 0.0;
    double total_bytes = 0.0;
    for (int i = 0; i < work.num_kernels; ++i) {
        const KernelWork& k = work.kernels[static_cast<std::size_t>(i)];
        kernel_s += std::max(k.flops / flops_rate, k.bytes / (mem_rate * k.bandwidth_scale));
        total_flops += k.flops;
        total_bytes += k.bytes;
    }
    const double busy_s = kernel_s + work.scaled_busy_s / clock_ratio;
    const double step_s = busy_s + work.wait_s + work.host_s;
    StepOutcome out;
    out.duration_s = step_s;
    out.clock_ratio = clock_ratio;
    out.sm_clock_mhz = clock_ratio * m_spec.sm_clock_max_mhz;
    if (step_s <= 0.0) {
        out.power_w = m_spec.idle_power_w;
        return out;
    }
    // Power is the replica's average GPU's: with expert parallelism the other ranks wait part of
    // each MoE layer for the busiest one (mean_rank_busy_scale < 1).
    const double rank_scale = work.mean_rank_busy_scale;
    const double u_mem = rank_scale * total_bytes / (m_spec.hbm_bandwidth_bps * step_s);
    const double u_busy = rank_scale * busy_s / step_s;
    const double u_tensor = rank_scale * total_flops / (m_peak_flops * clock_ratio * step_s);
    const double sm_activity =
        cal.sm_busy_fraction * u_busy + (1.0 - cal.sm_busy_fraction) * u_tensor;
    const double v = voltage_ratio(clock_ratio);
    out.power_w = m_spec.idle_power_w + cal.active_power_w +
                  cal.leakage_w * (v - cal.voltage_floor) + cal.mem_power_w * u_mem +
                  cal.sm_power_w * clock_ratio * v * v * sm_activity;
    return out;
}

StepOutcome GpuPhysics::run_step(const StepWork& work, double power_cap_w,
                                 double locked_clock_mhz) const {
    const double cap = clamp_cap(power_cap_w);
    // Supported clocks are f_max - k * step; k_top is the ceiling (f_max or the locked clock).
    int k_top = 0;
    unsigned limits = kClockFree;
    if (locked_clock_mhz > 0.0 && locked_clock_mhz < m_spec.sm_clock_max_mhz) {
        const double mhz = supported_clock_mhz(locked_clock_mhz);
        k_top = static_cast<int>(std::lround((m_spec.sm_clock_max_mhz - mhz) / m_step_mhz));
        limits = kClockLocked;
    }
    StepOutcome top = evaluate(work, step_ratio(k_top));
    top.limits = limits;
    if (top.power_w <= cap) {
        return top;
    }
    // Power rises with the clock: find the highest supported clock whose power fits the cap.
    StepOutcome lowest = evaluate(work, step_ratio(m_clock_steps));
    if (lowest.power_w > cap) {
        lowest.limits = limits | kClockPowerCap | kClockCapAtFloor;  // the firmware can go no lower
        return lowest;
    }
    int fits = m_clock_steps;  // lowest k known to fit
    int over = k_top;          // highest k known not to fit
    StepOutcome best = lowest;
    while (fits - over > 1) {
        const int mid = over + (fits - over) / 2;
        StepOutcome o = evaluate(work, step_ratio(mid));
        if (o.power_w <= cap) {
            fits = mid;
            best = o;
        } else {
            over = mid;
        }
    }
    best.limits = limits | kClockPowerCap;
    return best;
}

}  // namespace pals::sim
