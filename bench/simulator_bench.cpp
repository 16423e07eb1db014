// Simulator speed: replay the full Azure conversation trace (19,366 requests, ~1 hour) for
// Mixtral-8x7B on 2xH100 (TP2). Target: under 1 s of wall time on one core.
//   build/release/simulator_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <string>

#include "pals/sim/simulator.hpp"

namespace {

const std::string kShared = PALS_SHARED_DIR;

pals::sim::NodeConfig mixtral_tp2() {
    pals::sim::NodeConfig node;
    node.model =
        pals::model::load_model_spec(kShared + "/models/mistralai__Mixtral-8x7B-Instruct-v0.1.json")
            .value();
    node.gpu = pals::sim::find_gpu_spec("H100-SXM").value();
    node.parallel.tp = 2;
    return node;
}

void BM_ReplayAzureConversationTrace(benchmark::State& state) {
    auto requests =
        pals::workload::load_azure_trace(kShared + "/traces/AzureLLMInferenceTrace_conv.csv");
    if (!requests.is_ok()) {
        state.SkipWithError(requests.status().message().c_str());
        return;
    }
    const pals::sim::NodeConfig node = mixtral_tp2();
    double simulated_s = 0.0;
    double events = 0.0;
    for (auto _ : state) {
        auto sim = pals::sim::Simulator::create(node, requests.value());
        sim->run_to_completion();
        const pals::sim::SimulationReport r = sim->report();
        simulated_s += r.duration_s;
        events += static_cast<double>(r.events);
        benchmark::DoNotOptimize(r.energy_j);
    }
    state.counters["sim_s_per_wall_s"] =
        benchmark::Counter(simulated_s, benchmark::Counter::kIsRate);
    state.counters["events_per_s"] = benchmark::Counter(events, benchmark::Counter::kIsRate);
    state.counters["requests"] = static_cast<double>(requests->size());
}
BENCHMARK(BM_ReplayAzureConversationTrace)->Unit(benchmark::kMillisecond);

void BM_LoadAzureConversationTrace(benchmark::State& state) {
    for (auto _ : state) {
        auto requests =
            pals::workload::load_azure_trace(kShared + "/traces/AzureLLMInferenceTrace_conv.csv");
        benchmark::DoNotOptimize(requests.is_ok());
    }
}
BENCHMARK(BM_LoadAzureConversationTrace)->Unit(benchmark::kMillisecond);

void BM_StepCost(benchmark::State& state) {
    const pals::sim::NodeConfig node = mixtral_tp2();
    auto cost = pals::sim::StepCostModel::create(node.model, node.gpu, node.parallel).value();
    pals::sim::GpuPhysics physics(node.gpu);
    pals::sim::StepShape shape;
    shape.decode_seqs = static_cast<int>(state.range(0));
    shape.logits = shape.decode_seqs;
    shape.decode_ctx_full = 1000.0 * shape.decode_seqs;
    for (auto _ : state) {
        benchmark::DoNotOptimize(physics.run_step(cost.step_work(shape), 350.0));
    }
}
BENCHMARK(BM_StepCost)->Arg(8)->Arg(256)->ArgNames({"batch"});

}  // namespace

BENCHMARK_MAIN();
