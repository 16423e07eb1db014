#pragma once
/// @file power_model.hpp
/// @brief The fitted power-performance model of one GPU group (a replica: its TP/EP GPUs) over
/// (power cap per GPU, batch cap), per workload mix, and the queries the controller makes of it
/// many times per second (DESIGN.md 1.4).
///
/// Units: caps in W per GPU; power in W for all GPUs of the group; throughput in output
/// tokens/s of the group; latencies in seconds.
/// Thread-safety: const methods are thread-safe.

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pals/common/status.hpp"
#include "pals/profile/profile_store.hpp"

namespace pals::profile {

/// What the model predicts at one (cap, batch cap) point of one workload.
struct Prediction {
    double power_cap_w = 0.0;  ///< per GPU
    int batch_cap = 0;
    double throughput_tok_s = 0.0;
    double power_w = 0.0;  ///< all GPUs of the group
    double j_per_token = 0.0;
    double itl_p50_s = 0.0;
    double itl_p90_s = 0.0;
    double itl_p99_s = 0.0;
    double tpot_p90_s = 0.0;
    double ttft_p90_s = 0.0;
    double avg_batch = 0.0;
    double sm_clock_mhz = 0.0;
};

/// "Best point for demand X tok/s with ITL <= S and power <= W": the most energy-efficient
/// (lowest J/token) point meeting every given constraint.
struct Query {
    double demand_tok_s = 0.0;     ///< predicted throughput must be >= this (0: no demand)
    double max_itl_s = 0.0;        ///< p90 ITL bound (0: none)
    double max_power_w = 0.0;      ///< group power bound, all GPUs (0: none)
    double max_power_cap_w = 0.0;  ///< cap bound per GPU (0: none)
};

/// The answer; `feasible` is false when no point meets the constraints, and then `point` is the
/// best effort: the highest-throughput point within the power bound (or the lowest-power one).
struct QueryResult {
    bool feasible = false;
    Prediction point;
};

class PowerModel {
public:
    /// Reads MODEL.json (`pals fit` output; schema in docs/profile.md). Errors name the file
    /// and field.
    [[nodiscard]] static Result<PowerModel> load(const std::filesystem::path& path);

    /// Workload mixes the model was fitted on.
    [[nodiscard]] std::vector<std::string> workloads() const;
    /// Cap range (W per GPU) and batch caps the profile covered.
    [[nodiscard]] double cap_min_w() const;
    [[nodiscard]] double cap_max_w() const;
    [[nodiscard]] std::vector<int> batch_caps() const;
    /// GPUs in the group the model describes.
    [[nodiscard]] int gpus_per_group() const;

    /// Prediction at any cap in [cap_min_w, cap_max_w] and any batch cap in the profiled range
    /// (interpolated). kOutOfRange outside; kNotFound for an unknown workload ("" = the first).
    [[nodiscard]] Result<Prediction> predict(double power_cap_w, int batch_cap,
                                             std::string_view workload = {}) const;

    /// The prediction at `batch_cap` and the lowest cap up to `max_cap_w` (per GPU, within the
    /// profiled range) at which the model's SM clock reaches `sm_clock_mhz`: the operating
    /// point of a group held at that clock by a lock, or by a load that leaves its cap undrawn.
    /// The prediction at `max_cap_w` when its clock is at most `sm_clock_mhz` or the clock is
    /// unknown (`sm_clock_mhz` <= 0: no clock reading); at the lowest
    /// cap when even that one's clock is above it. (The model's clock rises with the cap: a
    /// bisection over the cap, ~12 predict() calls.)
    [[nodiscard]] Result<Prediction> predict_at_clock(double sm_clock_mhz, int batch_cap,
                                                      double max_cap_w,
                                                      std::string_view workload = {}) const;

    /// The most efficient point meeting the query, searched over a fine grid of caps and the
    /// profiled batch caps. Target: under 10 us (bench/profile_bench.cpp).
    /// (Measured: about 0.5 us. Caps every kQueryCapStepW W; per constraint a binary search
    /// on the precomputed monotone rows, then a range-minimum lookup: docs/profile.md 4.)
    /// An unknown workload gives feasible = false and a default-constructed point.
    [[nodiscard]] QueryResult best_point(const Query& query, std::string_view workload = {}) const;

    // ---- beyond the controller's API ----

    /// Parses MODEL.json text; `source` names it in errors ("SOURCE: workloads[0].caps_w: ...").
    /// Precomputes the query tables (see best_point), so this takes about a millisecond.
    [[nodiscard]] static Result<PowerModel> parse(std::string_view json_text,
                                                  std::string_view source);

    /// The model, GPU and layout the profile was measured on (MoE shape included).
    [[nodiscard]] const ModelShape& shape() const;
    /// The profiled caps (W per GPU), ascending.
    [[nodiscard]] std::vector<double> caps_w() const;
    /// Step of the cap grid best_point searches, W.
    [[nodiscard]] double query_cap_step_w() const;

    /// Caps are searched every kQueryCapStepW W between cap_min_w and cap_max_w.
    static constexpr double kQueryCapStepW = 1.0;

private:
    struct Impl;
    explicit PowerModel(std::shared_ptr<const Impl> impl);
    /// Immutable after parse(); shared, so copies are cheap and const calls need no lock.
    std::shared_ptr<const Impl> m_impl;
};

}  // namespace pals::profile
