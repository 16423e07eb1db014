#include "pals/profile/model_cache.hpp"

#include <fmt/format.h>

#include <cstdlib>
#include <functional>
#include <system_error>
#include <vector>

#include "pals/common/file_util.hpp"
#include "pals/profile/model_fit.hpp"
#include "pals/profile/profiler.hpp"
#include "pals/profile/sim_session_factory.hpp"
#include "pals/sim/cost_model.hpp"
#include "pals/sim/gpu_physics.hpp"

namespace pals::profile {

namespace {

/// What the simulator predicts for this node on probe steps (decode at batch 1 and 64, a
/// 2048-token prefill; each at the maximum and minimum cap).
std::string physics_fingerprint(const sim::NodeConfig& n) {
    Result<sim::StepCostModel> cost = sim::StepCostModel::create(n.model, n.gpu, n.parallel);
    if (!cost.is_ok()) {
        return "invalid";
    }
    const sim::GpuPhysics physics(n.gpu, n.model.dtype);
    std::vector<sim::StepShape> probes(3);
    for (int i = 0; i < 2; ++i) {
        const int batch = i == 0 ? 1 : 64;
        probes[i].decode_seqs = batch;
        probes[i].logits = batch;
        probes[i].decode_ctx_full = batch * 1024.0;
    }
    probes[2].prefill_tokens = 2048;
    probes[2].logits = 1;
    probes[2].prefill_pairs_full = 2048.0 * 2048.0 / 2.0;
    probes[2].prefill_ctx_full = 2048.0;
    std::string out;
    for (const sim::StepShape& shape : probes) {
        for (double cap : {n.gpu.power_limit_max_w, n.gpu.power_limit_min_w}) {
            const sim::StepOutcome o = physics.run_step(cost->step_work(shape), cap);
            out += fmt::format("|{:.9g},{:.9g}", o.duration_s, o.power_w);
        }
    }
    return out;
}

SweepPlan sweep_plan(const sim::NodeConfig& n, const WorkloadMix& mix,
                     const ModelCacheOptions& options) {
    SweepPlan plan;
    plan.workloads = {mix};
    for (double cap = n.gpu.power_limit_min_w; cap <= n.gpu.power_limit_max_w + 1e-9;
         cap += options.cap_step_w) {
        plan.caps_w.push_back(cap);
    }
    for (int b = options.first_batch; b < n.engine.max_num_seqs; b *= 2) {
        plan.batch_caps.push_back(b);
    }
    plan.batch_caps.push_back(n.engine.max_num_seqs);
    plan.measure.warmup = Seconds{options.warmup_s};
    plan.measure.window = Seconds{options.window_s};
    return plan;
}

}  // namespace

std::filesystem::path ModelCacheOptions::default_dir() {
    auto env = [](const char* name) {
        const char* value = std::getenv(name);
        return value != nullptr ? std::string(value) : std::string();
    };
    if (const std::string dir = env("PALS_CACHE_DIR"); !dir.empty()) {
        return dir;
    }
    // The XDG base directory rule: $XDG_CACHE_HOME when set and absolute, else ~/.cache.
    if (const std::string xdg = env("XDG_CACHE_HOME");
        !xdg.empty() && std::filesystem::path(xdg).is_absolute()) {
        return std::filesystem::path(xdg) / "pals";
    }
    if (const std::string home = env("HOME"); !home.empty()) {
        return std::filesystem::path(home) / ".cache" / "pals";
    }
    return std::filesystem::path(".pals-cache");  // no home: the current folder, never /tmp
}

std::filesystem::path model_cache_file(const sim::NodeConfig& n, const WorkloadMix& mix,
                                       const ModelCacheOptions& options) {
    const std::string key =
        fmt::format("v2|{}|{}|{}|{}|{}|{}|{}|{}{}", n.model.name, n.gpu.name, n.parallel.tp,
                    n.parallel.ep, n.parallel.routing_skew, n.engine.max_num_seqs,
                    n.engine.max_num_batched_tokens, mix.spec, physics_fingerprint(n));
    return options.dir / fmt::format("model-{:016x}.json", std::hash<std::string>{}(key));
}

Result<PowerModel> cached_power_model(const sim::NodeConfig& n, const WorkloadMix& mix,
                                      const ModelCacheOptions& options) {
    if (options.cap_step_w <= 0.0 || options.first_batch < 1 || options.warmup_s < 0.0 ||
        options.window_s <= 0.0) {
        return Status::invalid_argument(
            "model cache: the cap step, first batch and window must be positive");
    }
    const std::filesystem::path path = model_cache_file(n, mix, options);
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
        if (options.on_profile) {
            options.on_profile(n, path);
        }
        const SweepPlan plan = sweep_plan(n, mix, options);
        sim::NodeConfig group = n;
        group.replicas = 1;
        PALS_ASSIGN_OR_RETURN(
            auto factory, SimSessionFactory::create(group, plan.measure, n.engine.max_num_seqs));
        ProfileTable table;
        PALS_RETURN_IF_ERROR(
            run_sweep(*factory, plan, table, [](const ProfileTable&) { return Status::ok(); }));
        PALS_ASSIGN_OR_RETURN(const FitResult fit, fit_profile(table));
        std::filesystem::create_directories(path.parent_path(), ec);
        PALS_RETURN_IF_ERROR(write_file_atomic(path, model_json(fit)));
    }
    return PowerModel::load(path);
}

}  // namespace pals::profile
