#include "pals/control/scenario_power_model.hpp"

#include <fmt/format.h>

#include <utility>

namespace pals::control {

Result<profile::WorkloadMix> scenario_workload_mix(const Scenario& sc) {
    if (sc.workload.kind == workload::WorkloadKind::kTrace) {
        return profile::parse_workload_mix("scenario=trace=" + sc.workload.trace_path.string());
    }
    profile::WorkloadMix mix = profile::default_workload_mix();
    mix.name = "scenario";
    mix.spec =
        fmt::format("in={},out={}", sc.workload.input.describe(), sc.workload.output.describe());
    mix.input = sc.workload.input;
    mix.output = sc.workload.output;
    mix.seed = sc.seed;
    return mix;
}

Result<std::shared_ptr<const profile::PowerModel>> scenario_power_model(
    const Scenario& sc, const profile::ModelCacheOptions& cache) {
    if (!sc.power_model.empty()) {
        PALS_ASSIGN_OR_RETURN(profile::PowerModel model, profile::PowerModel::load(sc.power_model));
        return std::make_shared<const profile::PowerModel>(std::move(model));
    }
    PALS_ASSIGN_OR_RETURN(const profile::WorkloadMix mix, scenario_workload_mix(sc));
    PALS_ASSIGN_OR_RETURN(profile::PowerModel model,
                          profile::cached_power_model(sc.node, mix, cache));
    return std::make_shared<const profile::PowerModel>(std::move(model));
}

}  // namespace pals::control
