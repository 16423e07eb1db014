// Time per `pals` decision (issue 13, item 2): PalsPolicy::decide() for 1, 4 and 8 GPU groups
// with a model fitted on a simulator profile of Llama-3.1-8B on an H100, on observations that
// alternate between partial load and a binding budget so both regimes run. The daemon decides
// once per period (1 s by default) on one core: target under 1 ms for 8 groups.
//   build/release/decision_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <memory>
#include <string>

#include "pals/control/pals_policy.hpp"
#include "pals/profile/model_fit.hpp"
#include "pals/profile/power_model.hpp"
#include "pals/profile/profiler.hpp"
#include "pals/profile/sim_session_factory.hpp"
#include "pals/sim/simulator.hpp"
#include "pals/workload/workload.hpp"

namespace {

using namespace pals;

std::shared_ptr<const profile::PowerModel> llama_model() {
    static const std::shared_ptr<const profile::PowerModel> kModel = [] {
        sim::NodeConfig node;
        node.model = model::load_model_spec(std::string(PALS_SHARED_DIR) +
                                            "/models/meta-llama__Llama-3.1-8B-Instruct.json")
                         .value();
        node.gpu = sim::find_gpu_spec("H100-SXM").value();
        profile::SweepPlan plan;
        plan.workloads = {profile::default_workload_mix()};
        plan.caps_w = profile::parse_caps("200:700:100").value();
        plan.batch_caps = profile::parse_batches("1,2,4,...,1024").value();
        plan.measure.warmup = Seconds{5.0};
        plan.measure.window = Seconds{20.0};
        auto factory =
            profile::SimSessionFactory::create(node, plan.measure, plan.batch_caps.back()).value();
        profile::ProfileTable table;
        if (!profile::run_sweep(*factory, plan, table, {}).is_ok()) {
            std::abort();
        }
        const auto fit = profile::fit_profile(table).value();
        return std::make_shared<const profile::PowerModel>(
            profile::PowerModel::parse(profile::model_json(fit), "bench.json").value());
    }();
    return kModel;
}

control::Observation observation(int groups, int tick) {
    control::Observation o;
    o.time_s = tick;
    o.cap_range = {200.0, 700.0, 700.0};
    o.sm_clock_max_mhz = 1980.0;
    // Every other 50 ticks the budget binds (300 W per GPU), else there is none.
    o.budget_w = (tick / 50) % 2 == 0 ? std::numeric_limits<double>::infinity() : 300.0 * groups;
    for (int g = 0; g < groups; ++g) {
        control::GroupObservation go;
        go.gpus = 1;
        go.cap_w = 450.0;
        go.power_w = 400.0 + 10.0 * std::sin(0.1 * tick + g);
        go.batch_cap = 256;
        go.max_batch_cap = 1024;
        go.running = 60 + (tick + 7 * g) % 40;
        go.waiting = (tick + g) % 7 == 0 ? 5 : 0;
        go.waiting_previous = (tick + g) % 7 == 1 ? 5 : 0;
        go.generation_tok_s = 1500.0 + 300.0 * std::sin(0.05 * tick + g);
        go.avg_output_tokens = 250.0;
        go.itl_p90_s = 0.04 + 0.02 * std::sin(0.07 * tick);
        go.ttft_p90_s = 0.3;
        go.sm_clock_mhz = 1200.0;
        o.groups.push_back(go);
    }
    return o;
}

void BM_PalsDecide(benchmark::State& state) {
    const int groups = static_cast<int>(state.range(0));
    auto policy = control::make_pals_policy(llama_model());
    int tick = 0;
    for (auto _ : state) {
        const auto decisions = policy->decide(observation(groups, tick++));
        benchmark::DoNotOptimize(decisions.front().cap_w);
    }
    state.counters["groups"] = groups;
}
BENCHMARK(BM_PalsDecide)->Arg(1)->Arg(4)->Arg(8)->Unit(benchmark::kMicrosecond);

/// Design (b) of issue 13, model predictive control over the calibrated simulator as a digital
/// twin: one candidate's cost is a clone of the node's state plus a 30-s horizon (the window
/// oracle's window and look-ahead). Mixtral-8x7B TP2 on the conversation trace, cloned at
/// t = 300 s; a decision over the oracle's 140 candidates costs 140 x this.
void BM_TwinCandidate(benchmark::State& state) {
    static sim::Simulator base = [] {
        sim::NodeConfig node;
        node.model = model::load_model_spec(std::string(PALS_SHARED_DIR) +
                                            "/models/mistralai__Mixtral-8x7B-Instruct-v0.1.json")
                         .value();
        node.gpu = sim::find_gpu_spec("H100-SXM").value();
        node.parallel.tp = 2;
        workload::WorkloadSpec spec;
        spec.kind = workload::WorkloadKind::kTrace;
        spec.trace_path = std::string(PALS_SHARED_DIR) + "/traces/AzureLLMInferenceTrace_conv.csv";
        spec.duration_s = 600.0;
        auto sim = sim::Simulator::create(node, workload::build_workload(spec).value()).value();
        sim.run_until(300.0);
        return sim;
    }();
    for (auto _ : state) {
        sim::Simulator trial = base.clone();
        trial.set_locked_clock(0, 990.0);
        trial.run_until(330.0);
        benchmark::DoNotOptimize(trial.observe(0).output_tokens);
    }
}
BENCHMARK(BM_TwinCandidate)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
