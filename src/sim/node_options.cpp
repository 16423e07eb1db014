#include "pals/sim/node_options.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <optional>

#include "pals/common/limits.hpp"
#include "pals/model/model_spec.hpp"

namespace pals::sim {

const OptionTable<NodeOptions>& node_options() {
    constexpr double kGpus = static_cast<double>(kMaxGpus);
    static const OptionTable<NodeOptions> kOptions = {
        {.key = "model",
         .help = "Hugging Face config.json of the model",
         .member = &NodeOptions::model},
        {.key = "gpu",
         .help = "GPU type: H100-SXM, H800, H200, A100-40GB, A100-80GB, B200",
         .member = &NodeOptions::gpu},
        {.key = "dtype",
         .help = "matmul precision: bf16, fp8 or int8 (8-bit: 1 byte per weight; default: from "
                 "the config)",
         .member = &NodeOptions::dtype},
        {.key = "tp",
         .help = "GPUs per replica (tensor-parallel degree)",
         .member = &NodeOptions::tp,
         .range = {.lo = 1}},  // tp x replicas <= kMaxGpus: checked by build()
        {.key = "ep",
         .help = "expert parallel degree: 1, or equal to --tp (vLLM --enable-expert-parallel)",
         .member = &NodeOptions::ep,
         .range = {.lo = 1, .hi = kGpus}},
        {.key = "replicas",
         .help = "model replicas on the node",
         .member = &NodeOptions::replicas,
         .range = {.lo = 1}},
        {.key = "max_num_seqs",
         .help = "batch cap: max running sequences per replica (vLLM --max-num-seqs)",
         .member = &NodeOptions::max_num_seqs,
         .range = {.lo = 1, .hi = static_cast<double>(kMaxSeqs)}},
        {.key = "max_num_batched_tokens",
         .help = "token budget per step",
         .member = &NodeOptions::max_num_batched_tokens,
         .range = {.lo = 1, .hi = static_cast<double>(kMaxTokens)}},
        {.key = "enable_chunked_prefill",
         .flag = "--no-chunked-prefill",
         .help = "disable chunked prefill",
         .member = &NodeOptions::enable_chunked_prefill,
         .flag_clears = true},
        {.key = "block_size",
         .help = "KV-cache block size (tokens)",
         .member = &NodeOptions::block_size,
         .range = {.lo = 1, .hi = 4096}},
        {.key = "gpu_memory_utilization",
         .help = "share of GPU memory vLLM may use",
         .member = &NodeOptions::gpu_memory_utilization,
         .range = {.lo = 0.0, .hi = 1.0, .lo_open = true}},
        {.key = "max_model_len",
         .help = "longest request (0: the model's limit)",
         .member = &NodeOptions::max_model_len,
         .range = {.lo = 0, .hi = static_cast<double>(kMaxTokens)}},
        {.key = "routing_skew",
         .help = "Zipf exponent of MoE expert popularity (0 = uniform)",
         .member = &NodeOptions::routing_skew,
         .range = {.lo = 0.0, .hi = 100.0}},
        {.key = "router",
         .help = "how requests reach replicas: least-loaded, round-robin or session-hash "
                 "(sticky sessions, uneven load)",
         .member = &NodeOptions::router},
        {.key = "sessions",
         .help = "session-hash router: distinct sessions",
         .member = &NodeOptions::sessions,
         .range = {.lo = 1, .hi = 1e6}},
        {.key = "session_skew",
         .help = "session-hash router: Zipf exponent of session popularity (0 = uniform)",
         .member = &NodeOptions::session_skew,
         .range = {.lo = 0.0, .hi = 10.0}},
        {.key = "power_cap_w",
         .flag = "--power-cap",
         .help = "power cap per GPU in W (default: the GPU's default limit)",
         .member = &NodeOptions::power_cap_w,
         .range = {.lo = 0.0, .hi = 10000.0, .unit = "W"},
         .in_file = false},
        {.key = "locked_clock_mhz",
         .flag = "--locked-clock",
         .help = "lock the SM clock (MHz); 0 = not locked",
         .member = &NodeOptions::locked_clock_mhz,
         .range = {.lo = 0.0, .hi = 10000.0, .unit = "MHz"},
         .in_file = false},
    };
    return kOptions;
}

const OptionTable<SloTargets>& slo_options() {
    static const OptionTable<SloTargets> kOptions = {
        {.key = "ttft_s",
         .flag = "--slo-ttft",
         .help = "time-to-first-token target (s)",
         .member = &SloTargets::ttft_s,
         .range = {.lo = 0.0, .hi = kMaxSeconds, .lo_open = true, .unit = "s"}},
        {.key = "tpot_s",
         .flag = "--slo-tpot",
         .help = "time-per-output-token target (s)",
         .member = &SloTargets::tpot_s,
         .range = {.lo = 0.0, .hi = kMaxSeconds, .lo_open = true, .unit = "s"}},
    };
    return kOptions;
}

Result<NodeConfig> NodeOptions::build(
    const OptionOrigins& origins, const std::filesystem::path& default_model,
    const std::function<std::filesystem::path(const std::string&)>& resolve) const {
    NodeConfig node;
    PALS_ASSIGN_OR_RETURN(node.gpu, find_gpu_spec(gpu).with_prefix(origins.of("gpu")));
    std::optional<model::WeightDtype> dtype_override;
    if (!dtype.empty()) {
        auto d = model::parse_weight_dtype(dtype);
        if (!d.is_ok()) {
            return d.status().with_prefix(origins.of("dtype"));
        }
        dtype_override = d.value();
    }
    std::filesystem::path path = default_model;
    if (!model.empty()) {
        path = resolve ? resolve(model) : std::filesystem::path(model);
    }
    if (path.empty()) {
        return origins.error("model", "missing (a Hugging Face config.json)");
    }
    auto spec = model::load_model_spec(path, dtype_override);
    if (!spec.is_ok()) {
        return origins.was_given("model") ? spec.status().with_prefix(origins.of("model"))
                                          : spec.status();
    }
    node.model = std::move(spec).value();
    node.parallel.tp = tp;
    node.parallel.ep = ep;
    node.parallel.routing_skew = routing_skew;
    node.replicas = replicas;
    PALS_ASSIGN_OR_RETURN(node.router.mode, parse_router(router).with_prefix(origins.of("router")));
    node.router.sessions = sessions;
    node.router.session_skew = session_skew;
    node.engine.max_num_seqs = max_num_seqs;
    node.engine.max_num_batched_tokens = max_num_batched_tokens;
    node.engine.enable_chunked_prefill = enable_chunked_prefill;
    node.engine.block_size = block_size;
    node.engine.gpu_memory_utilization = gpu_memory_utilization;
    node.engine.max_model_len = max_model_len;
    // Ranges again (values may be set past the readers), then what crosses keys or needs the GPU.
    PALS_RETURN_IF_ERROR(check_option_ranges(*this, node_options(), origins));
    if (static_cast<std::int64_t>(tp) * replicas > kMaxGpus) {
        return origins.error(tp > kMaxGpus ? "tp" : "replicas",
                             fmt::format("tp x replicas must be at most {} GPUs", kMaxGpus));
    }
    if (power_cap_w != 0.0 &&
        !(power_cap_w >= node.gpu.power_limit_min_w && power_cap_w <= node.gpu.power_limit_max_w)) {
        return Status::out_of_range(
            fmt::format("{}: {} is outside {:g}-{:g} W for {}", origins.of("power_cap_w"),
                        format_quantity(power_cap_w, "W"), node.gpu.power_limit_min_w,
                        node.gpu.power_limit_max_w, node.gpu.name));
    }
    node.power_cap_w = power_cap_w;
    if (locked_clock_mhz > node.gpu.sm_clock_max_mhz) {
        return Status::out_of_range(fmt::format(
            "{}: {} is outside 0-{:g} MHz for {} (0: not locked)", origins.of("locked_clock_mhz"),
            format_quantity(locked_clock_mhz, "MHz"), node.gpu.sm_clock_max_mhz, node.gpu.name));
    }
    node.locked_clock_mhz = locked_clock_mhz;
    PALS_RETURN_IF_ERROR(validate(node));
    return node;
}

Status validate(const NodeConfig& node) {
    const EngineConfig& e = node.engine;
    if (node.replicas < 1) {
        return Status::invalid_argument("replicas must be >= 1");
    }
    if (node.parallel.tp < 1) {
        return Status::invalid_argument("tp must be >= 1");
    }
    if (e.max_num_seqs < 1) {
        return Status::invalid_argument("max_num_seqs must be >= 1 (got " +
                                        std::to_string(e.max_num_seqs) + ")");
    }
    if (e.max_num_batched_tokens < 1) {
        return Status::invalid_argument("max_num_batched_tokens must be >= 1");
    }
    if (e.block_size < 1) {
        return Status::invalid_argument("block_size must be >= 1");
    }
    // Written as !(in range) so that NaN fails every check.
    if (!(e.gpu_memory_utilization > 0.0 && e.gpu_memory_utilization <= 1.0)) {
        return Status::invalid_argument("gpu_memory_utilization must be in (0, 1]");
    }
    if (!std::isfinite(node.parallel.routing_skew) || node.parallel.routing_skew < 0.0) {
        return Status::invalid_argument("routing_skew must be finite and >= 0");
    }
    if (node.router.sessions < 1 || !std::isfinite(node.router.session_skew) ||
        node.router.session_skew < 0.0) {
        return Status::invalid_argument(
            "router: sessions must be >= 1 and session_skew finite and >= 0");
    }
    // Caps outside the GPU's range are clamped (as NVML would refuse them); NaN cannot be.
    if (!(node.power_cap_w >= 0.0 && std::isfinite(node.power_cap_w))) {
        return Status::out_of_range("power_cap_w must be finite and >= 0 (0: the GPU's default)");
    }
    if (!(node.locked_clock_mhz >= 0.0 && std::isfinite(node.locked_clock_mhz))) {
        return Status::out_of_range("locked_clock_mhz must be finite and >= 0 (0: not locked)");
    }
    return Status::ok();
}

Status validate(const SloTargets& slo) {
    if (!(slo.ttft_s > 0.0 && std::isfinite(slo.ttft_s) && slo.tpot_s > 0.0 &&
          std::isfinite(slo.tpot_s))) {
        return Status::invalid_argument("SLO targets must be finite and > 0");
    }
    return Status::ok();
}

namespace {

struct PhysicsField {
    double PhysicsPerturbation::*scale;
    std::string_view label;
};

constexpr std::array<PhysicsField, 7> kPhysicsFields = {{
    {&PhysicsPerturbation::idle_power_scale, "idle power"},
    {&PhysicsPerturbation::sm_power_scale, "SM power"},
    {&PhysicsPerturbation::mem_power_scale, "HBM power"},
    {&PhysicsPerturbation::voltage_floor_scale, "voltage floor"},
    {&PhysicsPerturbation::mem_clock_knee_scale, "memory clock knee"},
    {&PhysicsPerturbation::compute_efficiency_scale, "compute efficiency"},
    {&PhysicsPerturbation::mem_efficiency_scale, "memory efficiency"},
}};

}  // namespace

bool PhysicsPerturbation::is_identity() const {
    return std::all_of(kPhysicsFields.begin(), kPhysicsFields.end(),
                       [this](const PhysicsField& f) { return this->*f.scale == 1.0; });
}

std::string PhysicsPerturbation::describe() const {
    std::string text;
    for (const PhysicsField& f : kPhysicsFields) {
        if (this->*f.scale != 1.0) {
            text += fmt::format("{}{} x{:g}", text.empty() ? "" : ", ", f.label, this->*f.scale);
        }
    }
    return text.empty() ? "as calibrated" : text;
}

const OptionTable<PhysicsPerturbation>& physics_options() {
    constexpr ValueRange kScale{.lo = 0.25, .hi = 4.0};
    static const OptionTable<PhysicsPerturbation> kOptions = {
        {.key = "idle_power_scale",
         .help = "factor on the GPU's idle power",
         .member = &PhysicsPerturbation::idle_power_scale,
         .range = kScale},
        {.key = "sm_power_scale",
         .help = "factor on SM dynamic power at the highest clock",
         .member = &PhysicsPerturbation::sm_power_scale,
         .range = kScale},
        {.key = "mem_power_scale",
         .help = "factor on HBM power at full bandwidth",
         .member = &PhysicsPerturbation::mem_power_scale,
         .range = kScale},
        {.key = "voltage_floor_scale",
         .help = "factor on the voltage floor (< 1: power falls faster with the clock)",
         .member = &PhysicsPerturbation::voltage_floor_scale,
         .range = kScale},
        {.key = "mem_clock_knee_scale",
         .help = "factor on the SM clock below which HBM bandwidth falls",
         .member = &PhysicsPerturbation::mem_clock_knee_scale,
         .range = kScale},
        {.key = "compute_efficiency_scale",
         .help = "factor on achieved tensor throughput",
         .member = &PhysicsPerturbation::compute_efficiency_scale,
         .range = kScale},
        {.key = "mem_efficiency_scale",
         .help = "factor on achieved HBM bandwidth (weights and attention)",
         .member = &PhysicsPerturbation::mem_efficiency_scale,
         .range = kScale},
    };
    return kOptions;
}

Result<GpuSpec> perturb(const GpuSpec& gpu, const PhysicsPerturbation& physics,
                        const OptionOrigins& origins) {
    PALS_RETURN_IF_ERROR(check_option_ranges(physics, physics_options(), origins));
    GpuSpec out = gpu;
    GpuCalibration& cal = out.calibration;
    out.idle_power_w *= physics.idle_power_scale;
    cal.sm_power_w *= physics.sm_power_scale;
    cal.mem_power_w *= physics.mem_power_scale;
    cal.voltage_floor *= physics.voltage_floor_scale;
    cal.mem_clock_knee *= physics.mem_clock_knee_scale;
    cal.compute_efficiency *= physics.compute_efficiency_scale;
    cal.mem_efficiency *= physics.mem_efficiency_scale;
    cal.attention_efficiency *= physics.mem_efficiency_scale;
    const auto at_most_one = [&](double value, std::string_view key,
                                 std::string_view what) -> Status {
        if (value > 1.0) {
            return origins.error(key, fmt::format("makes the {} {:.3g}, above 1", what, value));
        }
        return Status::ok();
    };
    PALS_RETURN_IF_ERROR(at_most_one(cal.voltage_floor, "voltage_floor_scale", "voltage floor"));
    PALS_RETURN_IF_ERROR(
        at_most_one(cal.mem_clock_knee, "mem_clock_knee_scale", "memory clock knee"));
    PALS_RETURN_IF_ERROR(
        at_most_one(cal.compute_efficiency, "compute_efficiency_scale", "compute efficiency"));
    PALS_RETURN_IF_ERROR(at_most_one(std::max(cal.mem_efficiency, cal.attention_efficiency),
                                     "mem_efficiency_scale", "memory efficiency"));
    return out;
}

}  // namespace pals::sim
