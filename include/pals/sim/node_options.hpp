#pragma once
/// @file node_options.hpp
/// @brief The options of a simulated node and of its SLO targets, declared once
/// (common/option_table.hpp): a scenario's [node] and [slo] tables, the flags of every command
/// that builds a node (simulate, demo, profile, sim-serve) and their `PALS_*` variables all read
/// these tables. Defaults are those of sim::NodeConfig; NodeOptions::build() is the one
/// validation of a node.

#include <filesystem>
#include <functional>
#include <string>

#include "pals/common/option_table.hpp"
#include "pals/common/status.hpp"
#include "pals/sim/simulator.hpp"

namespace pals::sim {

/// The values of a node's options as given (a model path, a GPU name, counts), before the model
/// config is read.
struct NodeOptions {
    std::string model;  ///< a Hugging Face config.json; "" = the caller's default
    std::string gpu = "H100-SXM";
    std::string dtype;  ///< "" = from the model config
    int tp = ParallelConfig{}.tp;
    int ep = ParallelConfig{}.ep;
    int replicas = NodeConfig{}.replicas;
    int max_num_seqs = EngineConfig{}.max_num_seqs;
    int max_num_batched_tokens = EngineConfig{}.max_num_batched_tokens;
    bool enable_chunked_prefill = EngineConfig{}.enable_chunked_prefill;
    int block_size = EngineConfig{}.block_size;
    double gpu_memory_utilization = EngineConfig{}.gpu_memory_utilization;
    int max_model_len = EngineConfig{}.max_model_len;
    double routing_skew = ParallelConfig{}.routing_skew;
    std::string router{router_name(RouterConfig{}.mode)};
    int sessions = RouterConfig{}.sessions;
    double session_skew = RouterConfig{}.session_skew;
    double power_cap_w = NodeConfig{}.power_cap_w;
    double locked_clock_mhz = NodeConfig{}.locked_clock_mhz;

    /// Reads the model config (`resolve` maps the `model` value to a path; `default_model` when
    /// it is empty) and checks everything. Errors start with the origin of the key at fault
    /// ("scenario.toml:4:1: node.tp", "--tp").
    [[nodiscard]] Result<NodeConfig> build(
        const OptionOrigins& origins, const std::filesystem::path& default_model,
        const std::function<std::filesystem::path(const std::string&)>& resolve = {}) const;
};

/// Every node option. power_cap_w and locked_clock_mhz are flags only (policies set them in a
/// scenario).
[[nodiscard]] const OptionTable<NodeOptions>& node_options();

/// The SLO options: ttft_s (--slo-ttft), tpot_s (--slo-tpot).
[[nodiscard]] const OptionTable<SloTargets>& slo_options();

/// The invariants of a node every entry point relies on (Simulator::create checks them too):
/// counts >= 1 and within kMaxGpus GPUs, ep 1 or tp, memory share in (0, 1], finite skew,
/// caps and clocks. Errors name the NodeConfig field.
[[nodiscard]] Status validate(const NodeConfig& node);

/// SLO targets finite and > 0.
[[nodiscard]] Status validate(const SloTargets& slo);

/// A scenario's [physics]: the simulated GPU departs from the calibrated physics a `pals` model
/// was profiled on, as a real GPU departs from any model (docs/evaluate.md, "Model mismatch").
/// Each field multiplies one calibrated parameter of the GPU (gpu_spec.hpp); 1 = as calibrated.
struct PhysicsPerturbation {
    double idle_power_scale = 1.0;
    double sm_power_scale = 1.0;   ///< SM dynamic power at f_max
    double mem_power_scale = 1.0;  ///< HBM power at full bandwidth
    /// The voltage floor relative to V(f_max): below 1 dynamic power falls faster with the
    /// clock (a steeper clock/power exponent), above 1 slower.
    double voltage_floor_scale = 1.0;
    double mem_clock_knee_scale = 1.0;  ///< the clock below which HBM bandwidth falls
    double compute_efficiency_scale = 1.0;
    double mem_efficiency_scale = 1.0;  ///< weight-streaming and attention bandwidth

    [[nodiscard]] bool is_identity() const;
    /// "idle power x1.3, compute efficiency x0.8" ("as calibrated" for the identity).
    [[nodiscard]] std::string describe() const;
};

/// The [physics] keys (file only: no flags).
[[nodiscard]] const OptionTable<PhysicsPerturbation>& physics_options();

/// `gpu` with its calibrated parameters scaled by `physics`. Fails (naming the key) when a
/// result leaves its physical range: a voltage floor or knee above 1, an efficiency above 1.
[[nodiscard]] Result<GpuSpec> perturb(const GpuSpec& gpu, const PhysicsPerturbation& physics,
                                      const OptionOrigins& origins = {});

}  // namespace pals::sim
