#include "cli/sim_options.hpp"

#include <fmt/format.h>

#include <cmath>

#include "cli/commands.hpp"
#include "cli/flag_checks.hpp"

namespace pals::cli {

std::string default_model_path() {
    return default_shared_dir() + "/models/mistralai__Mixtral-8x7B-Instruct-v0.1.json";
}

void NodeOptions::add_to(CLI::App& app) {
    app.add_option("--model", model,
                   "Hugging Face config.json of the model (default: Mixtral-8x7B)");
    app.add_option("--gpu", gpu, "GPU type: H100-SXM, H800, H200, A100-40GB, A100-80GB, B200")
        ->capture_default_str();
    app.add_option("--dtype", dtype,
                   "matmul precision: bf16, fp8 or int8 (8-bit: 1 byte per weight; default: from "
                   "the config)");
    app.add_option("--tp", tp, "GPUs per replica (tensor-parallel degree)")
        ->check(integer_in(1, kMaxGpus))
        ->capture_default_str();
    app.add_option("--ep", ep,
                   "expert parallel degree: 1, or equal to --tp (vLLM --enable-expert-parallel)")
        ->check(integer_in(1, kMaxGpus))
        ->capture_default_str();
    app.add_option("--replicas", replicas, "model replicas on the node")
        ->check(integer_in(1, kMaxGpus))
        ->capture_default_str();
    app.add_option("--max-num-seqs", max_num_seqs, "batch cap: max running sequences per replica")
        ->check(integer_in(1, kMaxSeqs))
        ->capture_default_str();
    app.add_option("--max-num-batched-tokens", max_num_batched_tokens, "token budget per step")
        ->check(integer_in(1, kMaxTokens))
        ->capture_default_str();
    app.add_flag("--no-chunked-prefill", no_chunked_prefill, "disable chunked prefill");
    app.add_option("--block-size", block_size, "KV-cache block size (tokens)")
        ->check(integer_in(1, 4096))
        ->capture_default_str();
    app.add_option("--gpu-memory-utilization", gpu_memory_utilization,
                   "share of GPU memory vLLM may use")
        ->check(finite_above(0.0, 1.0))
        ->capture_default_str();
    app.add_option("--max-model-len", max_model_len, "longest request (0: the model's limit)")
        ->check(integer_in(0, kMaxTokens));
    app.add_option("--routing-skew", routing_skew,
                   "Zipf exponent of MoE expert popularity (0 = uniform)")
        ->check(finite_in(0.0, 100.0))
        ->capture_default_str();
    app.add_option("--power-cap", power_cap_w,
                   "power cap per GPU in W (default: the GPU's default limit)")
        ->check(finite_in(0.0, 10000.0, "W"));
    app.add_option("--locked-clock", locked_clock_mhz, "lock the SM clock (MHz); 0 = not locked")
        ->check(finite_in(0.0, 10000.0, "MHz"));
}

Result<sim::NodeConfig> NodeOptions::build() const {
    sim::NodeConfig node;
    Result<sim::GpuSpec> gpu_spec = sim::find_gpu_spec(gpu);
    if (!gpu_spec.is_ok()) {
        return gpu_spec.status().with_prefix("--gpu");
    }
    node.gpu = gpu_spec.value();
    std::optional<model::WeightDtype> dtype_override;
    if (!dtype.empty()) {
        Result<model::WeightDtype> d = model::parse_weight_dtype(dtype);
        if (!d.is_ok()) {
            return d.status().with_prefix("--dtype");
        }
        dtype_override = d.value();
    }
    const std::string path = model.empty() ? default_model_path() : model;
    PALS_ASSIGN_OR_RETURN(model::ModelSpec spec, model::load_model_spec(path, dtype_override));
    node.model = std::move(spec);
    if (tp < 1) {
        return Status::invalid_argument("--tp must be >= 1");
    }
    node.parallel.tp = tp;
    node.parallel.ep = ep;
    node.parallel.routing_skew = routing_skew;
    node.replicas = replicas;
    node.engine.max_num_seqs = max_num_seqs;
    node.engine.max_num_batched_tokens = max_num_batched_tokens;
    node.engine.enable_chunked_prefill = !no_chunked_prefill;
    node.engine.block_size = block_size;
    node.engine.gpu_memory_utilization = gpu_memory_utilization;
    node.engine.max_model_len = max_model_len;
    if (power_cap_w != 0.0) {
        if (Status st = check_range("--power-cap", power_cap_w, node.gpu.power_limit_min_w,
                                    node.gpu.power_limit_max_w, "W", node.gpu.name);
            !st.is_ok()) {
            return st;
        }
    }
    node.power_cap_w = power_cap_w;
    if (Status st = check_range("--locked-clock", locked_clock_mhz, 0.0, node.gpu.sm_clock_max_mhz,
                                "MHz", node.gpu.name + " (0: not locked)");
        !st.is_ok()) {
        return st;
    }
    node.locked_clock_mhz = locked_clock_mhz;
    return node;
}

void WorkloadOptions::add_to(CLI::App& app) {
    app.add_option(
        "--trace", trace,
        "request trace: Azure CSV or JSONL ({timestamp ms, input_length, output_length})");
    app.add_option("--time-scale", time_scale, "stretch trace time by this factor")
        ->check(finite_above(0.0, 1e6))
        ->capture_default_str();
    app.add_option("--rate-scale", rate_scale, "multiply the arrival rate (compress time)")
        ->check(finite_above(0.0, 1e6))
        ->capture_default_str();
    app.add_option("--duration", duration_s,
                   "keep requests arriving in the first S seconds (after scaling)")
        ->check(finite_in(0.0, kMaxSeconds, "s"));
    app.add_option("--rate", rate_rps, "synthetic arrivals: mean requests per second")
        ->check(finite_in(0.0, 1e6, "req/s"));
    app.add_option("--burstiness", burstiness, "gamma shape of inter-arrival times (1 = Poisson)")
        ->check(finite_above(0.0, 1000.0))
        ->capture_default_str();
    app.add_option("--num-requests", num_requests,
                   "number of requests; without --trace or --rate: closed loop, all at t = 0")
        ->check(integer_in(0, kMaxRequests));
    app.add_option("--input-len", input_len,
                   "prompt tokens: N, uniform:LO:HI, or histogram FILE.json[#KEY]")
        ->capture_default_str();
    app.add_option("--output-len", output_len,
                   "output tokens: N, uniform:LO:HI, or histogram FILE.json[#KEY]")
        ->capture_default_str();
    app.add_option("--seed", seed, "random seed")->capture_default_str();
}

Result<workload::WorkloadSpec> WorkloadOptions::build() const {
    workload::WorkloadSpec spec;
    spec.time_scale = time_scale;
    spec.rate_scale = rate_scale;
    if (!std::isfinite(duration_s) || duration_s < 0.0) {
        return Status::invalid_argument("--duration must be a finite number > 0");
    }
    if (duration_s > 0.0) {
        spec.duration_s = duration_s;
    }
    spec.seed = seed;
    spec.num_requests = num_requests;
    if (num_requests < 0 || num_requests > kMaxRequests) {
        return Status::out_of_range(
            fmt::format("--num-requests: {} is outside 0-{}", num_requests, kMaxRequests));
    }
    if (!trace.empty()) {
        spec.kind = workload::WorkloadKind::kTrace;
        spec.trace_path = trace;
        return spec;
    }
    if (Status st = check_length_text("--input-len", input_len); !st.is_ok()) {
        return st;
    }
    if (Status st = check_length_text("--output-len", output_len); !st.is_ok()) {
        return st;
    }
    Result<workload::LengthDistribution> in = workload::LengthDistribution::parse(input_len);
    if (!in.is_ok()) {
        return in.status().with_prefix("--input-len");
    }
    Result<workload::LengthDistribution> out = workload::LengthDistribution::parse(output_len);
    if (!out.is_ok()) {
        return out.status().with_prefix("--output-len");
    }
    spec.input = in.value();
    spec.output = out.value();
    if (rate_rps != 0.0) {
        if (num_requests == 0 && duration_s * rate_rps > static_cast<double>(kMaxRequests)) {
            return Status::out_of_range(fmt::format(
                "--rate {:g} x --duration {:g} s is {:g} requests, more than the limit of {}",
                rate_rps, duration_s, duration_s * rate_rps, kMaxRequests));
        }
        spec.kind = workload::WorkloadKind::kSynthetic;
        spec.rate_rps = rate_rps;
        spec.burstiness = burstiness;
        return spec;
    }
    if (num_requests > 0) {
        spec.kind = workload::WorkloadKind::kClosedLoop;
        return spec;
    }
    return Status::invalid_argument(
        "no workload: give --trace FILE, --rate R, or --num-requests N");
}

void SloOptions::add_to(CLI::App& app) {
    app.add_option("--slo-ttft", ttft_s, "time-to-first-token target (s)")
        ->check(finite_above(0.0, kMaxSeconds, "s"))
        ->capture_default_str();
    app.add_option("--slo-tpot", tpot_s, "time-per-output-token target (s)")
        ->check(finite_above(0.0, kMaxSeconds, "s"))
        ->capture_default_str();
}

}  // namespace pals::cli
