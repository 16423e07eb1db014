#include "serve/vllm_exposition.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstddef>
#include <functional>

namespace pals::serve {

namespace {

/// The finish reasons vLLM V1 exposes a request_success_total series for (FINISH_REASON_STRINGS
/// of the versions PALS reads); the simulator only produces "length" and "abort".
constexpr std::string_view kFinishReasons[] = {"stop", "length", "abort", "error"};

class Writer {
public:
    explicit Writer(const std::string& model_name) : m_model(escape_label_value(model_name)) {}

    void header(std::string_view name, std::string_view type, std::string_view help) {
        m_out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    }

    /// `name{engine="i",<extra>,model_name="M"} value` (labels sorted, as prometheus_client).
    void sample(std::string_view name, std::size_t engine, std::string_view extra_label,
                double value) {
        m_out += fmt::format("{}{{engine=\"{}\",{}model_name=\"{}\"}} {}\n", name, engine,
                             extra_label, m_model, format_prometheus_float(value));
    }

    void histogram(std::string_view name, std::size_t engine,
                   const engine::CumulativeHistogram& h) {
        for (std::size_t i = 0; i < h.upper_bounds.size(); ++i) {
            const std::string le = "le=\"" + format_prometheus_float(h.upper_bounds[i]) + "\",";
            const double count = i < h.cumulative_counts.size() ? h.cumulative_counts[i] : 0.0;
            sample(fmt::format("{}_bucket", name), engine, le, count);
        }
        sample(fmt::format("{}_count", name), engine, "", h.count);
        sample(fmt::format("{}_sum", name), engine, "", h.sum);
    }

    [[nodiscard]] std::string take() { return std::move(m_out); }

private:
    std::string m_model;
    std::string m_out;
};

using Getter = std::function<double(const ReplicaMetrics&)>;

}  // namespace

std::string format_prometheus_float(double value) {
    if (std::isnan(value)) {
        return "NaN";
    }
    if (std::isinf(value)) {
        return value > 0 ? "+Inf" : "-Inf";
    }
    std::string s = fmt::format("{}", value);  // shortest round-trip form, like Python's repr
    if (s.find_first_of(".eEn") == std::string::npos) {
        s += ".0";
    }
    return s;
}

std::string escape_label_value(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (const char c : value) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '"') {
            out += "\\\"";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

std::string render_vllm_metrics(const std::string& model_name,
                                const std::vector<ReplicaMetrics>& replicas) {
    Writer w(model_name);
    auto family = [&](std::string_view name, std::string_view type, std::string_view help,
                      const Getter& get) {
        w.header(name, type, help);
        for (std::size_t i = 0; i < replicas.size(); ++i) {
            w.sample(name, i, "", get(replicas[i]));
        }
    };
    family("vllm:num_requests_running", "gauge", "Number of requests in model execution batches.",
           [](const ReplicaMetrics& r) { return static_cast<double>(r.running); });
    family("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.",
           [](const ReplicaMetrics& r) { return static_cast<double>(r.waiting); });
    family("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.",
           [](const ReplicaMetrics& r) { return r.kv_cache_usage; });
    family("vllm:num_preemptions_total", "counter",
           "Cumulative number of preemption from the engine.",
           [](const ReplicaMetrics& r) { return r.preemptions; });
    family("vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed.",
           [](const ReplicaMetrics& r) { return r.prompt_tokens; });
    family("vllm:generation_tokens_total", "counter", "Number of generation tokens processed.",
           [](const ReplicaMetrics& r) { return r.generation_tokens; });

    w.header("vllm:request_success_total", "counter", "Count of successfully processed requests.");
    for (std::size_t i = 0; i < replicas.size(); ++i) {
        for (const std::string_view reason : kFinishReasons) {
            const double value = reason == "length"  ? replicas[i].finished_length
                                 : reason == "abort" ? replicas[i].finished_abort
                                                     : 0.0;
            w.sample("vllm:request_success_total", i,
                     fmt::format("finished_reason=\"{}\",", reason), value);
        }
    }

    struct HistogramFamily {
        std::string_view name;
        std::string_view help;
        const engine::CumulativeHistogram ReplicaMetrics::*member;
    };
    const HistogramFamily histograms[] = {
        {"vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
         &ReplicaMetrics::ttft_s},
        {"vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.",
         &ReplicaMetrics::itl_s},
        {"vllm:request_time_per_output_token_seconds",
         "Histogram of time_per_output_token_seconds per request.", &ReplicaMetrics::tpot_s},
        {"vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.",
         &ReplicaMetrics::e2e_s},
    };
    for (const HistogramFamily& h : histograms) {
        w.header(h.name, "histogram", h.help);
        for (std::size_t i = 0; i < replicas.size(); ++i) {
            w.histogram(h.name, i, replicas[i].*(h.member));
        }
    }

    family("pals_sim_batch_cap", "gauge",
           "Batch cap (max running sequences) in force in the simulated engine.",
           [](const ReplicaMetrics& r) { return static_cast<double>(r.batch_cap); });
    family("pals_sim_step_tokens", "gauge",
           "Per-step token budget (max tokens scheduled in one engine step) in force in the "
           "simulated engine.",
           [](const ReplicaMetrics& r) { return static_cast<double>(r.step_tokens); });
    family("pals_sim_power_cap_watts", "gauge",
           "Power cap of each GPU of the replica in the simulator, in simulated watts.",
           [](const ReplicaMetrics& r) { return r.power_cap_w; });
    family("pals_sim_power_watts", "gauge",
           "Average power of all GPUs of the replica over the last report interval, in "
           "simulated watts.",
           [](const ReplicaMetrics& r) { return r.power_w; });
    return w.take();
}

}  // namespace pals::serve
