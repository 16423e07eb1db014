#include "pals/control/policy_registry.hpp"

#include <fmt/format.h>

#include "pals/common/config_keys.hpp"
#include "pals/control/policies.hpp"
#include "pals/control/twin_policy.hpp"

namespace pals::control {

const std::vector<PolicyInfo>& policy_registry() {
    static const std::vector<PolicyInfo> kPolicies = {
        {.name = "default",
         .summary = "the GPU's maximum cap, the launch batch cap; ignores the budget",
         .honours_budget = false,
         .make = [](const PolicyContext&) { return make_default_policy(); }},
        {.name = "cap-only",
         .summary = "cap = budget / GPUs, the launch batch cap",
         .make = [](const PolicyContext&) { return make_cap_only_policy(); }},
        {.name = "batch-only",
         .summary = "cap = budget / GPUs; batch cap by AIMD on latency and queue",
         .make = [](const PolicyContext&) { return make_batch_only_policy(); }},
        {.name = "clock-only",
         .summary = "cap = budget / GPUs; SM clock locked as low as latency allows",
         .locks_clocks = true,
         .make = [](const PolicyContext&) { return make_clock_only_policy(); }},
        {.name = "static-oracle",
         .summary = "the best fixed (cap, batch cap, clock) in hindsight",
         .locks_clocks = true,
         .evaluation_only = true},
        {.name = "window-oracle",
         .summary = "the best (cap, batch cap, clock) per 10-s window, by simulating each",
         .locks_clocks = true,
         .evaluation_only = true},
        {.name = "pals",
         .summary = "model-driven cap x batch cap x clock with feedback corrections",
         .needs_model = true,
         .locks_clocks = true,
         .make = [](const PolicyContext& c) { return make_pals_policy(c.model, c.pals); }},
        {.name = "pals-mpc",
         .summary = "cap (at most the budget share) and SM clock by model predictive control "
                    "over a simulator twin of each group (issue 13's design (b)); launch batch "
                    "cap",
         .locks_clocks = true,
         .evaluation_only = true,
         .make = [](const PolicyContext& c) -> std::unique_ptr<Policy> {
             return c.twin_node ? make_twin_policy(*c.twin_node, c.slo) : nullptr;
         }},
    };
    return kPolicies;
}

const PolicyInfo* find_policy(std::string_view name) {
    for (const PolicyInfo& p : policy_registry()) {
        if (p.name == name) {
            return &p;
        }
    }
    return nullptr;
}

std::vector<std::string_view> policy_names(bool live_only) {
    std::vector<std::string_view> names;
    for (const PolicyInfo& p : policy_registry()) {
        if (!live_only || !p.evaluation_only) {
            names.push_back(p.name);
        }
    }
    return names;
}

Status unknown_policy(std::string_view name, bool live_only) {
    const std::vector<std::string_view> known = policy_names(live_only);
    return Status::invalid_argument(fmt::format("unknown policy '{}'{} (known: {})", name,
                                                did_you_mean(name, known), fmt::join(known, ", ")));
}

}  // namespace pals::control
