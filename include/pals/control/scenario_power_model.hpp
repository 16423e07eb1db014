#pragma once
/// @file scenario_power_model.hpp
/// @brief The power model a scenario's `pals` policy plans with: the scenario's
/// `run.power_model`, or one profiled on the simulator for its node and workload and cached
/// (profile::cached_power_model).

#include <memory>

#include "pals/common/status.hpp"
#include "pals/control/scenario.hpp"
#include "pals/profile/model_cache.hpp"
#include "pals/profile/power_model.hpp"
#include "pals/profile/workload_mix.hpp"

namespace pals::control {

/// The scenario's workload as a profile mix named "scenario": its trace's lengths, or its
/// input/output distributions with the scenario's seed.
[[nodiscard]] Result<profile::WorkloadMix> scenario_workload_mix(const Scenario& scenario);

/// `run.power_model` when the scenario names one, else the cached simulator profile of its node.
[[nodiscard]] Result<std::shared_ptr<const profile::PowerModel>> scenario_power_model(
    const Scenario& scenario, const profile::ModelCacheOptions& cache = {});

}  // namespace pals::control
