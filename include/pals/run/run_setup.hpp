#pragma once
/// @file run_setup.hpp
/// @brief What `pals run` builds from its validated RunConfig: the Controller's and the Daemon's
/// settings, one VllmEngine configuration per group, and the policy.
///
/// Thread-safety: pure functions.

#include <memory>
#include <vector>

#include "pals/common/status.hpp"
#include "pals/control/controller.hpp"
#include "pals/control/daemon.hpp"
#include "pals/control/policies.hpp"
#include "pals/engine/vllm/vllm_engine.hpp"
#include "pals/run/run_config.hpp"

namespace pals::run {

/// The Controller's settings (budget_w 0 = no budget).
[[nodiscard]] control::ControllerConfig controller_config(const RunConfig& config);
/// The Daemon's settings.
[[nodiscard]] control::DaemonOptions daemon_options(const RunConfig& config);
/// One VllmEngine configuration per group, in order (name "group<i>").
[[nodiscard]] std::vector<engine::vllm::VllmEngineConfig> engine_configs(const RunConfig& config);
/// The policy by name; for `pals` it loads the fitted model (and checks the workload mix).
/// Errors are prefixed with where power_model / workload / policy came from.
[[nodiscard]] Result<std::unique_ptr<control::Policy>> make_run_policy(const RunConfig& config);

}  // namespace pals::run
