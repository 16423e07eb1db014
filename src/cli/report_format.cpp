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
