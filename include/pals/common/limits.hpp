#pragma once
/// @file limits.hpp
/// @brief Documented limits of counts, lengths and durations that any option accepts
/// (docs/cli.md): no allocation or loop grows past them, and no value overflows what is computed
/// from it.

#include <cstdint>

namespace pals {

inline constexpr std::int64_t kMaxTokens = 10'000'000;    ///< token lengths, token budgets
inline constexpr std::int64_t kMaxRequests = 10'000'000;  ///< request counts
inline constexpr std::int64_t kMaxSeqs = 1'000'000;       ///< batch caps, concurrency
inline constexpr std::int64_t kMaxGpus = 1024;            ///< GPU indices are < this; tp, replicas
inline constexpr double kMaxSeconds = 1e9;                ///< durations, SLOs, periods (s)

}  // namespace pals
