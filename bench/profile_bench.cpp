// Profiler, fit and model-query speed (docs/profile.md, "Targets"):
// - an 11 x 11 sweep (caps 200:700:50 x batch caps 1..1024, default warm-up 20 s and window
//   60 s of simulated time) on the simulator: target under 30 s of wall time;
// - `pals fit` of that profile (fit + cross-validation + MODEL.json text): target under 1 s;
// - PowerModel::best_point, the controller's query: target under 10 us.
//   build/release/profile_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "pals/profile/model_fit.hpp"
#include "pals/profile/power_model.hpp"
#include "pals/profile/profiler.hpp"
#include "pals/profile/sim_session_factory.hpp"

namespace {

using namespace pals;

const std::string kShared = PALS_SHARED_DIR;
const std::vector<std::string> kModels = {"meta-llama__Llama-3.1-8B-Instruct.json",
                                          "Qwen__Qwen3-30B-A3B-Instruct-2507.json"};

sim::NodeConfig h100_node(const std::string& model_file) {
    sim::NodeConfig node;
    node.model = model::load_model_spec(kShared + "/models/" + model_file).value();
    node.gpu = sim::find_gpu_spec("H100-SXM").value();
    return node;
}

profile::SweepPlan default_plan() {
    profile::SweepPlan plan;
    plan.workloads = {profile::default_workload_mix()};
    plan.caps_w = profile::parse_caps("200:700:50").value();
    plan.batch_caps = profile::parse_batches("1,2,4,...,1024").value();
    return plan;  // default measure: 20 s warm-up, 60 s window, 1 s samples
}

Result<profile::ProfileTable> sweep(const std::string& model_file) {
    const profile::SweepPlan plan = default_plan();
    auto factory = profile::SimSessionFactory::create(h100_node(model_file), plan.measure,
                                                      plan.batch_caps.back());
    if (!factory.is_ok()) {
        return factory.status();
    }
    profile::ProfileTable table;
    PALS_RETURN_IF_ERROR(profile::run_sweep(*factory.value(), plan, table, {}));
    return table;
}

/// The Llama-3.1-8B profile, measured once for the fit and query benchmarks.
const profile::ProfileTable& llama_profile() {
    static const profile::ProfileTable kTable = sweep(kModels[0]).value();
    return kTable;
}

const profile::PowerModel& llama_model() {
    static const profile::PowerModel kModel = [] {
        const auto fit = profile::fit_profile(llama_profile()).value();
        return profile::PowerModel::parse(profile::model_json(fit), "bench.json").value();
    }();
    return kModel;
}

void BM_Sweep11x11(benchmark::State& state) {
    const std::string& model_file = kModels[static_cast<std::size_t>(state.range(0))];
    double points = 0.0;
    for (auto _ : state) {
        auto table = sweep(model_file);
        if (!table.is_ok()) {
            state.SkipWithError(table.status().message().c_str());
            return;
        }
        points += static_cast<double>(table->rows.size());
        benchmark::DoNotOptimize(table->rows.back().power_w);
    }
    state.counters["points_per_s"] = benchmark::Counter(points, benchmark::Counter::kIsRate);
    state.SetLabel(model_file.substr(0, model_file.rfind(".json")));
}
BENCHMARK(BM_Sweep11x11)
    ->Arg(0)
    ->Arg(1)
    ->ArgNames({"model"})
    ->Unit(benchmark::kSecond)
    ->Iterations(1);

void BM_Fit(benchmark::State& state) {
    const profile::ProfileTable& table = llama_profile();
    double mape_t = 0.0;
    double mape_p = 0.0;
    for (auto _ : state) {
        auto fit = profile::fit_profile(table);
        if (!fit.is_ok()) {
            state.SkipWithError(fit.status().message().c_str());
            return;
        }
        const std::string json = profile::model_json(fit.value());
        benchmark::DoNotOptimize(json.data());
        mape_t =
            fit->workloads[0].cv[static_cast<std::size_t>(profile::Quantity::kThroughput)].mape_pct;
        mape_p = fit->workloads[0].cv[static_cast<std::size_t>(profile::Quantity::kPower)].mape_pct;
    }
    state.counters["rows"] = static_cast<double>(table.rows.size());
    state.counters["cv_mape_tok_s_pct"] = mape_t;
    state.counters["cv_mape_power_pct"] = mape_p;
}
BENCHMARK(BM_Fit)->Unit(benchmark::kMillisecond);

void BM_ModelLoad(benchmark::State& state) {
    const std::string json = profile::model_json(profile::fit_profile(llama_profile()).value());
    for (auto _ : state) {
        auto model = profile::PowerModel::parse(json, "bench.json");
        benchmark::DoNotOptimize(model.is_ok());
    }
}
BENCHMARK(BM_ModelLoad)->Unit(benchmark::kMillisecond);

/// Queries the controller might ask: demand across the model's range, an ITL bound, sometimes
/// a power or cap bound.
std::vector<profile::Query> random_queries(const profile::PowerModel& model, std::size_t n) {
    std::mt19937_64 rng(42);
    const double max_tok_s =
        model.predict(model.cap_max_w(), model.batch_caps().back()).value().throughput_tok_s;
    std::uniform_real_distribution<double> demand(0.0, max_tok_s);
    std::uniform_real_distribution<double> itl(0.01, 0.2);
    std::uniform_real_distribution<double> power(150.0, 750.0);
    std::uniform_real_distribution<double> coin(0.0, 1.0);
    std::vector<profile::Query> out(n);
    for (profile::Query& q : out) {
        q.demand_tok_s = demand(rng);
        q.max_itl_s = itl(rng);
        q.max_power_w = coin(rng) < 0.5 ? power(rng) : 0.0;
        q.max_power_cap_w = coin(rng) < 0.3 ? power(rng) : 0.0;
    }
    return out;
}

void BM_BestPoint(benchmark::State& state) {
    const profile::PowerModel& model = llama_model();
    const std::vector<profile::Query> queries = random_queries(model, 4096);
    std::size_t i = 0;
    std::size_t feasible = 0;
    for (auto _ : state) {
        const profile::QueryResult r = model.best_point(queries[i++ & 4095]);
        feasible += r.feasible ? 1 : 0;
        benchmark::DoNotOptimize(r.point.power_cap_w);
    }
    // Tail: time queries one by one (the clock read adds a few tens of ns).
    std::vector<double> us;
    us.reserve(queries.size());
    for (const profile::Query& q : queries) {
        const auto t0 = std::chrono::steady_clock::now();
        const profile::QueryResult r = model.best_point(q);
        benchmark::DoNotOptimize(r.point.power_cap_w);
        us.push_back(
            std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0)
                .count());
    }
    std::sort(us.begin(), us.end());
    state.counters["query_p50_us"] = us[us.size() / 2];
    state.counters["query_p99_us"] = us[us.size() * 99 / 100];
    state.counters["query_max_us"] = us.back();
    state.counters["feasible_share"] =
        static_cast<double>(feasible) /
        static_cast<double>(std::max<std::int64_t>(1, state.iterations()));
}
BENCHMARK(BM_BestPoint)->Unit(benchmark::kNanosecond);

void BM_Predict(benchmark::State& state) {
    const profile::PowerModel& model = llama_model();
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<double> cap(model.cap_min_w(), model.cap_max_w());
    std::uniform_int_distribution<int> batch(model.batch_caps().front(), model.batch_caps().back());
    std::vector<std::pair<double, int>> points(4096);
    for (auto& p : points) {
        p = {cap(rng), batch(rng)};
    }
    std::size_t i = 0;
    for (auto _ : state) {
        const auto& p = points[i++ & 4095];
        auto r = model.predict(p.first, p.second);
        benchmark::DoNotOptimize(r.is_ok());
    }
}
BENCHMARK(BM_Predict)->Unit(benchmark::kNanosecond);

}  // namespace

BENCHMARK_MAIN();
