#include "cli/report_format.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace pals::cli {

namespace {

nlohmann::json latency_json(const sim::LatencySummary& s) {
    return {{"p50", s.p50}, {"p90", s.p90}, {"p99", s.p99}, {"mean", s.mean}};
}

}  // namespace

nlohmann::json report_to_json(const sim::SimulationReport& r) {
    nlohmann::json j = {
        {"output_tokens", r.output_tokens},
        {"prompt_tokens", r.prompt_tokens},
        {"duration_s", r.duration_s},
        {"throughput_tok_s", r.throughput_tok_s},
        {"energy_j", r.energy_j},
        {"avg_power_w", r.avg_power_w},
        {"tokens_per_joule", r.tokens_per_joule},
        {"j_per_token", r.j_per_token},
        {"avg_batch", r.avg_batch},
        {"sm_clock_mhz_avg", r.sm_clock_mhz_avg},
        {"ttft_s", latency_json(r.ttft_s)},
        {"tpot_s", latency_json(r.tpot_s)},
        {"itl_s", latency_json(r.itl_s)},
        {"e2e_s", latency_json(r.e2e_s)},
        {"slo_attainment", r.slo_attainment},
        {"requests_total", r.requests_total},
        {"requests_completed", r.requests_completed},
        {"requests_rejected", r.requests_rejected},
        {"preemptions", r.preemptions},
        {"steps", r.steps},
        {"events", r.events},
        {"sim_wall_s", r.sim_wall_s},
    };
    if (r.steady) {
        const sim::SteadyStateReport& s = *r.steady;
        j["steady_state"] = {{"start_s", s.start_s},
                             {"duration_s", s.duration_s},
                             {"output_tokens", s.output_tokens},
                             {"throughput_tok_s", s.throughput_tok_s},
                             {"avg_power_w", s.avg_power_w},
                             {"j_per_token", s.j_per_token},
                             {"avg_batch", s.avg_batch},
                             {"itl_s", latency_json(s.itl_s)}};
    }
    return j;
}

std::string report_to_text(const sim::SimulationReport& r) {
    std::string out;
    auto line = [&out](const std::string& name, const std::string& value) {
        out += fmt::format("  {:<22} {}\n", name, value);
    };
    auto lat = [](const sim::LatencySummary& s) {
        return fmt::format("p50 {:8.1f} ms  p90 {:8.1f} ms  p99 {:8.1f} ms  mean {:8.1f} ms",
                           s.p50 * 1e3, s.p90 * 1e3, s.p99 * 1e3, s.mean * 1e3);
    };
    line("requests",
         fmt::format("{} completed of {} ({} rejected, {} preemptions)", r.requests_completed,
                     r.requests_total, r.requests_rejected, r.preemptions));
    line("duration",
         fmt::format("{:.1f} s simulated in {:.3f} s wall", r.duration_s, r.sim_wall_s));
    line("output tokens",
         fmt::format("{:.0f} ({:.1f} tok/s)", r.output_tokens, r.throughput_tok_s));
    line("energy",
         fmt::format("{:.0f} J, avg power {:.1f} W (all GPUs)", r.energy_j, r.avg_power_w));
    line("efficiency",
         fmt::format("{:.3f} tok/J ({:.4f} J/tok)", r.tokens_per_joule, r.j_per_token));
    line("batch / SM clock",
         fmt::format("avg batch {:.1f}, SM clock {:.0f} MHz", r.avg_batch, r.sm_clock_mhz_avg));
    line("TTFT", lat(r.ttft_s));
    line("TPOT", lat(r.tpot_s));
    line("ITL", lat(r.itl_s));
    line("E2E", lat(r.e2e_s));
    line("SLO attainment", fmt::format("{:.1f} %", r.slo_attainment * 100.0));
    if (r.steady) {
        const sim::SteadyStateReport& s = *r.steady;
        line("steady state",
             fmt::format("{:.1f} s from {:.1f} s: {:.1f} tok/s, {:.1f} W, {:.4f} J/tok, "
                         "batch {:.1f}, median ITL {:.2f} ms",
                         s.duration_s, s.start_s, s.throughput_tok_s, s.avg_power_w, s.j_per_token,
                         s.avg_batch, s.itl_s.p50 * 1e3));
    }
    return out;
}

std::string model_id_text(const std::string& name) {
    const std::size_t sep = name.find("__");
    return sep == std::string::npos ? name : name.substr(0, sep) + "/" + name.substr(sep + 2);
}

std::string model_text(const model::ModelSpec& model) {
    const std::string name = model_id_text(model.name);
    if (model.is_moe()) {
        return fmt::format("{} (MoE: {} experts, top-{}, {:.1f}B active / {:.1f}B total)", name,
                           model.num_experts, model.experts_per_token, model.active_params() / 1e9,
                           model.total_params() / 1e9);
    }
    return fmt::format("{} (dense, {:.1f}B params)", name, model.total_params() / 1e9);
}

std::string workload_text(const workload::WorkloadSpec& spec) {
    const std::string lengths =
        fmt::format("input {}, output {} tokens, seed {}", spec.input.describe(),
                    spec.output.describe(), spec.seed);
    std::string out;
    switch (spec.kind) {
        case workload::WorkloadKind::kTrace:
            out = "trace " + spec.trace_path.filename().string();
            if (spec.trace_start_s > 0.0) {
                out += fmt::format(" from {:g} s (wrapping)", spec.trace_start_s);
            }
            if (spec.time_scale != 1.0) {
                out += fmt::format(", time x{:g}", spec.time_scale);
            }
            if (spec.rate_scale != 1.0) {
                out += fmt::format(", rate x{:g}", spec.rate_scale);
            }
            if (spec.duration_s) {
                out += fmt::format(", first {:g} s", *spec.duration_s);
            }
            if (spec.num_requests > 0) {
                out += fmt::format(", first {} requests", spec.num_requests);
            }
            break;
        case workload::WorkloadKind::kSynthetic:
            out = spec.burstiness == 1.0 ? fmt::format("Poisson {:g} req/s", spec.rate_rps)
                                         : fmt::format("gamma {:g} req/s (burstiness {:g})",
                                                       spec.rate_rps, spec.burstiness);
            if (spec.duration_s) {
                out += fmt::format(" for {:g} s", *spec.duration_s);
            }
            if (spec.num_requests > 0) {
                out += fmt::format(", {} requests", spec.num_requests);
            }
            out += ", " + lengths;
            break;
        case workload::WorkloadKind::kClosedLoop:
            out = fmt::format("closed loop: {} requests at t = 0, {}", spec.num_requests, lengths);
            break;
    }
    if (!spec.rate_steps.empty()) {
        out += ", rate steps";
        for (const auto& [t, factor] : spec.rate_steps) {
            out += fmt::format(" {:g}:{:g}", t, factor);
        }
    }
    return out;
}

std::string echo_line(std::string_view label, std::string_view value) {
    return fmt::format("  {:<12} {}\n", label, value);
}

std::string node_echo(const sim::NodeConfig& node, const std::string& cap_text,
                      const std::string& batch_text, const std::string& clock_text) {
    const sim::GpuSpec& gpu = node.gpu;
    std::string out = echo_line("model", model_text(node.model));
    out += echo_line(
        "GPUs", fmt::format("{}x {}: TP {}, EP {}{}", node.parallel.tp * node.replicas, gpu.name,
                            node.parallel.tp, node.parallel.ep,
                            node.replicas > 1 ? fmt::format(", {} replicas", node.replicas)
                                              : std::string()));
    std::string cap = cap_text;
    if (cap.empty()) {
        cap = node.power_cap_w > 0.0 ? fmt::format("{:g} W per GPU", node.power_cap_w)
                                     : fmt::format("{:g} W per GPU, the GPU's default limit",
                                                   gpu.power_limit_default_w);
    }
    std::string clock = clock_text;
    if (clock.empty()) {
        clock = node.locked_clock_mhz > 0.0
                    ? fmt::format("locked at {:g} MHz", node.locked_clock_mhz)
                    : std::string("not locked");
    }
    out += echo_line("power cap", fmt::format("{} (range {:g}-{:g} W); SM clock {}", cap,
                                              gpu.power_limit_min_w, gpu.power_limit_max_w, clock));
    const std::string batch = batch_text.empty()
                                  ? fmt::format("{} (max-num-seqs)", node.engine.max_num_seqs)
                                  : batch_text;
    out += echo_line(
        "batch cap",
        fmt::format("{}; {} tokens per step, {}", batch, node.engine.max_num_batched_tokens,
                    node.engine.enable_chunked_prefill ? "chunked prefill" : "no chunked prefill"));
    return out;
}

std::string format_table(const std::vector<std::string>& header,
                         const std::vector<std::vector<std::string>>& rows) {
    std::vector<std::size_t> width(header.size(), 0);
    for (std::size_t c = 0; c < header.size(); ++c) {
        width[c] = header[c].size();
        for (const auto& row : rows) {
            if (c < row.size()) {
                width[c] = std::max(width[c], row[c].size());
            }
        }
    }
    auto render = [&width](const std::vector<std::string>& cells) {
        std::string line;
        for (std::size_t c = 0; c < width.size(); ++c) {
            const std::string& cell = c < cells.size() ? cells[c] : std::string();
            line += c == 0 ? fmt::format("{:<{}}", cell, width[c])
                           : fmt::format("  {:>{}}", cell, width[c]);
        }
        return line + "\n";
    };
    std::string out = render(header);
    std::size_t total = 0;
    for (std::size_t w : width) {
        total += w + 2;
    }
    out += std::string(total - 2, '-') + "\n";
    for (const auto& row : rows) {
        out += render(row);
    }
    return out;
}

}  // namespace pals::cli
