#include "pals/engine/serving_engine.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace pals::engine {

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();
}

CumulativeHistogram CumulativeHistogram::with_bounds(std::vector<double> bounds) {
    CumulativeHistogram h;
    h.upper_bounds = std::move(bounds);
    h.upper_bounds.push_back(kInf);
    h.cumulative_counts.assign(h.upper_bounds.size(), 0.0);
    return h;
}

void CumulativeHistogram::observe(double value, double n) {
    const auto first = std::lower_bound(upper_bounds.begin(), upper_bounds.end(), value);
    for (auto i = static_cast<std::size_t>(first - upper_bounds.begin());
         i < cumulative_counts.size(); ++i) {
        cumulative_counts[i] += n;
    }
    sum += value * n;
    count += n;
}

Result<CumulativeHistogram> CumulativeHistogram::minus(const CumulativeHistogram& earlier) const {
    if (earlier.upper_bounds != upper_bounds) {
        return Status::invalid_argument("histogram bucket bounds changed between readings");
    }
    if (count < earlier.count) {
        return *this;  // reset: the engine restarted
    }
    CumulativeHistogram d = *this;
    for (std::size_t i = 0; i < d.cumulative_counts.size(); ++i) {
        d.cumulative_counts[i] = std::max(0.0, cumulative_counts[i] - earlier.cumulative_counts[i]);
    }
    d.sum = sum - earlier.sum;
    d.count = count - earlier.count;
    return d;
}

double CumulativeHistogram::quantile(double q) const {
    if (count <= 0.0 || cumulative_counts.empty()) {
        return std::numeric_limits<double>::quiet_NaN();
    }
    const double rank = std::clamp(q, 0.0, 1.0) * cumulative_counts.back();
    for (std::size_t i = 0; i < cumulative_counts.size(); ++i) {
        if (cumulative_counts[i] >= rank) {
            if (std::isinf(upper_bounds[i])) {
                return i > 0 ? upper_bounds[i - 1] : 0.0;
            }
            const double lo = i > 0 ? upper_bounds[i - 1] : 0.0;
            const double below = i > 0 ? cumulative_counts[i - 1] : 0.0;
            const double in_bucket = cumulative_counts[i] - below;
            if (in_bucket <= 0.0) {
                return upper_bounds[i];
            }
            return lo + (upper_bounds[i] - lo) * (rank - below) / in_bucket;
        }
    }
    return upper_bounds.size() > 1 ? upper_bounds[upper_bounds.size() - 2] : 0.0;
}

double CumulativeHistogram::share_above(double threshold) const {
    const double total = cumulative_counts.empty() ? 0.0 : cumulative_counts.back();
    if (count <= 0.0 || total <= 0.0) {
        return std::numeric_limits<double>::quiet_NaN();
    }
    // The first bucket that does not lie wholly at or below the threshold (+inf is last).
    std::size_t i = 0;
    while (i + 1 < upper_bounds.size() && threshold >= upper_bounds[i]) {
        ++i;
    }
    const double lo = i > 0 ? upper_bounds[i - 1] : 0.0;
    double below = i > 0 ? cumulative_counts[i - 1] : 0.0;
    if (threshold > lo && !std::isinf(upper_bounds[i])) {
        below += (cumulative_counts[i] - below) *
                 std::min(1.0, (threshold - lo) / (upper_bounds[i] - lo));
    }
    return std::clamp(1.0 - below / total, 0.0, 1.0);
}

std::vector<double> vllm_ttft_buckets() {
    return {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,  0.25,  0.5,   0.75,
            1.0,   2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
}

std::vector<double> vllm_itl_buckets() {
    return {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,  0.3,  0.4, 0.5,
            0.75, 1.0,   2.5,  5.0,   7.5, 10.0, 20.0, 40.0, 80.0};
}

std::vector<double> vllm_e2e_buckets() {
    return {0.3,  0.5,  0.8,  1.0,  1.5,   2.0,   2.5,   5.0,   10.0,   15.0,  20.0,
            30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
}

BatchCapCheck check_batch_cap(const EngineSnapshot& snapshot) {
    const BatchCapAck& ack = snapshot.batch_cap_ack;
    if (!snapshot.batch_cap_requested || ack.state == BatchCapAck::State::kNotReported) {
        return BatchCapCheck::kUnchecked;
    }
    if (ack.state == BatchCapAck::State::kMissing) {
        return BatchCapCheck::kMissing;
    }
    if (ack.state == BatchCapAck::State::kStale) {
        return BatchCapCheck::kStale;
    }
    const int expected =
        ack.launch > 0 ? std::min(snapshot.batch_cap, ack.launch) : snapshot.batch_cap;
    return ack.requested == snapshot.batch_cap && ack.applied == expected
               ? BatchCapCheck::kOk
               : BatchCapCheck::kMismatch;
}

std::string_view to_string(BatchCapCheck check) {
    switch (check) {
        case BatchCapCheck::kUnchecked:
            return "unchecked";
        case BatchCapCheck::kOk:
            return "ok";
        case BatchCapCheck::kMismatch:
            return "mismatch";
        case BatchCapCheck::kMissing:
            return "missing";
        case BatchCapCheck::kStale:
            return "stale";
    }
    return "unchecked";
}

Result<EngineWindow> window_between(const EngineSnapshot& earlier, const EngineSnapshot& later) {
    EngineWindow w;
    w.duration_s = (later.time - earlier.time).count();
    auto delta = [](double a, double b) { return b >= a ? b - a : b; };  // reset: count from zero
    w.prompt_tokens = delta(earlier.prompt_tokens, later.prompt_tokens);
    w.generation_tokens = delta(earlier.generation_tokens, later.generation_tokens);
    w.requests_finished = delta(earlier.requests_finished, later.requests_finished);
    w.preemptions = delta(earlier.preemptions, later.preemptions);
    w.running = later.running;
    w.waiting = later.waiting;
    struct Pair {
        const CumulativeHistogram& a;
        const CumulativeHistogram& b;
        CumulativeHistogram& out;
    };
    for (const Pair& p :
         {Pair{earlier.ttft_s, later.ttft_s, w.ttft_s}, Pair{earlier.itl_s, later.itl_s, w.itl_s},
          Pair{earlier.tpot_s, later.tpot_s, w.tpot_s},
          Pair{earlier.e2e_s, later.e2e_s, w.e2e_s}}) {
        PALS_ASSIGN_OR_RETURN(CumulativeHistogram d, p.b.minus(p.a));
        p.out = std::move(d);
    }
    return w;
}

}  // namespace pals::engine
