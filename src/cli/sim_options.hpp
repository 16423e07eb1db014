#pragma once
/// @file sim_options.hpp
/// @brief The flags shared by every command that builds a simulated node and a workload
/// (simulate, demo, calibrate, profile, evaluate): registration on a CLI11 subcommand and
/// conversion to typed configs.

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "pals/common/status.hpp"
#include "pals/sim/simulator.hpp"
#include "pals/workload/workload.hpp"

namespace pals::cli {

/// Raw flag values of a simulated node.
struct NodeOptions {
    std::string model;
    std::string gpu = "H100-SXM";
    std::string dtype;
    int tp = 1;
    int ep = 1;
    int replicas = 1;
    int max_num_seqs = 256;
    int max_num_batched_tokens = 8192;
    bool no_chunked_prefill = false;
    int block_size = 16;
    double gpu_memory_utilization = 0.9;
    int max_model_len = 0;
    double routing_skew = 0.0;
    double power_cap_w = 0.0;
    double locked_clock_mhz = 0.0;

    /// Adds --model, --gpu, --tp, ... to `app`.
    void add_to(CLI::App& app);
    /// Loads the model config and validates everything (errors name the flag).
    [[nodiscard]] Result<sim::NodeConfig> build() const;
};

/// Raw flag values of a workload.
struct WorkloadOptions {
    std::string trace;
    double time_scale = 1.0;
    double rate_scale = 1.0;
    double duration_s = 0.0;
    double rate_rps = 0.0;
    double burstiness = 1.0;
    int num_requests = 0;
    std::string input_len = "1024";
    std::string output_len = "128";
    std::uint64_t seed = 0;

    void add_to(CLI::App& app);
    /// --trace -> trace replay; --rate -> synthetic arrivals; --num-requests alone -> closed loop.
    [[nodiscard]] Result<workload::WorkloadSpec> build() const;
};

/// --slo-ttft / --slo-tpot.
struct SloOptions {
    double ttft_s = 1.0;
    double tpot_s = 0.1;
    void add_to(CLI::App& app);
    [[nodiscard]] sim::SloTargets build() const { return {ttft_s, tpot_s}; }
};

/// The default model config of the embedded demo (Mixtral-8x7B) under the shared folder.
[[nodiscard]] std::string default_model_path();

}  // namespace pals::cli
