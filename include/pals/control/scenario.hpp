#pragma once
/// @file scenario.hpp
/// @brief An evaluation scenario: node, workload, SLOs, budget and the policies to compare, read
/// from a TOML file (format in docs/evaluate.md).

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pals/common/status.hpp"
#include "pals/control/controller.hpp"
#include "pals/sim/node_options.hpp"
#include "pals/sim/simulator.hpp"
#include "pals/workload/workload.hpp"

namespace pals::control {

/// One bound of a scenario's [expect] (docs/evaluate.md): a figure of the subject policy, or
/// its ratio to a baseline's figure.
struct Expectation {
    std::string metric;    ///< a name in metric_fields()
    std::string baseline;  ///< "" = the figure itself; else subject / baseline
    std::optional<double> min;
    std::optional<double> max;
    std::string origin;  ///< "FILE:LINE:COL: expect.NAME", for messages
};

struct Scenario {
    std::string name;  ///< file stem unless `name` is set
    std::filesystem::path path;
    sim::NodeConfig node;  ///< the node as profiled (the `pals` model's view)
    /// [physics]: how the simulated node departs from `node` (identity: not at all).
    sim::PhysicsPerturbation physics;
    workload::WorkloadSpec workload;
    double target_tok_s = 0.0;  ///< offline case: the throughput target (0: the trace's load)
    sim::SloTargets slo;
    BudgetSchedule budget;              ///< empty: no budget
    std::vector<std::string> policies;  ///< names in policy_registry() (default: all)
    double period_s = 1.0;
    double warmup_s = 0.0;  ///< metrics ignore requests arriving and ticks before this
    std::uint64_t seed = 0;
    std::filesystem::path power_model;   ///< MODEL.json for `pals`; empty: profile on the fly
    std::string expect_policy = "pals";  ///< whose figures [expect] bounds
    std::vector<Expectation> expect;
};

/// The node the evaluation simulates: `node` with its GPU perturbed by `physics`.
[[nodiscard]] Result<sim::NodeConfig> simulated_node(const Scenario& scenario);

/// Reads a scenario. Relative paths (model config, trace, power model) are tried against the
/// scenario's folder, then `shared_dir`. Every error names the file and the key.
[[nodiscard]] Result<Scenario> load_scenario(const std::filesystem::path& path,
                                             const std::filesystem::path& shared_dir);

/// Parses a scenario document: `path` names it in errors and gives its default name (the stem);
/// relative paths are tried against `scenario_dir`, then `shared_dir` (load_scenario passes the
/// file's folder; the CLI's built-in demo scenario passes the data folder).
[[nodiscard]] Result<Scenario> parse_scenario(std::string_view document,
                                              const std::filesystem::path& path,
                                              const std::filesystem::path& scenario_dir,
                                              const std::filesystem::path& shared_dir);

}  // namespace pals::control
