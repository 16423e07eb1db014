#include "pals/sim/gpu_physics.hpp"

#include <algorithm>
#include <cmath>

namespace pals::sim {

namespace {
/// Bisection steps for the cap-limited clock: 2^-12 of the clock range is under 1 MHz.
constexpr int kClockSearchSteps = 12;
}  // namespace

GpuPhysics::GpuPhysics(GpuSpec spec, bool fp8_compute)
    : m_spec(std::move(spec))
    , m_peak_flops(fp8_compute ? m_spec.peak_fp8_flops : m_spec.peak_bf16_flops)
    , m_clock_ratio_min(m_spec.sm_clock_min_mhz / m_spec.sm_clock_max_mhz) {}

double GpuPhysics::clamp_cap(double power_cap_w) const {
    return std::clamp(power_cap_w, m_spec.power_limit_min_w, m_spec.power_limit_max_w);
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
    const double u_mem = total_bytes / (m_spec.hbm_bandwidth_bps * step_s);
    const double u_busy = busy_s / step_s;
    const double u_tensor = total_flops / (m_peak_flops * clock_ratio * step_s);
    const double sm_activity = cal.sm_busy_fraction * u_busy + (1.0 - cal.sm_busy_fraction) * u_tensor;
    out.power_w = m_spec.idle_power_w + cal.mem_power_w * u_mem +
                  cal.sm_power_w * std::pow(clock_ratio, cal.clock_exponent) * sm_activity;
    return out;
}

StepOutcome GpuPhysics::run_step(const StepWork& work, double power_cap_w,
                                 double locked_clock_mhz) const {
    const double cap = clamp_cap(power_cap_w);
    double hi = 1.0;
    if (locked_clock_mhz > 0.0) {
        hi = std::clamp(locked_clock_mhz / m_spec.sm_clock_max_mhz, m_clock_ratio_min, 1.0);
    }
    StepOutcome top = evaluate(work, hi);
    if (top.power_w <= cap) {
        return top;
    }
    // Power rises with the clock: find the largest clock whose power fits the cap.
    double lo = m_clock_ratio_min;
    StepOutcome best = evaluate(work, lo);
    if (best.power_w > cap) {
        return best;  // even the lowest clock exceeds the cap: the firmware can go no lower
    }
    for (int i = 0; i < kClockSearchSteps; ++i) {
        const double mid = 0.5 * (lo + hi);
        StepOutcome o = evaluate(work, mid);
        if (o.power_w <= cap) {
            lo = mid;
            best = o;
        } else {
            hi = mid;
        }
    }
    return best;
}

}  // namespace pals::sim
