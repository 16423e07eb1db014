// Where `pals evaluate` gets the power model of a scenario's node: the scenario's
// `run.power_model`, or a profile measured on the simulator (the same sweep `pals profile` runs,
// through the same interfaces) and fitted, cached by node and workload shape.
#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include "cli/evaluate_report.hpp"
#include "pals/common/file_util.hpp"
#include "pals/profile/model_fit.hpp"
#include "pals/profile/pareto.hpp"
#include "pals/profile/profiler.hpp"
#include "pals/profile/sim_session_factory.hpp"
#include "pals/profile/workload_mix.hpp"
#include "pals/sim/cost_model.hpp"
#include "pals/sim/gpu_physics.hpp"

namespace pals::cli {

namespace {

/// The on-the-fly sweep: caps every 50 W, batch caps in powers of two up to max_num_seqs.
constexpr double kCapStepW = 50.0;
constexpr int kFirstBatch = 8;
constexpr double kWarmupS = 10.0;
constexpr double kWindowS = 30.0;

std::filesystem::path cache_dir() {
    if (const char* env = std::getenv("PALS_CACHE_DIR"); env != nullptr && *env != '\0') {
        return env;
    }
    const char* tmp = std::getenv("TMPDIR");
    return std::filesystem::path(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") / "pals-cache";
}

Result<profile::WorkloadMix> mix_for(const control::Scenario& sc) {
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

}  // namespace

std::string frontier_svg_for(const profile::PowerModel& model, const control::Scenario& sc) {
    profile::FrontierConstraints constraints;
    constraints.max_itl_s = sc.slo.tpot_s;
    Result<profile::Frontier> frontier = profile::compute_frontier(model, "", constraints);
    if (!frontier.is_ok()) {
        return {};
    }
    profile::FrontierSvgOptions options;
    options.title = fmt::format("{} on {}x {}: the power model's frontier", sc.node.model.name,
                                sc.node.parallel.tp, sc.node.gpu.name);
    options.subtitle = fmt::format("ITL p90 <= {:.0f} ms", sc.slo.tpot_s * 1e3);
    return profile::render_frontier_svg(frontier.value(), options);
}

namespace {

/// What the simulator predicts for this node on probe steps (decode at batch 1 and 64, a 2048-token
/// prefill; each at the maximum and minimum cap). Part of the cache key, so that a profile made
/// before a change to the model spec, the GPU's calibration or the physics is never reused after
/// it.
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

}  // namespace

Result<std::shared_ptr<const profile::PowerModel>> power_model_for(const control::Scenario& sc) {
    std::filesystem::path path = sc.power_model;
    if (path.empty()) {
        Result<profile::WorkloadMix> mix = mix_for(sc);
        if (!mix.is_ok()) {
            return mix.status();
        }
        const sim::NodeConfig& n = sc.node;
        const std::string key =
            fmt::format("v2|{}|{}|{}|{}|{}|{}|{}|{}{}", n.model.name, n.gpu.name, n.parallel.tp,
                        n.parallel.ep, n.parallel.routing_skew, n.engine.max_num_seqs,
                        n.engine.max_num_batched_tokens, mix->spec, physics_fingerprint(n));
        path = cache_dir() / fmt::format("model-{:016x}.json", std::hash<std::string>{}(key));
        std::error_code ec;
        if (!std::filesystem::exists(path, ec)) {
            std::fprintf(stderr,
                         "pals: profiling %s on the simulator for policy 'pals' (cached in %s)\n",
                         n.model.name.c_str(), path.c_str());
            profile::SweepPlan plan;
            plan.workloads = {mix.value()};
            for (double cap = n.gpu.power_limit_min_w; cap <= n.gpu.power_limit_max_w + 1e-9;
                 cap += kCapStepW) {
                plan.caps_w.push_back(cap);
            }
            for (int b = kFirstBatch; b < n.engine.max_num_seqs; b *= 2) {
                plan.batch_caps.push_back(b);
            }
            plan.batch_caps.push_back(n.engine.max_num_seqs);
            plan.measure.warmup = Seconds{kWarmupS};
            plan.measure.window = Seconds{kWindowS};
            sim::NodeConfig group = n;
            group.replicas = 1;
            auto factory =
                profile::SimSessionFactory::create(group, plan.measure, n.engine.max_num_seqs);
            if (!factory.is_ok()) {
                return factory.status();
            }
            profile::ProfileTable table;
            PALS_RETURN_IF_ERROR(
                profile::run_sweep(*factory.value(), plan, table,
                                   [](const profile::ProfileTable&) { return Status::ok(); }));
            Result<profile::FitResult> fit = profile::fit_profile(table);
            if (!fit.is_ok()) {
                return fit.status();
            }
            std::filesystem::create_directories(path.parent_path(), ec);
            PALS_RETURN_IF_ERROR(write_file_atomic(path, profile::model_json(fit.value())));
        }
    }
    Result<profile::PowerModel> model = profile::PowerModel::load(path);
    if (!model.is_ok()) {
        return model.status();
    }
    return std::make_shared<const profile::PowerModel>(std::move(model).value());
}

}  // namespace pals::cli
