#pragma once
/// @file policy_registry.hpp
/// @brief The one list of policies: each name, what it needs and does, and how it is built.
/// `pals run`, `pals evaluate`, scenario files and the docs read it; nothing else matches
/// policy names.
///
/// Thread-safety: the registry is immutable.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pals/common/status.hpp"
#include "pals/control/controller.hpp"
#include "pals/control/pals_policy.hpp"
#include "pals/profile/power_model.hpp"
#include "pals/sim/simulator.hpp"

namespace pals::control {

/// What a policy may need when it is built.
struct PolicyContext {
    std::shared_ptr<const profile::PowerModel> model;  ///< for needs_model policies
    PalsSettings pals;                                 ///< policy pals
    /// For the digital-twin policy (evaluation only): the node as profiled, and the SLOs.
    std::optional<sim::NodeConfig> twin_node;
    sim::SloTargets slo;
};

struct PolicyInfo {
    std::string_view name{};
    std::string_view summary{};  ///< one line: what it sets
    bool needs_model = false;    ///< a MODEL.json (`pals fit`) must be given
    bool honours_budget = true;  ///< keeps the sum of caps within the budget
    bool locks_clocks = false;   ///< locks SM clocks (the daemon saves and restores them)
    bool evaluation_only =
        false;  ///< needs the simulator (an oracle, the twin): not for `pals run`
    /// Builds it; empty for the oracles, which `pals evaluate` runs itself.
    std::function<std::unique_ptr<Policy>(const PolicyContext&)> make{};
};

/// Every policy, in the order reports list them.
[[nodiscard]] const std::vector<PolicyInfo>& policy_registry();

/// The entry named `name`, or nullptr.
[[nodiscard]] const PolicyInfo* find_policy(std::string_view name);

/// The names of every policy (`live_only`: those `pals run` can use).
[[nodiscard]] std::vector<std::string_view> policy_names(bool live_only = false);

/// kInvalidArgument "unknown policy 'x' (did you mean 'y'?) (known: a, b, ...)".
[[nodiscard]] Status unknown_policy(std::string_view name, bool live_only = false);

}  // namespace pals::control
