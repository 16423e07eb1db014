#include "pals/engine/vllm/vllm_metrics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <map>
#include <optional>
#include <utility>
#include <vector>

namespace pals::engine::vllm {
namespace {

bool passes(const Sample& s, const VllmSeriesFilter& filter) {
    if (!filter.model_name.empty()) {
        const std::string* m = s.label("model_name");
        if (m == nullptr || *m != filter.model_name) {
            return false;
        }
    }
    if (!filter.engine.empty()) {
        const std::string* e = s.label("engine");
        if (e == nullptr || *e != filter.engine) {
            return false;
        }
    }
    return true;
}

std::string describe(const VllmSeriesFilter& filter) {
    std::string out;
    if (!filter.model_name.empty()) {
        out += " with model_name=\"" + filter.model_name + "\"";
    }
    if (!filter.engine.empty()) {
        out += std::string(out.empty() ? " with" : " and") + " engine=\"" + filter.engine + "\"";
    }
    return out;
}

/// Sum and number of the samples named `name` that pass the filter.
struct Aggregate {
    double sum = 0.0;
    int n = 0;
};

Aggregate aggregate(const ParsedMetrics& metrics, std::string_view name,
                    const VllmSeriesFilter& filter) {
    Aggregate a;
    for (const Sample& s : metrics.samples) {
        if (s.name == name && passes(s, filter)) {
            a.sum += s.value;
            ++a.n;
        }
    }
    return a;
}

Status missing(std::string_view name, const VllmSeriesFilter& filter) {
    return Status::invalid_argument("vLLM metrics: required metric " + std::string(name) +
                                    " is missing" + describe(filter));
}

/// The summed value of the first of `names` that has samples; kInvalidArgument naming them all.
Result<double> required_sum(const ParsedMetrics& metrics,
                            std::initializer_list<std::string_view> names,
                            const VllmSeriesFilter& filter, bool mean = false) {
    for (std::string_view name : names) {
        const Aggregate a = aggregate(metrics, name, filter);
        if (a.n == 0) {
            continue;
        }
        if (!std::isfinite(a.sum)) {
            return Status::invalid_argument("vLLM metrics: " + std::string(name) +
                                            " is not finite");
        }
        return mean ? a.sum / a.n : a.sum;
    }
    std::string all;
    for (std::string_view name : names) {
        all += (all.empty() ? "" : " (or ") + std::string(name) + (all.empty() ? "" : ")");
    }
    return missing(all, filter);
}

Result<int> required_count(const ParsedMetrics& metrics, std::string_view name,
                           const VllmSeriesFilter& filter) {
    PALS_ASSIGN_OR_RETURN(auto v, required_sum(metrics, {name}, filter));
    return static_cast<int>(std::lround(v));
}

/// The label set of a bucket sample without `le`, as one comparable key.
std::string series_key(const Sample& s) {
    std::vector<const Label*> labels;
    for (const Label& l : s.labels) {
        if (l.name != "le") {
            labels.push_back(&l);
        }
    }
    std::sort(labels.begin(), labels.end(),
              [](const Label* a, const Label* b) { return a->name < b->name; });
    std::string key;
    for (const Label* l : labels) {
        key += l->name;
        key += '\x1f';
        key += l->value;
        key += '\x1e';
    }
    return key;
}

Result<CumulativeHistogram> histogram_of_first(const ParsedMetrics& metrics,
                                               std::initializer_list<std::string_view> names,
                                               const VllmSeriesFilter& filter) {
    for (std::string_view name : names) {
        auto h = histogram_from_metrics(metrics, name, filter);
        if (h.is_ok() || h.status().code() != StatusCode::kNotFound) {
            return h;
        }
    }
    std::string all;
    for (std::string_view name : names) {
        all += (all.empty() ? "" : " (or ") + std::string(name) + (all.empty() ? "" : ")");
    }
    return missing(all, filter);
}

}  // namespace

Result<CumulativeHistogram> histogram_from_metrics(const ParsedMetrics& metrics,
                                                   std::string_view family,
                                                   const VllmSeriesFilter& filter) {
    const std::string bucket_name = std::string(family) + "_bucket";
    const std::string sum_name = std::string(family) + "_sum";
    const std::string count_name = std::string(family) + "_count";
    const std::string where = "vLLM metrics: histogram " + std::string(family);

    std::map<std::string, std::map<double, double>> series;  // label set -> le -> cumulative count
    for (const Sample& s : metrics.samples) {
        if (s.name != bucket_name || !passes(s, filter)) {
            continue;
        }
        const std::string* le_text = s.label("le");
        if (le_text == nullptr) {
            return Status::invalid_argument(where + ": a bucket has no le label");
        }
        auto le = parse_prometheus_float(*le_text);
        if (!le.is_ok() || std::isnan(*le)) {
            return Status::invalid_argument(where + ": invalid le=\"" + *le_text + "\"");
        }
        if (!std::isfinite(s.value) || s.value < 0.0) {
            return Status::invalid_argument(where + ": bucket le=\"" + *le_text + "\" has count " +
                                            fmt::format("{:g}", s.value));
        }
        auto& buckets = series[series_key(s)];
        if (!buckets.emplace(*le, s.value).second) {
            return Status::invalid_argument(where + ": duplicate bucket le=\"" + *le_text + "\"");
        }
    }
    if (series.empty()) {
        return Status::not_found(where + " has no " + bucket_name + " samples" + describe(filter));
    }

    CumulativeHistogram h;
    bool first = true;
    for (const auto& [key, buckets] : series) {
        if (std::prev(buckets.end())->first != std::numeric_limits<double>::infinity()) {
            return Status::invalid_argument(where + ": no le=\"+Inf\" bucket");
        }
        if (first) {
            for (const auto& [le, count] : buckets) {
                h.upper_bounds.push_back(le);
                h.cumulative_counts.push_back(0.0);
            }
            first = false;
        } else if (buckets.size() != h.upper_bounds.size() ||
                   !std::equal(buckets.begin(), buckets.end(), h.upper_bounds.begin(),
                               [](const auto& b, double le) { return b.first == le; })) {
            return Status::invalid_argument(where + ": bucket bounds differ between label sets");
        }
        double previous = 0.0;
        std::size_t i = 0;
        for (const auto& [le, count] : buckets) {
            if (count < previous) {
                return Status::invalid_argument(
                    where + ": cumulative bucket counts decrease at le=" + fmt::format("{:g}", le));
            }
            previous = count;
            h.cumulative_counts[i++] += count;
        }
    }

    const Aggregate sum = aggregate(metrics, sum_name, filter);
    if (sum.n == 0) {
        return Status::invalid_argument(where + " has buckets but no " + sum_name);
    }
    h.sum = sum.sum;
    const Aggregate count = aggregate(metrics, count_name, filter);
    h.count = count.n > 0 ? count.sum : h.cumulative_counts.back();
    return h;
}

Result<EngineSnapshot> snapshot_from_metrics(const ParsedMetrics& metrics,
                                             const VllmSeriesFilter& filter, Seconds time) {
    EngineSnapshot s;
    s.time = time;
    // A server without any vllm:* series is a vLLM started with --disable-log-stats (or not a
    // vLLM): say so rather than name the first metric missing.
    if (std::none_of(metrics.samples.begin(), metrics.samples.end(),
                     [](const Sample& sample) { return sample.name.starts_with("vllm:"); })) {
        return Status::invalid_argument(
            "vLLM metrics: no vllm:* series at all: the server was started with "
            "--disable-log-stats (PALS needs its stats: drop the flag), or it is not a vLLM "
            "server");
    }

    PALS_ASSIGN_OR_RETURN(auto running, required_count(metrics, kRunningMetric, filter));
    s.running = running;
    PALS_ASSIGN_OR_RETURN(auto waiting, required_count(metrics, kWaitingMetric, filter));
    s.waiting = waiting;
    PALS_ASSIGN_OR_RETURN(
        auto kv, required_sum(metrics, {kKvCacheUsageMetric, kKvCacheUsageOldMetric}, filter,
                              /*mean=*/true));
    s.kv_cache_usage = kv;

    struct CounterField {
        std::string_view name;
        double* field;
    };
    for (const CounterField& c : {CounterField{kPromptTokensMetric, &s.prompt_tokens},
                                  CounterField{kGenerationTokensMetric, &s.generation_tokens},
                                  CounterField{kRequestSuccessMetric, &s.requests_finished},
                                  CounterField{kPreemptionsMetric, &s.preemptions}}) {
        PALS_ASSIGN_OR_RETURN(auto v, required_sum(metrics, {c.name}, filter));
        *c.field = v;
    }

    PALS_ASSIGN_OR_RETURN(auto ttft, histogram_of_first(metrics, {kTtftMetric}, filter));
    s.ttft_s = std::move(ttft);
    PALS_ASSIGN_OR_RETURN(auto itl,
                          histogram_of_first(metrics, {kItlMetric, kItlOldMetric}, filter));
    s.itl_s = std::move(itl);
    auto tpot = histogram_from_metrics(metrics, kTpotMetric, filter);
    if (tpot.is_ok()) {
        s.tpot_s = std::move(tpot).value();
    } else if (tpot.status().code() == StatusCode::kNotFound) {
        s.tpot_s = CumulativeHistogram::with_bounds(vllm_itl_buckets());
    } else {
        return tpot.status();
    }
    PALS_ASSIGN_OR_RETURN(auto e2e, histogram_of_first(metrics, {kE2eMetric}, filter));
    s.e2e_s = std::move(e2e);
    return s;
}

Result<EngineSnapshot> snapshot_from_text(std::string_view text, const VllmSeriesFilter& filter,
                                          Seconds time) {
    PALS_ASSIGN_OR_RETURN(auto parsed, parse_prometheus_text(text));
    return snapshot_from_metrics(parsed, filter, time);
}

}  // namespace pals::engine::vllm
