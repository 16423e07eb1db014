#pragma once
/// @file profiler.hpp
/// @brief The profiler (DESIGN.md 1.4): sweep power cap x batch cap (x workload mix) and measure
/// each point in steady state, written against the backend interfaces only (Clock,
/// power::GpuBackend, engine::ServingEngine). It never knows whether a simulator or a live node
/// sits behind them: a SessionFactory hands it the interfaces for each point (the simulator's
/// factory builds a fresh saturated SimulatedNode per point; a live factory would return the
/// same node every time).
///
/// Thread-safety: not thread-safe; one caller drives a sweep.

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pals/common/clock.hpp"
#include "pals/common/status.hpp"
#include "pals/engine/serving_engine.hpp"
#include "pals/power/gpu_backend.hpp"
#include "pals/profile/profile_store.hpp"
#include "pals/profile/workload_mix.hpp"

namespace pals::profile {

/// One point of a sweep.
struct SweepPoint {
    double power_cap_w = 0.0;  ///< per GPU of the group
    int batch_cap = 0;
};

/// Timing of one measurement.
struct MeasureSettings {
    Seconds warmup{20.0};        ///< after setting the point, before the window opens
    Seconds window{60.0};        ///< the steady-state window
    Seconds sample_period{1.0};  ///< gauge and GPU sampling period inside the window
};

/// Defaults of `pals profile`.
inline constexpr double kDefaultWarmupS = 20.0;
inline constexpr double kDefaultWindowS = 60.0;
inline constexpr double kDefaultSamplePeriodS = 1.0;

/// The interfaces one measurement runs against: a clock, the node's GPUs and the engine of
/// the measured group (its GPUs are engine().gpus()). The session owns nothing the profiler
/// sees; it only keeps its backends alive.
class ProfileSession {
public:
    virtual ~ProfileSession() = default;
    [[nodiscard]] virtual Clock& clock() = 0;
    [[nodiscard]] virtual power::GpuBackend& gpus() = 0;
    [[nodiscard]] virtual engine::ServingEngine& engine() = 0;
};

/// Hands the profiler a session per point, with the engine saturated by `mix`.
class SessionFactory {
public:
    virtual ~SessionFactory() = default;
    /// Name of the backend ("simulated", "nvml", ...), recorded in the profile.
    [[nodiscard]] virtual std::string backend_name() const = 0;
    /// The model and layout being profiled.
    [[nodiscard]] virtual ModelShape model_shape() const = 0;
    /// A session whose engine is saturated by `mix` (requests waiting) for at least the
    /// warm-up and window of the sweep. `attempt` > 0 means that the previous session for this
    /// point ran out of requests: offer more load.
    [[nodiscard]] virtual Result<std::unique_ptr<ProfileSession>> open(const WorkloadMix& mix,
                                                                       const SweepPoint& point,
                                                                       int attempt) = 0;
    /// How many sessions the sweep may open for one point when it was not saturated.
    [[nodiscard]] virtual int max_attempts() const { return 1; }
};

/// A factory that returns the same, externally loaded node for every point (a live node whose
/// load generator keeps it saturated; tests with fakes). It never owns the interfaces: they
/// must outlive it. Mixes other than the one the node is loaded with are the caller's concern.
class SharedSessionFactory final : public SessionFactory {
public:
    SharedSessionFactory(Clock& clock, power::GpuBackend& gpus, engine::ServingEngine& engine,
                         ModelShape shape, std::string backend_name);
    [[nodiscard]] std::string backend_name() const override { return m_backend_name; }
    [[nodiscard]] ModelShape model_shape() const override { return m_shape; }
    [[nodiscard]] Result<std::unique_ptr<ProfileSession>> open(const WorkloadMix& mix,
                                                               const SweepPoint& point,
                                                               int attempt) override;

private:
    Clock& m_clock;
    power::GpuBackend& m_gpus;
    engine::ServingEngine& m_engine;
    ModelShape m_shape;
    std::string m_backend_name;
};

/// Measures one point: sets the cap on every GPU of the group (engine().gpus()) and the batch
/// cap, waits the warm-up, then reads the engine and GPUs over the window (snapshots at its
/// ends, gauges and GPU samples every sample period). Fills every measured field of the row;
/// `workload`, `backend` and `shape` are left for the caller.
/// @return kOutOfRange when the cap is outside a GPU's limit range or the batch cap above the
///         engine's max_batch_cap(); a backend's error otherwise.
[[nodiscard]] Result<ProfileRow> measure_point(ProfileSession& session, const SweepPoint& point,
                                               const MeasureSettings& settings);

/// What a sweep covers.
struct SweepPlan {
    std::vector<WorkloadMix> workloads;
    std::vector<double> caps_w;
    std::vector<int> batch_caps;
    MeasureSettings measure;

    /// Points in sweep order: workload, then batch cap, then cap (ascending), so that a live
    /// node changes its batch cap (which has to drain) least often.
    [[nodiscard]] std::size_t point_count() const {
        return workloads.size() * caps_w.size() * batch_caps.size();
    }
};

/// Progress of a sweep, after each point.
struct SweepProgress {
    std::size_t index = 0;     ///< 1-based position of this point in the sweep
    std::size_t total = 0;     ///< points in the sweep
    std::size_t measured = 0;  ///< points measured so far in this run
    std::size_t skipped = 0;   ///< points already in the profile so far (resume)
    bool was_skipped = false;  ///< this point was already in the profile
    std::string workload;
    SweepPoint point;
    const ProfileRow* row = nullptr;  ///< the measured (or existing) row; valid during the call
};

using ProgressCallback = std::function<void(const SweepProgress&)>;

/// Runs a sweep into `table`: points already in it are skipped (resume); after each new point
/// the row is appended and `checkpoint(table)` is called (e.g. an atomic rewrite of the file),
/// so an interrupted sweep loses at most the point in flight. An error stops the sweep and is
/// returned; rows measured before it stay in `table`.
[[nodiscard]] Status run_sweep(SessionFactory& factory, const SweepPlan& plan, ProfileTable& table,
                               const std::function<Status(const ProfileTable&)>& checkpoint,
                               const ProgressCallback& progress = {});

/// Checks that the rows of `table` were measured on `shape`/`backend` (a resumed sweep must not
/// mix models). kInvalidArgument naming the first differing row.
[[nodiscard]] Status check_resume_compatible(const ProfileTable& table, const ModelShape& shape,
                                             std::string_view backend);

/// Parses "LO:HI:STEP" (inclusive of HI when on the grid) or "A,B,C" into caps in W.
[[nodiscard]] Result<std::vector<double>> parse_caps(std::string_view text);
/// Parses "A,B,C" or "LO:HI:x2" (powers of two from LO to HI) or "LO:HI:STEP" into batch caps.
[[nodiscard]] Result<std::vector<int>> parse_batches(std::string_view text);

}  // namespace pals::profile
