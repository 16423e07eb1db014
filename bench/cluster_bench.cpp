// The cluster budget's costs (issue 16, docs/cluster.md): allocate_budget() over N nodes' demand
// curves (the pure water-filling), and one full coordinator round of ClusterAgent over the
// in-process store (read every member key in one transaction, parse, divide, fenced writes) with
// N members publishing their curves. The coordinator runs one round per half period.
//   build/release/cluster_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include "pals/cluster/allocator.hpp"
#include "pals/cluster/cluster_agent.hpp"
#include "pals/cluster/cluster_store.hpp"

namespace {

using namespace pals;
using namespace pals::cluster;

constexpr double kMinW = 1600.0;
constexpr double kMaxW = 5600.0;

std::vector<DemandPoint> curve(double k, double cap_tok_s) {
    std::vector<DemandPoint> c;
    for (int i = 0; i < 8; ++i) {
        const double w = kMinW + (kMaxW - kMinW) * i / 7.0;
        c.push_back({w, std::min(cap_tok_s, k * std::sqrt(w - kMinW)), 0.0});
    }
    return c;
}

std::vector<NodeDemand> demands(int n) {
    std::mt19937 rng(3);
    std::uniform_real_distribution<double> u(0.2, 1.0);
    std::vector<NodeDemand> out;
    for (int i = 0; i < n; ++i) {
        out.push_back({kMinW, kMaxW, curve(100.0 * u(rng), 5000.0 * u(rng))});
    }
    return out;
}

void BM_AllocateBudget(benchmark::State& state) {
    const int n = static_cast<int>(state.range(0));
    const std::vector<NodeDemand> nodes = demands(n);
    const double budget = 0.5 * (kMinW + kMaxW) * n;
    for (auto _ : state) {
        AllocationResult r = allocate_budget(budget, nodes);
        benchmark::DoNotOptimize(r);
    }
    state.counters["nodes"] = n;
}
BENCHMARK(BM_AllocateBudget)->Arg(100)->Arg(1000)->Arg(10000)->Unit(benchmark::kMicrosecond);

/// A simulated node for the agents: budgets in force at once, a fixed curve.
class BenchPort final : public NodePort {
public:
    explicit BenchPort(std::vector<DemandPoint> c) : m_curve(std::move(c)) {}
    void request_budget(double w) override { m_w = w; }
    double budget_in_force_w() override { return m_w; }
    std::vector<DemandPoint> demand_curve() override { return m_curve; }

private:
    std::vector<DemandPoint> m_curve;
    double m_w = kMinW;
};

void BM_CoordinatorRound(benchmark::State& state) {
    const int n = static_cast<int>(state.range(0));
    ManualClock clock;
    InMemoryClusterStore store(clock);
    std::vector<std::unique_ptr<BenchPort>> ports;
    std::vector<std::unique_ptr<ClusterAgent>> agents;
    const std::vector<NodeDemand> d = demands(n);
    for (int i = 0; i < n; ++i) {
        ports.push_back(std::make_unique<BenchPort>(d[static_cast<std::size_t>(i)].curve));
        AgentOptions o;
        o.cluster = "bench";
        o.node = fmt::format("n{}", i);  // not "n" + to_string: GCC 12's -Wrestrict false alarm
        o.period = Seconds(10.0);
        o.poll = Seconds(5.0);
        o.lease_ttl_s = 60;
        o.floor_w = kMinW;
        o.max_w = kMaxW;
        agents.push_back(std::make_unique<ClusterAgent>(store, clock, *ports.back(), o));
    }
    if (!agents.front()->set_cluster_budget(0.5 * (kMinW + kMaxW) * n).is_ok()) {
        state.SkipWithError("set_cluster_budget failed");
        return;
    }
    for (int round = 0; round < 3; ++round) {  // join, elect, settle
        for (auto& a : agents) {
            a->step();
        }
        clock.advance(Seconds(5.0));
    }
    ClusterAgent* leader = nullptr;
    for (auto& a : agents) {
        if (a->coordinator()) {
            leader = a.get();
        }
    }
    if (leader == nullptr) {
        state.SkipWithError("no coordinator");
        return;
    }
    double worst = 0.0;
    for (auto _ : state) {
        leader->step();  // a full round: keepalive as due, read, divide, write
        worst = std::max(worst, leader->snapshot().last_round_s);
    }
    state.counters["nodes"] = n;
    state.counters["round_max_ms"] = 1e3 * worst;
}
BENCHMARK(BM_CoordinatorRound)->Arg(100)->Arg(1000)->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
    spdlog::set_level(spdlog::level::warn);  // the agents log every join and allocation
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
        return 1;
    }
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
