#pragma once
// Helpers for simulator tests: the shared model configs and small workloads.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "pals/model/model_spec.hpp"
#include "pals/sim/gpu_spec.hpp"
#include "pals/workload/workload.hpp"

namespace pals::sim::testing {

inline model::ModelSpec shared_model(const std::string& file) {
    auto spec = model::load_model_spec(std::string(PALS_SHARED_DIR) + "/models/" + file);
    EXPECT_TRUE(spec.is_ok()) << spec.status().message();
    return spec.value();
}

inline model::ModelSpec mixtral() {
    return shared_model("mistralai__Mixtral-8x7B-Instruct-v0.1.json");
}
inline model::ModelSpec llama8b() {
    return shared_model("meta-llama__Llama-3.1-8B-Instruct.json");
}
inline model::ModelSpec qwen3_moe() {
    return shared_model("Qwen__Qwen3-30B-A3B-Instruct-2507.json");
}
inline model::ModelSpec qwen3_dense() {
    return shared_model("Qwen__Qwen3-32B.json");
}

inline GpuSpec h100() {
    return find_gpu_spec("H100-SXM").value();
}

/// `n` requests at t = 0 with fixed lengths.
inline std::vector<workload::Request> closed_loop(int n, int input, int output) {
    std::vector<workload::Request> out;
    for (int i = 0; i < n; ++i) {
        out.push_back({static_cast<std::uint64_t>(i), 0.0, input, output});
    }
    return out;
}

}  // namespace pals::sim::testing
