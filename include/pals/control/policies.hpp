#pragma once
/// @file policies.hpp
/// @brief PALS's policy and the baselines it is compared with, all behind control::Policy so
/// they run in the same loop (DESIGN.md 1.5, issue "baselines in the same code path").
///
/// | name          | power cap (per GPU)                   | batch cap                 |
/// |---------------|---------------------------------------|---------------------------|
/// | default       | the GPU's maximum; ignores the budget | launch max_num_seqs       |
/// | cap-only      | budget / GPUs                         | launch max_num_seqs       |
/// | batch-only    | min(max, budget / GPUs)               | AIMD on latency and queue |
/// | clock-only    | budget / GPUs, SM clock locked as low as latency allows (VoltanaLLM style) |
/// launch | | fixed         | a given (cap, batch) point (static oracle candidates) |   | | pals |
/// model-driven (cap, batch) with feedback corrections (pals_policy.hpp)      |   |

#include <memory>
#include <string>
#include <vector>

#include "pals/control/controller.hpp"

namespace pals::control {

/// Feedback on the locked SM clock (VoltanaLLM's idea): lower it while latency has slack and
/// the queue does not grow, raise it at once when latency nears its SLO. Used by clock-only and,
/// below the cap the model picks, by PALS (decode barely slows at lower clocks).
class ClockTrimmer {
public:
    /// Latency is comfortable below `comfortable` x its SLO for ITL and (comfortable - 0.2) x
    /// its SLO for TTFT, and at risk above `at_risk` x its SLO, or when the queue grows.
    explicit ClockTrimmer(double comfortable = 0.7, double at_risk = 0.9)
        : m_comfortable(comfortable), m_at_risk(at_risk) {}
    /// The clock (MHz) to lock for this group now, and why.
    double update(const Observation& o, const GroupObservation& g, std::string& why);

private:
    double m_comfortable;
    double m_at_risk;
    double m_clock_mhz = 0.0;
};

/// The per-GPU cap a budget allows when shared evenly: budget / total GPUs, in the cap range.
[[nodiscard]] double even_share_cap_w(const Observation& o);

[[nodiscard]] std::unique_ptr<Policy> make_default_policy();
[[nodiscard]] std::unique_ptr<Policy> make_cap_only_policy();
[[nodiscard]] std::unique_ptr<Policy> make_batch_only_policy();
[[nodiscard]] std::unique_ptr<Policy> make_clock_only_policy();
/// Holds every group at (cap_w, batch_cap), within the budget.
[[nodiscard]] std::unique_ptr<Policy> make_fixed_policy(std::string name, double cap_w,
                                                        int batch_cap);

}  // namespace pals::control
