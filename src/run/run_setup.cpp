#include "pals/run/run_setup.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <string>
#include <utility>

#include "pals/control/pals_policy.hpp"
#include "pals/control/policy_registry.hpp"
#include "pals/profile/power_model.hpp"

namespace pals::run {

control::ControllerConfig controller_config(const RunConfig& c) {
    control::ControllerConfig cc;
    cc.period = Seconds{c.period_s};
    cc.latency_window = Seconds{c.latency_window_s};
    cc.slo_ttft_s = c.slo_ttft_s;
    cc.slo_tpot_s = c.slo_tpot_s;
    cc.sm_clock_max_mhz = c.sm_clock_max_mhz;
    cc.budget = c.budget_w > 0.0 ? control::BudgetSchedule(c.budget_w) : control::BudgetSchedule();
    return cc;
}

control::DaemonOptions daemon_options(const RunConfig& c) {
    control::DaemonOptions o;
    o.retry_periods = c.retry_periods;
    o.batch_cap_fault_periods = c.batch_cap_fault_periods;
    // Only these policies lock SM clocks; saving (and resetting) clocks for the others would
    // undo a lock set by someone else (NVML cannot read locked clocks back).
    const control::PolicyInfo* policy = control::find_policy(c.policy);
    o.save_sm_clocks = policy != nullptr && policy->locks_clocks;
    return o;
}

std::vector<engine::vllm::VllmEngineConfig> engine_configs(const RunConfig& c) {
    std::vector<engine::vllm::VllmEngineConfig> out;
    for (std::size_t i = 0; i < c.groups.size(); ++i) {
        const RunGroupConfig& g = c.groups[i];
        engine::vllm::VllmEngineConfig e;
        e.name = fmt::format("group{}", i);
        e.host = g.host;
        e.port = g.port;
        e.timeout = Seconds{c.scrape_timeout_s};
        e.filter.model_name = g.model_name;
        e.filter.engine = g.engine;
        e.max_num_seqs = g.max_num_seqs;
        e.gpus = g.gpus;
        e.batch_cap_path = g.batch_cap_file;
        e.max_num_batched_tokens = g.max_num_batched_tokens;
        e.step_tokens_path = g.step_tokens_file;
        out.push_back(std::move(e));
    }
    return out;
}

Result<std::unique_ptr<control::Policy>> make_run_policy(const RunConfig& c) {
    const control::PolicyInfo* policy = control::find_policy(c.policy);
    if (policy == nullptr || !policy->make || policy->evaluation_only) {
        return Status::invalid_argument(run_config_origin(c, "policy") + ": " +
                                        control::unknown_policy(c.policy, true).message());
    }
    control::PolicyContext context;
    if (policy->needs_model) {
        PALS_ASSIGN_OR_RETURN(profile::PowerModel model,
                              profile::PowerModel::load(c.power_model)
                                  .with_prefix(run_config_origin(c, "power_model")));
        const std::vector<std::string> mixes = model.workloads();
        if (!c.workload.empty() &&
            std::find(mixes.begin(), mixes.end(), c.workload) == mixes.end()) {
            return Status::invalid_argument(
                run_config_origin(c, "workload") + ": " +
                fmt::format("the model {} has no workload mix '{}' (it has: {})", c.power_model,
                            c.workload, fmt::join(mixes, ", ")));
        }
        // A model describes one group's layout: a TP4 profile cannot drive a 2-GPU group.
        for (const RunGroupConfig& g : c.groups) {
            if (static_cast<int>(g.gpus.size()) != model.gpus_per_group()) {
                return Status::invalid_argument(fmt::format(
                    "{}: gpus: the model {} was profiled on {} GPU(s) per group (TP {}), this "
                    "group has {}; profile the group's own layout (pals profile --tp {}) or "
                    "give it {} GPUs",
                    g.origin, c.power_model, model.gpus_per_group(), model.gpus_per_group(),
                    g.gpus.size(), g.gpus.size(), model.gpus_per_group()));
            }
        }
        context.model = std::make_shared<const profile::PowerModel>(std::move(model));
        context.pals.workload = c.workload;
    }
    return policy->make(context);
}

}  // namespace pals::run
