#pragma once
/// @file model_cache.hpp
/// @brief A power model for a node and workload, profiled on the simulator and fitted once, then
/// cached on disk: what `pals evaluate` and `pals demo` give the `pals` policy when a scenario
/// names no `run.power_model`. The sweep is the one `pals profile` runs, through the same
/// interfaces (SimSessionFactory, run_sweep, fit_profile).
///
/// Thread-safety: none; two processes filling one cache entry write it atomically (the last
/// rename wins, both files hold the same model).

#include <filesystem>
#include <functional>
#include <string>

#include "pals/common/status.hpp"
#include "pals/profile/power_model.hpp"
#include "pals/profile/workload_mix.hpp"
#include "pals/sim/simulator.hpp"

namespace pals::profile {

/// How the on-the-fly sweep runs and where its models are kept.
struct ModelCacheOptions {
    std::filesystem::path dir = default_dir();  ///< the cache folder (made when missing)
    double cap_step_w = 50.0;  ///< caps from the GPU's minimum to its maximum in this step
    int first_batch = 8;       ///< batch caps first_batch, x2, ..., and max_num_seqs
    double warmup_s = 10.0;
    double window_s = 30.0;
    /// Told the node and the cache file before a sweep runs (a sweep takes seconds to minutes).
    std::function<void(const sim::NodeConfig& node, const std::filesystem::path& file)> on_profile;

    /// PALS_CACHE_DIR, else $XDG_CACHE_HOME/pals, else $HOME/.cache/pals, else .pals-cache
    /// in the current folder (never a shared /tmp).
    [[nodiscard]] static std::filesystem::path default_dir();
};

/// The cache file of a node and workload: named by a hash of the model, GPU, parallelism,
/// engine limits, the mix's spec and what the simulator predicts for a few probe steps, so that
/// a model made before a change to the model spec, the GPU's calibration or the physics is never
/// reused after it.
[[nodiscard]] std::filesystem::path model_cache_file(const sim::NodeConfig& node,
                                                     const WorkloadMix& mix,
                                                     const ModelCacheOptions& options);

/// The fitted model of one replica of `node` under `mix`: loaded from its cache file, or
/// profiled, fitted and written there first. Errors: the sweep's, the fit's, or the file's.
[[nodiscard]] Result<PowerModel> cached_power_model(const sim::NodeConfig& node,
                                                    const WorkloadMix& mix,
                                                    const ModelCacheOptions& options);

}  // namespace pals::profile
