/// @file metrics.cpp
/// @brief vLLM bench serve's metrics (`calculate_metrics`), as pure functions.

#include "pals/loadgen/metrics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <numeric>
#include <system_error>

#include "pals/common/strings.hpp"

namespace pals::loadgen {

namespace {

constexpr double kMsPerSecond = 1000.0;

/// Splits on ',' and drops empty (whitespace-only) entries.
std::vector<std::string_view> split_list(std::string_view text) {
    std::vector<std::string_view> parts;
    while (true) {
        const std::size_t comma = text.find(',');
        const std::string_view part = trim(text.substr(0, comma));
        if (!part.empty()) {
            parts.push_back(part);
        }
        if (comma == std::string_view::npos) {
            break;
        }
        text.remove_prefix(comma + 1);
    }
    return parts;
}

std::optional<double> parse_double(std::string_view text) {
    double value = 0.0;
    const char* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (ec != std::errc{} || ptr != end || !std::isfinite(value)) {
        return std::nullopt;
    }
    return value;
}

}  // namespace

std::optional<double> request_tpot_s(const RequestOutcome& outcome) {
    if (outcome.output_tokens <= 1) {
        return std::nullopt;
    }
    return (outcome.e2el_s - outcome.ttft_s) / static_cast<double>(outcome.output_tokens - 1);
}

std::string_view metric_name(LatencyMetric metric) {
    switch (metric) {
        case LatencyMetric::kTtft:
            return "ttft";
        case LatencyMetric::kTpot:
            return "tpot";
        case LatencyMetric::kItl:
            return "itl";
        case LatencyMetric::kE2el:
            return "e2el";
    }
    return "?";
}

Result<std::vector<LatencyMetric>> parse_percentile_metrics(std::string_view text) {
    constexpr LatencyMetric kAll[] = {LatencyMetric::kTtft, LatencyMetric::kTpot,
                                      LatencyMetric::kItl, LatencyMetric::kE2el};
    std::vector<LatencyMetric> metrics;
    for (const std::string_view part : split_list(text)) {
        const auto* found = std::find_if(std::begin(kAll), std::end(kAll), [part](LatencyMetric m) {
            return metric_name(m) == part;
        });
        if (found == std::end(kAll)) {
            return Status::invalid_argument(
                fmt::format("unknown metric '{}' (allowed: ttft, tpot, itl, e2el)", part));
        }
        if (std::find(metrics.begin(), metrics.end(), *found) == metrics.end()) {
            metrics.push_back(*found);
        }
    }
    return metrics;
}

Result<std::vector<double>> parse_metric_percentiles(std::string_view text) {
    std::vector<double> percentiles;
    for (const std::string_view part : split_list(text)) {
        const std::optional<double> p = parse_double(part);
        if (!p || *p < 0.0 || *p > 100.0) {
            return Status::invalid_argument(
                fmt::format("'{}' is not a percentile in [0, 100]", part));
        }
        percentiles.push_back(*p);
    }
    if (percentiles.empty()) {
        return Status::invalid_argument("no percentile given");
    }
    return percentiles;
}

Result<GoodputSlo> parse_goodput(const std::vector<std::string>& items) {
    GoodputSlo slo;
    for (const std::string& item : items) {
        for (const std::string_view part : split_list(item)) {
            const std::size_t colon = part.find(':');
            if (colon == std::string_view::npos) {
                return Status::invalid_argument(
                    fmt::format("'{}' is not KEY:VALUE (e.g. ttft:500)", part));
            }
            const std::string_view key = trim(part.substr(0, colon));
            const std::optional<double> value = parse_double(trim(part.substr(colon + 1)));
            if (!value || *value < 0.0) {
                return Status::invalid_argument(
                    fmt::format("'{}': the SLO must be a number of milliseconds >= 0", part));
            }
            if (key == "ttft") {
                slo.ttft_ms = value;
            } else if (key == "tpot") {
                slo.tpot_ms = value;
            } else if (key == "e2el") {
                slo.e2el_ms = value;
            } else {
                return Status::invalid_argument(
                    fmt::format("unknown SLO '{}' (allowed: ttft, tpot, e2el)", key));
            }
        }
    }
    return slo;
}

bool is_good_request(const RequestOutcome& outcome, const GoodputSlo& slo) {
    if (!outcome.success) {
        return false;
    }
    // vLLM compares SLO (ms / 1000) >= value (s); the same here, in seconds.
    if (slo.ttft_ms && !(*slo.ttft_ms / kMsPerSecond >= outcome.ttft_s)) {
        return false;
    }
    if (slo.tpot_ms && !(*slo.tpot_ms / kMsPerSecond >= request_tpot_s(outcome).value_or(0.0))) {
        return false;
    }
    if (slo.e2el_ms && !(*slo.e2el_ms / kMsPerSecond >= outcome.e2el_s)) {
        return false;
    }
    return true;
}

double percentile(std::vector<double> values, double p) {
    if (values.empty()) {
        return 0.0;
    }
    std::sort(values.begin(), values.end());
    const double rank = std::clamp(p, 0.0, 100.0) / 100.0 * static_cast<double>(values.size() - 1);
    const auto lo = static_cast<std::size_t>(std::floor(rank));
    const std::size_t hi = std::min(lo + 1, values.size() - 1);
    const double frac = rank - static_cast<double>(lo);
    return values[lo] + (values[hi] - values[lo]) * frac;
}

double mean(const std::vector<double>& values) {
    if (values.empty()) {
        return 0.0;
    }
    return std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
}

double stddev(const std::vector<double>& values) {
    if (values.empty()) {
        return 0.0;
    }
    const double m = mean(values);
    double sum_sq = 0.0;
    for (const double v : values) {
        sum_sq += (v - m) * (v - m);
    }
    return std::sqrt(sum_sq / static_cast<double>(values.size()));
}

double median(std::vector<double> values) {
    return percentile(std::move(values), 50.0);
}

LatencyStats summarize_latency(const std::vector<double>& values_s,
                               const std::vector<double>& percentiles) {
    LatencyStats stats;
    stats.mean_ms = mean(values_s) * kMsPerSecond;
    stats.median_ms = median(values_s) * kMsPerSecond;
    stats.std_ms = stddev(values_s) * kMsPerSecond;
    std::vector<double> sorted = values_s;
    std::sort(sorted.begin(), sorted.end());
    for (const double p : percentiles) {
        stats.percentiles_ms.emplace_back(p, percentile(sorted, p) * kMsPerSecond);
    }
    return stats;
}

PeakStats compute_peaks(const std::vector<RequestOutcome>& outcomes) {
    PeakStats peaks;
    double min_start = 0.0;
    double max_end = 0.0;
    bool any = false;
    for (const RequestOutcome& o : outcomes) {
        if (!o.success) {
            continue;
        }
        min_start = any ? std::min(min_start, o.send_s) : o.send_s;
        max_end = any ? std::max(max_end, o.send_s + o.e2el_s) : o.send_s + o.e2el_s;
        any = true;
    }
    if (!any) {
        return peaks;
    }
    // vLLM: int(np.ceil(max_end - min_start)) + 1 buckets; int() truncates a bucket's index.
    const auto buckets =
        static_cast<std::size_t>(std::ceil(std::max(0.0, max_end - min_start))) + 1;
    std::vector<double> tokens(buckets, 0.0);
    std::vector<int> concurrent(buckets, 0);
    const auto bucket_of = [min_start](double t) {
        return static_cast<std::ptrdiff_t>(std::trunc(t - min_start));
    };
    const auto in_range = [buckets](std::ptrdiff_t b) {
        return b >= 0 && static_cast<std::size_t>(b) < buckets;
    };
    for (const RequestOutcome& o : outcomes) {
        if (!o.success) {
            continue;
        }
        double t = o.send_s + o.ttft_s;
        if (const std::ptrdiff_t b = bucket_of(t); in_range(b)) {
            tokens[static_cast<std::size_t>(b)] += 1.0;
        }
        for (const double gap : o.itl_s) {
            t += gap;
            if (const std::ptrdiff_t b = bucket_of(t); in_range(b)) {
                tokens[static_cast<std::size_t>(b)] += 1.0;
            }
        }
        const std::ptrdiff_t first = bucket_of(o.send_s);
        const std::ptrdiff_t last = bucket_of(o.send_s + o.e2el_s);
        for (std::ptrdiff_t b = first; b <= last; ++b) {
            if (in_range(b)) {
                ++concurrent[static_cast<std::size_t>(b)];
            }
        }
    }
    peaks.max_output_tokens_per_s = *std::max_element(tokens.begin(), tokens.end());
    peaks.max_concurrent_requests = *std::max_element(concurrent.begin(), concurrent.end());
    return peaks;
}

const LatencyStats& BenchmarkMetrics::stats(LatencyMetric metric) const {
    switch (metric) {
        case LatencyMetric::kTtft:
            return ttft;
        case LatencyMetric::kTpot:
            return tpot;
        case LatencyMetric::kItl:
            return itl;
        case LatencyMetric::kE2el:
            return e2el;
    }
    return ttft;
}

BenchmarkMetrics compute_metrics(const std::vector<RequestOutcome>& outcomes, double duration_s,
                                 const MetricsConfig& config) {
    BenchmarkMetrics m;
    m.duration_s = duration_s;
    std::vector<double> ttfts;
    std::vector<double> tpots;
    std::vector<double> itls;
    std::vector<double> e2els;
    for (const RequestOutcome& o : outcomes) {
        if (!o.success) {
            ++m.failed;
            continue;
        }
        ++m.completed;
        m.total_input += o.input_tokens;
        m.total_output += o.output_tokens;
        if (const std::optional<double> tpot = request_tpot_s(o)) {
            tpots.push_back(*tpot);
        }
        itls.insert(itls.end(), o.itl_s.begin(), o.itl_s.end());
        ttfts.push_back(o.ttft_s);
        e2els.push_back(o.e2el_s);
        if (!config.goodput.empty() && is_good_request(o, config.goodput)) {
            ++m.good_completed;
        }
    }
    // A zero duration only happens with nothing sent; avoid dividing by it.
    const double safe_duration = duration_s > 0.0 ? duration_s : 1.0;
    m.request_throughput = m.completed / safe_duration;
    m.output_throughput = static_cast<double>(m.total_output) / safe_duration;
    m.total_token_throughput = static_cast<double>(m.total_input + m.total_output) / safe_duration;
    if (!config.goodput.empty()) {
        m.request_goodput = m.good_completed / safe_duration;
        m.slo_attainment =
            m.completed > 0 ? static_cast<double>(m.good_completed) / m.completed : 0.0;
    }
    const PeakStats peaks = compute_peaks(outcomes);
    m.max_output_tokens_per_s = peaks.max_output_tokens_per_s;
    m.max_concurrent_requests = peaks.max_concurrent_requests;
    m.ttft = summarize_latency(ttfts, config.percentiles);
    m.tpot = summarize_latency(tpots, config.percentiles);
    m.itl = summarize_latency(itls, config.percentiles);
    m.e2el = summarize_latency(e2els, config.percentiles);
    return m;
}

}  // namespace pals::loadgen
