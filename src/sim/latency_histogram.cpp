#include "pals/sim/latency_histogram.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace pals::sim {

namespace {
constexpr double kMinSeconds = 1e-6;
constexpr int kDecades = 10;  // 1 us .. 10^4 s
constexpr int kBucketsPerDecade = 200;
constexpr int kBuckets = kDecades * kBucketsPerDecade;

double bucket_value(std::size_t bucket) {
    // Geometric middle of the bucket.
    return kMinSeconds * std::pow(10.0, (static_cast<double>(bucket) + 0.5) / kBucketsPerDecade);
}
}  // namespace

double LatencyHistogram::bucket_upper_bound(std::size_t i) {
    return kMinSeconds * std::pow(10.0, (static_cast<double>(i) + 1.0) / kBucketsPerDecade);
}

LatencyHistogram::LatencyHistogram() : m_buckets(kBuckets, 0) {}

void LatencyHistogram::add(double seconds, std::uint64_t count) {
    if (count == 0) {
        return;
    }
    m_count += count;
    m_sum += seconds * static_cast<double>(count);
    if (seconds != m_last_value) {
        m_last_value = seconds;
        const double position =
            std::log10(std::max(seconds, kMinSeconds) / kMinSeconds) * kBucketsPerDecade;
        m_last_bucket = static_cast<std::size_t>(std::clamp(position, 0.0, kBuckets - 1.0));
    }
    m_buckets[m_last_bucket] += count;
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
    for (std::size_t i = 0; i < m_buckets.size(); ++i) {
        m_buckets[i] += other.m_buckets[i];
    }
    m_count += other.m_count;
    m_sum += other.m_sum;
}

LatencyHistogram LatencyHistogram::since(const LatencyHistogram& earlier) const {
    LatencyHistogram d = *this;
    for (std::size_t i = 0; i < d.m_buckets.size(); ++i) {
        d.m_buckets[i] -= std::min(d.m_buckets[i], earlier.m_buckets[i]);
    }
    d.m_count -= std::min(d.m_count, earlier.m_count);
    d.m_sum -= earlier.m_sum;
    d.m_last_value = -1.0;
    return d;
}

double LatencyHistogram::quantile(double q) const {
    if (m_count == 0) {
        return 0.0;
    }
    const auto rank = static_cast<std::uint64_t>(
        std::ceil(std::clamp(q, 0.0, 1.0) * static_cast<double>(m_count)));
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < m_buckets.size(); ++i) {
        seen += m_buckets[i];
        if (seen >= std::max<std::uint64_t>(rank, 1)) {
            return bucket_value(i);
        }
    }
    return bucket_value(m_buckets.size() - 1);
}

LatencySummary LatencyHistogram::summary() const {
    return {quantile(0.5), quantile(0.9), quantile(0.99), mean()};
}

LatencySummary summarize(std::vector<double> values) {
    LatencySummary s;
    if (values.empty()) {
        return s;
    }
    std::sort(values.begin(), values.end());
    auto at = [&values](double q) {
        // Linear interpolation between order statistics (numpy's default).
        const double pos = q * static_cast<double>(values.size() - 1);
        const auto lo = static_cast<std::size_t>(std::floor(pos));
        const std::size_t hi = std::min(lo + 1, values.size() - 1);
        return values[lo] + (values[hi] - values[lo]) * (pos - static_cast<double>(lo));
    };
    s.p50 = at(0.5);
    s.p90 = at(0.9);
    s.p99 = at(0.99);
    s.mean =
        std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
    return s;
}

}  // namespace pals::sim
