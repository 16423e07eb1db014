#pragma once
/// @file model_fit.hpp
/// @brief `pals fit`: from a profile (profile_store.hpp) to the light model PowerModel loads
/// (DESIGN.md 1.4). Per workload mix and measured quantity, a surface over (cap, batch cap):
///
/// - in log space (log of the quantity), so that relative errors are what is smoothed and
///   power laws in the batch are exact between grid points;
/// - along the cap: isotonic regression (pool-adjacent-violators) where physics says the
///   quantity is monotone in the cap (throughput, power, SM clock non-decreasing; ITL and TPOT
///   non-increasing), then a monotone piecewise-cubic Hermite interpolant (PCHIP,
///   Fritsch-Carlson), which keeps that monotonicity and never overshoots the data;
/// - along the batch cap: linear in log2(batch cap), a non-negative blend of two monotone rows,
///   so monotonicity in the cap survives everywhere;
/// - no extrapolation: the model answers inside the profiled cap and batch ranges only.
///
/// Energy per token is not fitted separately: it is predicted as power / throughput, so the
/// three frontier axes stay consistent. Cross-validation (k-fold over the points at interior
/// caps, and leave-one-batch-row-out) reports the mean absolute percentage error per quantity.
/// The MODEL.json schema is in docs/profile.md.
///
/// Thread-safety: free functions over values.

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pals/common/status.hpp"
#include "pals/profile/profile_store.hpp"

namespace pals::profile {

/// The fitted quantities; each name is its profile column and MODEL.json key.
enum class Quantity {
    kThroughput,  ///< throughput_tok_s
    kPower,       ///< power_w
    kItlP50,      ///< itl_p50_s
    kItlP90,      ///< itl_p90_s
    kItlP99,      ///< itl_p99_s
    kTpotP90,     ///< tpot_p90_s
    kTtftP90,     ///< ttft_p90_s
    kAvgBatch,    ///< avg_batch
    kSmClock,     ///< sm_clock_mhz
};
inline constexpr std::size_t kQuantityCount = 9;
inline constexpr std::array<Quantity, kQuantityCount> kAllQuantities = {
    Quantity::kThroughput, Quantity::kPower,    Quantity::kItlP50,
    Quantity::kItlP90,     Quantity::kItlP99,   Quantity::kTpotP90,
    Quantity::kTtftP90,    Quantity::kAvgBatch, Quantity::kSmClock};

/// Shape constraint of a quantity along the cap.
enum class Monotonicity { kNone, kIncreasing, kDecreasing };

[[nodiscard]] std::string_view quantity_name(Quantity q);
[[nodiscard]] std::optional<Quantity> quantity_from_name(std::string_view name);
[[nodiscard]] Monotonicity monotonicity_of(Quantity q);
/// The measured value of `q` in a profile row.
[[nodiscard]] double quantity_value(const ProfileRow& row, Quantity q);

/// Options of `pals fit`.
struct FitOptions {
    int folds = 5;                       ///< k of the k-fold cross-validation (>= 2)
    std::uint64_t seed = 0;              ///< fold assignment
    std::vector<std::string> workloads;  ///< fit only these mixes (empty: all)
};

/// Cross-validated error of one quantity, percent.
struct CvError {
    double mape_pct = 0.0;        ///< k-fold over interior caps: mean |pred - meas| / meas
    double max_ape_pct = 0.0;     ///< worst point of the k-fold
    int points = 0;               ///< points held out in the k-fold
    double batch_mape_pct = 0.0;  ///< leave-one-batch-row-out (interior batch caps)
    int batch_points = 0;
};

/// The fit of one workload mix. Grids are row-major by batch cap: value(b, c) =
/// values[b * caps_w.size() + c], in the quantity's unit, after the isotonic correction.
struct WorkloadFit {
    std::string name;
    std::vector<double> caps_w;
    std::vector<int> batch_caps;
    std::array<std::vector<double>, kQuantityCount> values;
    std::array<CvError, kQuantityCount> cv;
    CvError cv_j_per_token;  ///< of power / throughput against the measured J/token
    /// Largest relative change the isotonic correction made to one point, percent.
    std::array<double, kQuantityCount> isotonic_max_adjust_pct{};
};

/// The whole fit.
struct FitResult {
    ModelShape shape;
    std::string profile;  ///< source file name
    std::size_t rows = 0;
    int folds = 0;
    std::vector<WorkloadFit> workloads;
};

/// Fits every workload mix of `table`. Errors (kInvalidArgument) name the file, line and
/// column: an empty profile, a NaN/inf/non-positive value in a fitted column, a workload with
/// fewer than two caps, a missing (cap, batch) point of the grid, different models in one file,
/// workloads whose grids differ.
[[nodiscard]] Result<FitResult> fit_profile(const ProfileTable& table,
                                            const FitOptions& options = {});

/// MODEL.json text (schema_version 1, docs/profile.md).
[[nodiscard]] std::string model_json(const FitResult& fit);

/// The MODEL.json schema version this build writes and reads.
inline constexpr int kModelSchemaVersion = 1;

/// Pool-adjacent-violators: the least-squares non-decreasing (or non-increasing) sequence
/// closest to `values` (equal weights). Exposed for tests.
[[nodiscard]] std::vector<double> isotonic_fit(const std::vector<double>& values, bool increasing);

/// Monotone piecewise-cubic Hermite interpolation (Fritsch-Carlson / PCHIP) through (x, y),
/// x strictly increasing, at least one knot. Thread-safety: immutable after construction.
class Pchip {
public:
    Pchip() = default;
    Pchip(std::vector<double> x, std::vector<double> y);
    /// The interpolant at t, clamped to [x.front(), x.back()].
    [[nodiscard]] double operator()(double t) const;
    [[nodiscard]] const std::vector<double>& slopes() const { return m_d; }

private:
    std::vector<double> m_x;
    std::vector<double> m_y;
    std::vector<double> m_d;
};

}  // namespace pals::profile
