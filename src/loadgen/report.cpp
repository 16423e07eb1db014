/// @file report.cpp
/// @brief The loadgen's outputs: vLLM's "Serving Benchmark Result" table, its result JSON, and
/// one JSON line per request.

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "pals/loadgen/loadgen.hpp"

namespace pals::loadgen {

namespace {

using ordered_json = nlohmann::ordered_json;

/// Width of vLLM's table (its `n=50`) and of its label column (`{:<40}`).
constexpr int kTableWidth = 50;
/// Distinct error messages listed under the table.
constexpr std::size_t kMaxErrorKinds = 5;

/// vLLM's percentile word: "99" for 99.0, "99.9" for 99.9.
std::string percentile_word(double p) {
    if (std::floor(p) == p) {
        return fmt::format("{}", static_cast<long long>(p));
    }
    return fmt::format("{}", p);
}

/// The label and section header vLLM prints for a metric.
struct MetricLabels {
    const char* short_name;
    const char* header;
};

MetricLabels labels_of(LatencyMetric metric) {
    switch (metric) {
        case LatencyMetric::kTtft:
            return {"TTFT", "Time to First Token"};
        case LatencyMetric::kTpot:
            return {"TPOT", "Time per Output Token (excl. 1st token)"};
        case LatencyMetric::kItl:
            return {"ITL", "Inter-token Latency"};
        case LatencyMetric::kE2el:
            return {"E2EL", "End-to-end Latency"};
    }
    return {"?", "?"};
}

std::string row(std::string_view label, const std::string& value) {
    return fmt::format("{:<40} {}\n", label, value);
}

std::string number(double value) {
    return fmt::format("{:.2f}", value);
}

/// A JSON number, or null when not finite (JSON has no NaN).
ordered_json json_number(double value) {
    return std::isfinite(value) ? ordered_json(value) : ordered_json(nullptr);
}

}  // namespace

std::string format_result_table(const BenchmarkMetrics& m, const MetricsConfig& config,
                                const RunInfo& info, const std::vector<RequestOutcome>& outcomes) {
    std::string out = fmt::format("{:=^{}}\n", " Serving Benchmark Result ", kTableWidth);
    out += row("Successful requests:", fmt::format("{}", m.completed));
    out += row("Failed requests:", fmt::format("{}", m.failed));
    if (info.max_concurrency) {
        out += row("Maximum request concurrency:", fmt::format("{}", *info.max_concurrency));
    }
    if (info.request_rate) {
        out += row("Request rate configured (RPS):", number(*info.request_rate));
    }
    out += row("Benchmark duration (s):", number(m.duration_s));
    out += row("Total input tokens:", fmt::format("{}", m.total_input));
    out += row("Total generated tokens:", fmt::format("{}", m.total_output));
    out += row("Request throughput (req/s):", number(m.request_throughput));
    if (m.request_goodput) {
        out += row("Request goodput (req/s):", number(*m.request_goodput));
    }
    if (m.slo_attainment) {
        out += row("SLO attainment (%):", number(*m.slo_attainment * 100.0));
    }
    out += row("Output token throughput (tok/s):", number(m.output_throughput));
    out += row("Peak output token throughput (tok/s):", number(m.max_output_tokens_per_s));
    out += row("Peak concurrent requests:", number(m.max_concurrent_requests));
    out += row("Total Token throughput (tok/s):", number(m.total_token_throughput));
    for (const LatencyMetric metric : config.percentile_metrics) {
        const MetricLabels labels = labels_of(metric);
        const LatencyStats& s = m.stats(metric);
        out += fmt::format("{:-^{}}\n", labels.header, kTableWidth);
        out += row(fmt::format("Mean {} (ms):", labels.short_name), number(s.mean_ms));
        out += row(fmt::format("Median {} (ms):", labels.short_name), number(s.median_ms));
        for (const auto& [p, value] : s.percentiles_ms) {
            out += row(fmt::format("P{} {} (ms):", percentile_word(p), labels.short_name),
                       number(value));
        }
    }
    out += std::string(kTableWidth, '=') + "\n";
    if (m.failed > 0) {
        std::map<std::string, int> by_error;
        for (const RequestOutcome& o : outcomes) {
            if (!o.success) {
                ++by_error[o.error];
            }
        }
        std::vector<std::pair<std::string, int>> sorted(by_error.begin(), by_error.end());
        std::stable_sort(sorted.begin(), sorted.end(),
                         [](const auto& a, const auto& b) { return a.second > b.second; });
        out += "Failed requests by error:\n";
        for (std::size_t i = 0; i < sorted.size() && i < kMaxErrorKinds; ++i) {
            out += fmt::format("  {:>6}  {}\n", sorted[i].second, sorted[i].first);
        }
        if (sorted.size() > kMaxErrorKinds) {
            out += fmt::format("  ({} more kinds; see --save-requests)\n",
                               sorted.size() - kMaxErrorKinds);
        }
    }
    return out;
}

std::string format_result_json(const BenchmarkMetrics& m, const MetricsConfig& config,
                               const RunInfo& info, const std::vector<RequestOutcome>& outcomes,
                               bool detailed) {
    ordered_json j;
    j["backend"] =
        info.endpoint.find("chat/completions") != std::string::npos ? "openai-chat" : "openai";
    j["base_url"] = info.base_url;
    j["endpoint"] = info.endpoint;
    j["model_id"] = info.model;
    j["num_prompts"] = info.num_prompts;
    j["arrival"] = info.arrival;
    if (info.request_rate) {
        j["request_rate"] = *info.request_rate;
    } else {
        j["request_rate"] = info.arrival == "trace" ? ordered_json(nullptr) : ordered_json("inf");
    }
    j["burstiness"] = info.burstiness;
    j["max_concurrency"] =
        info.max_concurrency ? ordered_json(*info.max_concurrency) : ordered_json(nullptr);
    ordered_json goodput = ordered_json::object();
    if (config.goodput.ttft_ms) {
        goodput["ttft"] = *config.goodput.ttft_ms;
    }
    if (config.goodput.tpot_ms) {
        goodput["tpot"] = *config.goodput.tpot_ms;
    }
    if (config.goodput.e2el_ms) {
        goodput["e2el"] = *config.goodput.e2el_ms;
    }
    j["goodput"] = config.goodput.empty() ? ordered_json(nullptr) : goodput;
    j["duration"] = json_number(m.duration_s);
    j["completed"] = m.completed;
    j["failed"] = m.failed;
    j["total_input_tokens"] = m.total_input;
    j["total_output_tokens"] = m.total_output;
    j["request_throughput"] = json_number(m.request_throughput);
    j["request_goodput"] =
        m.request_goodput ? json_number(*m.request_goodput) : ordered_json(nullptr);
    j["slo_attainment"] = m.slo_attainment ? json_number(*m.slo_attainment) : ordered_json(nullptr);
    j["output_throughput"] = json_number(m.output_throughput);
    j["total_token_throughput"] = json_number(m.total_token_throughput);
    j["max_output_tokens_per_s"] = json_number(m.max_output_tokens_per_s);
    j["max_concurrent_requests"] = m.max_concurrent_requests;
    for (const LatencyMetric metric : config.percentile_metrics) {
        const std::string name(metric_name(metric));
        const LatencyStats& s = m.stats(metric);
        j[fmt::format("mean_{}_ms", name)] = json_number(s.mean_ms);
        j[fmt::format("median_{}_ms", name)] = json_number(s.median_ms);
        j[fmt::format("std_{}_ms", name)] = json_number(s.std_ms);
        for (const auto& [p, value] : s.percentiles_ms) {
            j[fmt::format("p{}_{}_ms", percentile_word(p), name)] = json_number(value);
        }
    }
    if (detailed) {
        ordered_json input_lens = ordered_json::array();
        ordered_json output_lens = ordered_json::array();
        ordered_json ttfts = ordered_json::array();
        ordered_json itls = ordered_json::array();
        ordered_json errors = ordered_json::array();
        for (const RequestOutcome& o : outcomes) {
            input_lens.push_back(o.input_tokens);
            output_lens.push_back(o.success ? o.output_tokens : 0);
            ttfts.push_back(o.ttft_s);
            itls.push_back(o.itl_s);
            errors.push_back(o.error);
        }
        j["input_lens"] = std::move(input_lens);
        j["output_lens"] = std::move(output_lens);
        j["ttfts"] = std::move(ttfts);
        j["itls"] = std::move(itls);
        j["errors"] = std::move(errors);
    }
    return j.dump(2) + "\n";
}

std::string format_requests_jsonl(const std::vector<RequestOutcome>& outcomes) {
    std::string out;
    for (const RequestOutcome& o : outcomes) {
        const std::optional<double> tpot = request_tpot_s(o);
        ordered_json j;
        j["id"] = o.id;
        j["arrival_s"] = o.arrival_s;
        j["send_s"] = o.send_s;
        j["success"] = o.success;
        j["error"] = o.error;
        j["input_tokens"] = o.input_tokens;
        j["requested_input_tokens"] = o.requested_input_tokens;
        j["output_tokens"] = o.output_tokens;
        j["requested_output_tokens"] = o.requested_output_tokens;
        j["ttft_s"] = o.ttft_s;
        j["tpot_s"] = o.success && tpot ? ordered_json(*tpot) : ordered_json(nullptr);
        j["e2el_s"] = o.e2el_s;
        j["itl_s"] = o.itl_s;
        out += j.dump();
        out += '\n';
    }
    return out;
}

}  // namespace pals::loadgen
