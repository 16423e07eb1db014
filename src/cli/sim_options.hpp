#pragma once
/// @file sim_options.hpp
/// @brief The flags shared by every command that builds a simulated node and a workload
/// (simulate, demo, profile, sim-serve, loadgen): the tables of sim/node_options.hpp and
/// workload/workload_options.hpp registered as flags, with their `PALS_*` variables.

#include <CLI/CLI.hpp>
#include <string>

#include "pals/common/status.hpp"
#include "pals/sim/node_options.hpp"
#include "pals/sim/simulator.hpp"
#include "pals/workload/workload.hpp"
#include "pals/workload/workload_options.hpp"

namespace pals::cli {

/// The flags of a simulated node (sim::node_options()).
struct NodeFlags {
    sim::NodeOptions values;
    const CLI::App* app = nullptr;
    std::vector<std::string_view> skip;  ///< keys of the options the command does not use

    /// Adds --model, --gpu, --tp, ... to `app`, but not the options `skip` names.
    void add_to(CLI::App& app, std::vector<std::string_view> skip = {});
    /// After parsing: the variables of the flags not given, then the model config and every
    /// check (errors name the flag or variable).
    [[nodiscard]] Result<sim::NodeConfig> build() const;
};

/// The flags of a workload (workload::workload_options()).
struct WorkloadFlags {
    workload::WorkloadOptions values;
    const CLI::App* app = nullptr;

    void add_to(CLI::App& app);
    /// --trace -> trace replay; --rate -> synthetic arrivals; --num-requests alone -> closed loop.
    [[nodiscard]] Result<workload::WorkloadSpec> build() const;
};

/// --slo-ttft / --slo-tpot (sim::slo_options()).
struct SloFlags {
    sim::SloTargets values;
    const CLI::App* app = nullptr;

    void add_to(CLI::App& app);
    [[nodiscard]] Result<sim::SloTargets> build() const;
};

/// The default model config of the embedded demo (Mixtral-8x7B) in the data folder.
[[nodiscard]] Result<std::string> default_model_path();

}  // namespace pals::cli
