#pragma once
/// @file evaluate_report.hpp
/// @brief Rendering evaluation results: table, JSON (the documented shape), HTML report; and
/// the power model a scenario's `pals` policy uses.

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "pals/control/evaluation.hpp"

namespace pals::cli {

/// "== NAME ==" and what the scenario runs (model, GPUs, TP/EP, caps, batch caps, workload, SLO,
/// budget, control period): printed before its policies run, above evaluation_table().
[[nodiscard]] std::string scenario_echo(const control::Scenario& scenario);

/// The table of the policies' figures, one row each.
[[nodiscard]] std::string evaluation_table(const control::ScenarioResult& result);
/// {"scenario": ..., "policies": {"<name>": {"tokens_per_joule", "efficiency_vs_default", ...}}}
[[nodiscard]] nlohmann::json evaluation_json(const control::ScenarioResult& result);
/// One self-contained HTML page (inline SVG, no network): per scenario, power vs budget, caps
/// and batch caps over time, latency CDFs, the frontier of the model, and the table.
[[nodiscard]] std::string evaluation_html(const std::vector<control::ScenarioResult>& results);

/// The model's frontier under the scenario's ITL SLO, as an SVG for the report ("" on error).
[[nodiscard]] std::string frontier_svg_for(const profile::PowerModel& model,
                                           const control::Scenario& scenario);

/// A scenario file, its relative paths tried against its folder, then the data folder
/// (data_dir()); when no data folder is found and the scenario fails to load, the error says so.
[[nodiscard]] Result<control::Scenario> load_scenario_file(const std::string& path);

/// The built-in demo scenario (scenarios/mixtral-conv-step-budget.toml, compiled in), its
/// relative paths resolved against the data folder.
[[nodiscard]] Result<control::Scenario> builtin_demo_scenario();

/// The scenario's `run.power_model` file, else a model profiled and fitted on the simulator for
/// the scenario's node (control::scenario_power_model), announced on stderr when it is measured.
/// `cache_dir` ("": ModelCacheOptions::default_dir()) keeps the profiled models.
[[nodiscard]] Result<std::shared_ptr<const profile::PowerModel>> power_model_for(
    const control::Scenario& scenario, const std::string& cache_dir);

}  // namespace pals::cli
