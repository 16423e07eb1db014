#pragma once
/// @file latency_histogram.hpp
/// @brief A log-bucketed histogram of durations (seconds) with ~0.6 % relative resolution:
/// exact counts and mean, quantiles good to half a bucket. For millions of inter-token gaps,
/// where sorting would dominate the simulation's time.
///
/// Thread-safety: not thread-safe.

#include <cstdint>
#include <vector>

namespace pals::sim {

/// p50 / p90 / p99 / mean of a latency, in seconds.
struct LatencySummary {
    double p50 = 0.0;
    double p90 = 0.0;
    double p99 = 0.0;
    double mean = 0.0;
};

class LatencyHistogram {
public:
    LatencyHistogram();
    /// Adds `count` observations of `seconds` (values below 1 us land in the first bucket).
    void add(double seconds, std::uint64_t count = 1);
    void merge(const LatencyHistogram& other);
    /// What was added since `earlier` (a previous copy of this histogram).
    [[nodiscard]] LatencyHistogram since(const LatencyHistogram& earlier) const;
    [[nodiscard]] std::uint64_t count() const { return m_count; }
    [[nodiscard]] double mean() const {
        return m_count ? m_sum / static_cast<double>(m_count) : 0.0;
    }
    /// The q-quantile (0 <= q <= 1), 0 when empty.
    [[nodiscard]] double quantile(double q) const;
    [[nodiscard]] LatencySummary summary() const;
    [[nodiscard]] double sum() const { return m_sum; }
    /// Observations per bucket (not cumulative).
    [[nodiscard]] const std::vector<std::uint64_t>& buckets() const { return m_buckets; }
    /// Upper bound of bucket `i`, seconds.
    [[nodiscard]] static double bucket_upper_bound(std::size_t i);

private:
    std::vector<std::uint64_t> m_buckets;
    std::uint64_t m_count = 0;
    double m_sum = 0.0;
    double m_last_value = -1.0;  ///< one-entry cache: a step's gaps are often identical
    std::size_t m_last_bucket = 0;
};

/// Exact summary of a sample (sorts a copy).
[[nodiscard]] LatencySummary summarize(std::vector<double> values);

}  // namespace pals::sim
