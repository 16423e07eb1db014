#pragma once
// Helpers of the profile tests: Status assertions, model configs, synthetic and small simulated
// profiles.

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "pals/common/status.hpp"
#include "pals/model/model_spec.hpp"
#include "pals/profile/profile_store.hpp"
#include "pals/profile/profiler.hpp"
#include "pals/profile/sim_session_factory.hpp"
#include "pals/sim/gpu_spec.hpp"
#include "pals/sim/simulator.hpp"
#include "status_assertions.hpp"

namespace pals::profile::testing {

inline model::ModelSpec shared_model(const std::string& file) {
    auto spec = model::load_model_spec(std::string(PALS_SHARED_DIR) + "/models/" + file);
    EXPECT_TRUE(spec.is_ok()) << spec.status().message();
    return spec.value();
}
inline model::ModelSpec llama8b() {
    return shared_model("meta-llama__Llama-3.1-8B-Instruct.json");
}
inline model::ModelSpec qwen3_moe() {
    return shared_model("Qwen__Qwen3-30B-A3B-Instruct-2507.json");
}

inline sim::NodeConfig llama_node() {
    sim::NodeConfig node;
    node.model = llama8b();
    node.gpu = sim::find_gpu_spec("H100-SXM").value();
    node.engine.max_num_seqs = 256;
    return node;
}

/// Short windows: enough for the simulator's steady state, fast in tests.
inline MeasureSettings short_measure() {
    MeasureSettings m;
    m.warmup = Seconds{3.0};
    m.window = Seconds{8.0};
    m.sample_period = Seconds{0.5};
    return m;
}

/// A small simulated profile: Llama-3.1-8B on one H100, 6 caps x 4 batch caps. Built once.
inline const ProfileTable& small_sim_profile() {
    static const ProfileTable kTable = [] {
        auto factory = SimSessionFactory::create(llama_node(), short_measure(), 128);
        EXPECT_TRUE(factory.is_ok()) << factory.status().message();
        SweepPlan plan;
        plan.workloads = {default_workload_mix()};
        plan.caps_w = {200, 300, 400, 500, 600, 700};
        plan.batch_caps = {4, 16, 64, 128};
        plan.measure = short_measure();
        ProfileTable table;
        const Status st = run_sweep(*factory.value(), plan, table, {});
        EXPECT_TRUE(st.is_ok()) << st.message();
        return table;
    }();
    return kTable;
}

/// A row with every fitted column set from closed-form "physics": throughput and power rise
/// with the cap and saturate; ITL falls with the cap and rises with the batch.
inline ProfileRow synthetic_row(const std::string& workload, double cap, int batch) {
    ProfileRow r;
    r.workload = workload;
    r.power_cap_w = cap;
    r.batch_cap = batch;
    r.enforced_cap_w = cap;
    r.gpus = 1;
    const double speed = 1.0 - std::exp(-cap / 250.0);  // rises, saturates
    const double b = batch;
    r.throughput_tok_s = 4000.0 * speed * b / (b + 32.0);
    r.power_w = std::min(cap, 120.0 + 0.9 * cap * b / (b + 8.0));
    r.j_per_token = r.power_w / r.throughput_tok_s;
    r.itl_p50_s = b / r.throughput_tok_s;
    r.itl_p90_s = 1.2 * r.itl_p50_s;
    r.itl_p99_s = 1.5 * r.itl_p50_s;
    r.tpot_p50_s = r.itl_p50_s;
    r.tpot_p90_s = 1.1 * r.itl_p50_s;
    r.tpot_p99_s = 1.3 * r.itl_p50_s;
    r.ttft_p50_s = 0.1;
    r.ttft_p90_s = 0.2 + 0.001 * b;
    r.ttft_p99_s = 0.3 + 0.001 * b;
    r.avg_batch = b * 0.98;
    r.kv_usage = 0.5;
    r.sm_clock_mhz = 900.0 + 1000.0 * speed;
    r.saturated = true;
    r.warmup_s = 1;
    r.window_s = 10;
    r.backend = "synthetic";
    r.shape.model = "test-model";
    r.shape.gpu = "H100-SXM";
    r.shape.active_params_b = 8;
    r.shape.total_params_b = 8;
    return r;
}

/// A full synthetic grid.
inline ProfileTable synthetic_profile(const std::vector<double>& caps,
                                      const std::vector<int>& batches,
                                      const std::vector<std::string>& workloads = {"default"}) {
    ProfileTable t;
    for (const std::string& w : workloads) {
        for (int b : batches) {
            for (double c : caps) {
                t.append(synthetic_row(w, c, b));
            }
        }
    }
    return t;
}

/// A fresh temporary directory for one test.
inline std::filesystem::path temp_dir(const std::string& name) {
    const auto dir = std::filesystem::temp_directory_path() /
                     ("pals_profile_test_" + name + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    return dir;
}

}  // namespace pals::profile::testing
