/// @file workload.cpp
/// @brief build_workload: traces, synthetic open-loop arrivals and closed-loop batches.

#include "pals/workload/workload.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstddef>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace pals::workload {

namespace {

/// A synthetic run limited only by duration_s may not expect more requests than this.
constexpr double kMaxExpectedRequests = 1e8;

/// `value` must be finite and > 0; the message names the field.
Status check_positive(const char* name, double value) {
    if (!(value > 0.0)) {
        return Status::invalid_argument(fmt::format("{} must be > 0 (got {})", name, value));
    }
    if (!std::isfinite(value)) {
        return Status::invalid_argument(fmt::format("{} must be finite (got {})", name, value));
    }
    return Status::ok();
}

Status validate(const WorkloadSpec& spec) {
    PALS_RETURN_IF_ERROR(check_positive("time_scale", spec.time_scale));
    PALS_RETURN_IF_ERROR(check_positive("rate_scale", spec.rate_scale));
    if (spec.duration_s) {
        PALS_RETURN_IF_ERROR(check_positive("duration_s", *spec.duration_s));
    }
    if (!(spec.trace_start_s >= 0.0) || !std::isfinite(spec.trace_start_s)) {
        return Status::invalid_argument(
            fmt::format("trace_start_s must be finite and >= 0 (got {:g})", spec.trace_start_s));
    }
    if (spec.num_requests < 0) {
        return Status::invalid_argument(
            fmt::format("num_requests must be >= 0 (got {})", spec.num_requests));
    }
    if (spec.kind == WorkloadKind::kSynthetic) {
        PALS_RETURN_IF_ERROR(check_positive("rate_rps", spec.rate_rps));
        PALS_RETURN_IF_ERROR(check_positive("burstiness", spec.burstiness));
    }
    return Status::ok();
}

/// WorkloadSpec::rate_steps as a map from operational time (the trace's, or the synthetic
/// process's at rate_rps) to real time: real time runs 1/factor as fast as operational time.
class RateWarp {
public:
    explicit RateWarp(const std::vector<std::pair<double, double>>& steps) {
        double t = 0.0;
        double tau = 0.0;
        double factor = 1.0;
        for (const auto& [t_step, f] : steps) {
            tau += (t_step - t) * factor;
            t = t_step;
            factor = f;
            m_points.push_back({t, tau, factor});
        }
    }
    /// The real time at which operational time `tau` is reached.
    [[nodiscard]] double real_time(double tau) const {
        Point p{0.0, 0.0, 1.0};
        for (const Point& q : m_points) {
            if (q.tau > tau) {
                break;
            }
            p = q;
        }
        return p.t + (tau - p.tau) / p.factor;
    }

private:
    struct Point {
        double t;
        double tau;
        double factor;
    };
    std::vector<Point> m_points;
};

std::string lower_extension(const std::filesystem::path& path) {
    std::string ext = path.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return ext;
}

/// WorkloadSpec::trace_start_s: the requests from `start_s` on (arrivals relative to it), then
/// those before it, a mean gap after the last. A start beyond the trace wraps around its span.
/// A trace whose requests all arrive at once has no later window: it is returned as it is.
std::vector<Request> rotate_trace(std::vector<Request> requests, double start_s) {
    const double span = requests.back().arrival_s - requests.front().arrival_s;
    const double gap = span / static_cast<double>(requests.size() - 1);
    const double period = span + gap;  // the wrapped trace repeats with this period
    if (!(period > 0.0)) {
        return requests;
    }
    const double start = requests.front().arrival_s + std::fmod(start_s, period);
    const auto first = std::lower_bound(requests.begin(), requests.end(), start,
                                        [](const Request& r, double t) { return r.arrival_s < t; });
    std::vector<Request> out;
    out.reserve(requests.size());
    for (auto it = first; it != requests.end(); ++it) {
        out.push_back(*it);
        out.back().arrival_s -= start;
    }
    for (auto it = requests.begin(); it != first; ++it) {
        out.push_back(*it);
        out.back().arrival_s += period - start;
    }
    return out;
}

Result<std::vector<Request>> build_trace(const WorkloadSpec& spec) {
    const std::string ext = lower_extension(spec.trace_path);
    Result<std::vector<Request>> loaded = Status::internal("unreachable");
    if (ext == ".csv") {
        loaded = load_azure_trace(spec.trace_path);
    } else if (ext == ".jsonl" || ext == ".json") {
        loaded = load_jsonl_trace(spec.trace_path);
    } else {
        return Status::invalid_argument(fmt::format(
            "{}: unknown trace format '{}' (expected .csv for the Azure trace or .jsonl)",
            spec.trace_path.string(), ext));
    }
    if (!loaded.is_ok()) {
        return loaded.status();
    }
    std::vector<Request> requests = std::move(loaded).value();
    if (spec.trace_start_s > 0.0 && requests.size() > 1) {
        requests = rotate_trace(std::move(requests), spec.trace_start_s);
    }
    const double factor = spec.time_scale / spec.rate_scale;
    const RateWarp warp(spec.rate_steps);
    for (Request& r : requests) {
        r.arrival_s = warp.real_time(r.arrival_s * factor);
    }
    if (spec.duration_s) {
        const double limit = *spec.duration_s;
        // Sorted by arrival, so everything from the first late request on goes.
        const auto late = std::find_if(requests.begin(), requests.end(),
                                       [limit](const Request& r) { return r.arrival_s >= limit; });
        requests.erase(late, requests.end());
    }
    if (spec.num_requests > 0 && requests.size() > static_cast<std::size_t>(spec.num_requests)) {
        requests.resize(static_cast<std::size_t>(spec.num_requests));
    }
    return requests;
}

/// Open loop as `vllm bench serve` does it: the first request at t = 0, then gamma-distributed
/// gaps with shape `burstiness` and mean 1 / rate (burstiness 1 is a Poisson process).
Result<std::vector<Request>> build_synthetic(const WorkloadSpec& spec, std::mt19937_64& rng) {
    if (spec.num_requests == 0 && !spec.duration_s) {
        return Status::invalid_argument(
            "a synthetic workload needs num_requests > 0 or duration_s");
    }
    // rate_scale multiplies the rate and time_scale stretches time, as for traces.
    const double rate = spec.rate_rps * spec.rate_scale / spec.time_scale;
    if (!std::isfinite(rate) || !(rate > 0.0)) {
        return Status::invalid_argument(fmt::format(
            "rate_rps * rate_scale / time_scale must be finite and > 0 (got {:g})", rate));
    }
    if (spec.num_requests == 0 && rate * *spec.duration_s > kMaxExpectedRequests) {
        return Status::invalid_argument(fmt::format(
            "rate_rps * rate_scale / time_scale * duration_s expects {:.3g} requests, more than "
            "the {:.0e} allowed; set num_requests or lower the rate",
            rate * *spec.duration_s, kMaxExpectedRequests));
    }
    std::gamma_distribution<double> gap(spec.burstiness, 1.0 / (rate * spec.burstiness));
    std::vector<Request> requests;
    if (spec.num_requests > 0) {
        requests.reserve(static_cast<std::size_t>(spec.num_requests));
    }
    const RateWarp warp(spec.rate_steps);
    double tau = 0.0;
    while (spec.num_requests == 0 ||
           requests.size() < static_cast<std::size_t>(spec.num_requests)) {
        if (!requests.empty()) {
            tau += gap(rng);
        }
        const double t = warp.real_time(tau);
        if (spec.duration_s && t >= *spec.duration_s) {
            break;
        }
        Request r;
        r.arrival_s = t;
        r.input_tokens = spec.input.sample(rng);
        r.output_tokens = spec.output.sample(rng);
        requests.push_back(r);
    }
    return requests;
}

Result<std::vector<Request>> build_closed_loop(const WorkloadSpec& spec, std::mt19937_64& rng) {
    if (spec.num_requests <= 0) {
        return Status::invalid_argument(fmt::format(
            "a closed-loop workload needs num_requests > 0 (got {})", spec.num_requests));
    }
    std::vector<Request> requests(static_cast<std::size_t>(spec.num_requests));
    for (Request& r : requests) {
        r.input_tokens = spec.input.sample(rng);
        r.output_tokens = spec.output.sample(rng);
    }
    return requests;
}

}  // namespace

Result<std::vector<Request>> build_workload(const WorkloadSpec& spec) {
    PALS_RETURN_IF_ERROR(validate(spec));
    std::mt19937_64 rng(spec.seed);
    Result<std::vector<Request>> built = Status::internal("unreachable");
    switch (spec.kind) {
        case WorkloadKind::kTrace:
            built = build_trace(spec);
            break;
        case WorkloadKind::kSynthetic:
            built = build_synthetic(spec, rng);
            break;
        case WorkloadKind::kClosedLoop:
            built = build_closed_loop(spec, rng);
            break;
    }
    if (!built.is_ok()) {
        return built;
    }
    std::vector<Request>& requests = built.value();
    for (std::size_t i = 0; i < requests.size(); ++i) {
        requests[i].id = i;
    }
    return built;
}

}  // namespace pals::workload
