// Soak of the live control loop: control::Daemon (and its Controller) run for hours of simulated
// time on a manual clock, against sim::SimulatedGpuBackend and a synthetic serving engine whose
// load follows a day curve. Prints the process RSS at start, every simulated hour and at the end,
// and the wall time of one period's work (the daemon's polls plus its tick) as p50/p99/max.
//   build/release/daemon_soak_bench                      # 10 simulated minutes (the ctest smoke)
//   build/release/daemon_soak_bench --soak_hours=24      # the full soak (docs/soak.md)
// Options of its own (removed before Google Benchmark sees the rest): --soak_hours=H,
// --soak_policy=cap-only|batch-only|clock-only (default clock-only).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "pals/common/clock.hpp"
#include "pals/control/daemon.hpp"
#include "pals/control/policies.hpp"
#include "pals/control/state.hpp"
#include "pals/power/saved_controls.hpp"
#include "pals/sim/gpu_spec.hpp"
#include "pals/sim/simulated_gpu_backend.hpp"

namespace {

using pals::Seconds;

constexpr double kPeriodS = 1.0;
constexpr double kHourS = 3600.0;
constexpr double kDayS = 86400.0;
constexpr int kGpus = 2;
constexpr int kMaxBatch = 256;
constexpr double kSmokeSeconds = 600.0;

double rss_mb() {
    std::ifstream statm("/proc/self/statm");
    long pages_total = 0;
    long pages_resident = 0;
    statm >> pages_total >> pages_resident;
    return static_cast<double>(pages_resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) /
           (1024.0 * 1024.0);
}

/// Wall times in log buckets (2 % wide, 10 ns .. 100 s): a fixed-size record, so that the
/// measurement itself does not grow the RSS it reports.
class WallHistogram {
public:
    void add(double s) {
        ++m_count;
        m_max_s = std::max(m_max_s, s);
        const double x = std::log(std::max(s, kMinS) / kMinS) / std::log(kRatio);
        m_buckets[std::min<std::size_t>(kBuckets - 1, static_cast<std::size_t>(x))] += 1;
    }
    [[nodiscard]] double quantile(double q) const {
        const auto target = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(m_count)));
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < kBuckets; ++i) {
            seen += m_buckets[i];
            if (seen >= target && seen > 0) {
                return std::min(m_max_s, kMinS * std::pow(kRatio, static_cast<double>(i + 1)));
            }
        }
        return m_max_s;
    }
    [[nodiscard]] double max_s() const { return m_max_s; }
    [[nodiscard]] std::uint64_t count() const { return m_count; }

private:
    static constexpr double kMinS = 1e-8;
    static constexpr double kRatio = 1.02;
    static constexpr std::size_t kBuckets = 1400;  // 1e-8 * 1.02^1400 > 100 s
    std::array<std::uint64_t, kBuckets> m_buckets{};
    std::uint64_t m_count = 0;
    double m_max_s = 0.0;
};

/// The simulated node: GPUs, a synthetic engine and a manual clock whose sleep_until() advances
/// both (GPU power = the load's demand, held to the limit; the engine serves what the cap, the
/// batch cap and the clock allow). Between sleeps it times the daemon's work.
class SoakNode final : public pals::Clock {
public:
    SoakNode() : m_gpus(pals::sim::find_gpu_spec("H100-SXM").value(), kGpus), m_engine(*this) {}

    [[nodiscard]] Seconds now() const override { return Seconds{m_now_s}; }
    void sleep_until(Seconds t) override {
        const auto woke = m_woke;
        const auto slept = std::chrono::steady_clock::now();
        m_period_work_s += std::chrono::duration<double>(slept - woke).count();
        const double target = t.count();
        while (m_now_s < target) {
            const double next = std::min(target, m_next_period_s);
            advance(next - m_now_s);
            if (m_now_s >= m_next_period_s - 1e-12) {
                m_work.add(m_period_work_s);
                m_period_work_s = 0.0;
                m_next_period_s += kPeriodS;
            }
            if (m_now_s >= m_next_report_s - 1e-12) {
                report("hour");
                m_next_report_s += kHourS;
            }
        }
        m_woke = std::chrono::steady_clock::now();
    }

    void report(const char* what) const {
        std::printf(
            "soak %-5s t=%7.2f h rss=%8.2f MB periods=%llu tick_p50=%.1f us tick_p99=%.1f us "
            "tick_max=%.1f us\n",
            what, m_now_s / kHourS, rss_mb(), static_cast<unsigned long long>(m_work.count()),
            m_work.quantile(0.5) * 1e6, m_work.quantile(0.99) * 1e6, m_work.max_s() * 1e6);
        std::fflush(stdout);
    }

    [[nodiscard]] pals::sim::SimulatedGpuBackend& gpus() { return m_gpus; }
    [[nodiscard]] pals::engine::ServingEngine& engine() { return m_engine; }
    [[nodiscard]] const WallHistogram& work() const { return m_work; }
    void start_timing() { m_woke = std::chrono::steady_clock::now(); }

    /// Offered load (output tokens/s) over the simulated day: 30 % to 100 % of 6000.
    [[nodiscard]] double demand_tok_s() const {
        return 6000.0 * (0.65 + 0.35 * std::sin(2.0 * M_PI * m_now_s / kDayS));
    }

private:
    class Engine final : public pals::engine::ServingEngine {
    public:
        explicit Engine(SoakNode& node)
            : m_node(node)
            , m_ttft(
                  pals::engine::CumulativeHistogram::with_bounds(pals::engine::vllm_ttft_buckets()))
            , m_itl(
                  pals::engine::CumulativeHistogram::with_bounds(pals::engine::vllm_itl_buckets()))
            , m_tpot(m_itl)
            , m_e2e(pals::engine::CumulativeHistogram::with_bounds(
                  pals::engine::vllm_e2e_buckets())) {}
        [[nodiscard]] std::string_view engine_name() const override { return "soak"; }
        [[nodiscard]] pals::Result<pals::engine::EngineSnapshot> snapshot() override {
            pals::engine::EngineSnapshot s;
            s.time = m_node.now();
            s.running = m_running;
            s.waiting = m_waiting;
            s.batch_cap = m_batch_cap;
            s.prompt_tokens = 4.0 * m_tokens;
            s.generation_tokens = m_tokens;
            s.requests_finished = m_tokens / 200.0;
            s.ttft_s = m_ttft;
            s.itl_s = m_itl;
            s.tpot_s = m_tpot;
            s.e2e_s = m_e2e;
            return s;
        }
        [[nodiscard]] int max_batch_cap() const override { return kMaxBatch; }
        [[nodiscard]] pals::Status set_batch_cap(int batch_cap) override {
            m_batch_cap = batch_cap;
            return pals::Status::ok();
        }
        [[nodiscard]] std::vector<int> gpus() const override { return {0, 1}; }

        /// Serves `dt_s` at `speed` (0..1 of the node's capacity at full power and clock).
        void serve(double dt_s, double demand_tok_s, double speed) {
            const double capacity = 8000.0 * speed * std::min(1.0, m_batch_cap / 128.0);
            const double served = std::min(demand_tok_s, capacity);
            m_tokens += served * dt_s;
            m_running = std::min(m_batch_cap, static_cast<int>(served / 40.0));
            m_waiting =
                demand_tok_s > capacity ? static_cast<int>((demand_tok_s - capacity) / 40.0) : 0;
            const double itl = 0.012 * (1.0 + m_running / 128.0) / std::max(speed, 0.1);
            m_itl.observe(itl, served * dt_s);
            m_tpot.observe(itl, served * dt_s / 200.0);
            m_ttft.observe(0.05 + 0.02 * m_waiting, served * dt_s / 200.0);
            m_e2e.observe(200.0 * itl, served * dt_s / 200.0);
        }

    private:
        SoakNode& m_node;
        pals::engine::CumulativeHistogram m_ttft;
        pals::engine::CumulativeHistogram m_itl;
        pals::engine::CumulativeHistogram m_tpot;
        pals::engine::CumulativeHistogram m_e2e;
        double m_tokens = 0.0;
        int m_running = 0;
        int m_waiting = 0;
        int m_batch_cap = kMaxBatch;
    };

    void advance(double dt_s) {
        if (dt_s <= 0.0) {
            return;
        }
        m_now_s += dt_s;
        const pals::sim::GpuSpec& spec = m_gpus.spec();
        const double demand = demand_tok_s();
        double speed = 1.0;
        for (int g = 0; g < kGpus; ++g) {
            const pals::Result<double> enforced = m_gpus.enforced_power_limit_w(g);
            const double limit = enforced.is_ok() ? enforced.value() : spec.power_limit_max_w;
            double clock = spec.sm_clock_max_mhz;
            if (auto locked = m_gpus.locked_sm_clocks(g); locked.is_ok() && locked.value()) {
                clock = std::min(clock, locked.value()->max_mhz);
            }
            const double want_w = 150.0 + 500.0 * demand / 6000.0 * clock / spec.sm_clock_max_mhz;
            const double power = std::min(limit, want_w);
            speed = std::min(
                speed, std::sqrt(power / std::max(want_w, 1.0)) * clock / spec.sm_clock_max_mhz);
            (void)m_gpus.record_interval(g, power, clock * std::min(1.0, power / want_w), dt_s);
        }
        m_engine.serve(dt_s, demand, speed);
    }

    double m_now_s = 0.0;
    double m_next_period_s = kPeriodS;
    double m_next_report_s = kHourS;
    double m_period_work_s = 0.0;
    std::chrono::steady_clock::time_point m_woke = std::chrono::steady_clock::now();
    WallHistogram m_work;
    pals::sim::SimulatedGpuBackend m_gpus;
    Engine m_engine;
};

double g_soak_seconds = kSmokeSeconds;
std::string g_policy = "clock-only";

std::unique_ptr<pals::control::Policy> make_policy() {
    if (g_policy == "cap-only") {
        return pals::control::make_cap_only_policy();
    }
    if (g_policy == "batch-only") {
        return pals::control::make_batch_only_policy();
    }
    return pals::control::make_clock_only_policy();
}

void BM_DaemonSoak(benchmark::State& state) {
    const double duration_s = static_cast<double>(state.range(0));
    for (auto _ : state) {
        const double rss_start = rss_mb();
        SoakNode node;
        pals::control::StateStore store;
        const std::string saved_path = (std::filesystem::temp_directory_path() /
                                        ("pals_soak_saved_" + std::to_string(getpid()) + ".json"))
                                           .string();
        pals::power::SavedControls saved(saved_path);
        pals::control::ControllerConfig config;
        config.period = Seconds{kPeriodS};
        config.slo_ttft_s = 1.0;
        config.slo_tpot_s = 0.05;
        // A budget schedule that changes every simulated hour: 1400 W, then 900 W, and so on.
        std::vector<std::pair<double, double>> steps;
        for (double t = 0.0; t < duration_s; t += kHourS) {
            steps.emplace_back(t, static_cast<int>(t / kHourS) % 2 == 0 ? 1400.0 : 900.0);
        }
        config.budget = pals::control::BudgetSchedule::from_steps(steps).value();
        pals::control::Daemon daemon(node, node.gpus(), {&node.engine()}, make_policy(), config,
                                     store, saved);
        std::printf(
            "soak start t=   0.00 h rss=%8.2f MB (before the daemon: %.2f MB) policy=%s "
            "duration=%.2f h\n",
            rss_mb(), rss_start, g_policy.c_str(), duration_s / kHourS);
        const auto wall_start = std::chrono::steady_clock::now();
        std::atomic<bool> stop{false};
        node.start_timing();
        const pals::Status status = daemon.run(stop, Seconds{duration_s});
        const double wall_s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
        node.report("end");
        if (!status.is_ok()) {
            state.SkipWithError(status.message().c_str());
            return;
        }
        const WallHistogram& work = node.work();
        state.counters["sim_h"] = duration_s / kHourS;
        state.counters["periods"] = static_cast<double>(work.count());
        state.counters["tick_p50_us"] = work.quantile(0.5) * 1e6;
        state.counters["tick_p99_us"] = work.quantile(0.99) * 1e6;
        state.counters["tick_max_us"] = work.max_s() * 1e6;
        state.counters["rss_start_mb"] = rss_start;
        state.counters["rss_end_mb"] = rss_mb();
        state.counters["rss_growth_mb"] = rss_mb() - rss_start;
        state.counters["sim_s_per_wall_s"] = duration_s / std::max(wall_s, 1e-9);
        std::error_code ec;
        std::filesystem::remove(saved_path, ec);
    }
}

/// Removes `--name=value` from argv and returns value ("" when absent).
std::string take_flag(int& argc, char** argv, const char* name) {
    const std::string prefix = std::string("--") + name + "=";
    std::string value;
    int out = 1;
    for (int i = 1; i < argc; ++i) {
        if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0) {
            value = argv[i] + prefix.size();
        } else {
            argv[out++] = argv[i];
        }
    }
    argc = out;
    return value;
}

}  // namespace

int main(int argc, char** argv) {
    if (const std::string hours = take_flag(argc, argv, "soak_hours"); !hours.empty()) {
        const double h = std::strtod(hours.c_str(), nullptr);
        if (!(h > 0.0 && h <= 24.0 * 365.0)) {
            std::fprintf(stderr, "daemon_soak_bench: --soak_hours must be in (0, 8760], got '%s'\n",
                         hours.c_str());
            return 2;
        }
        g_soak_seconds = h * kHourS;
    }
    if (const std::string policy = take_flag(argc, argv, "soak_policy"); !policy.empty()) {
        if (policy != "cap-only" && policy != "batch-only" && policy != "clock-only") {
            std::fprintf(
                stderr,
                "daemon_soak_bench: --soak_policy must be cap-only, batch-only or clock-only\n");
            return 2;
        }
        g_policy = policy;
    }
    benchmark::RegisterBenchmark("BM_DaemonSoak", BM_DaemonSoak)
        ->Arg(static_cast<std::int64_t>(g_soak_seconds))
        ->ArgName("sim_s")
        ->Iterations(1)
        ->Unit(benchmark::kMillisecond);
    benchmark::Initialize(&argc, argv);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
