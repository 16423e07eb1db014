#pragma once
/// @file hash.hpp
/// @brief splitmix64 (Steele, Lea and Flood, 2014): the deterministic 64-bit mix the simulator
/// and load generator use to derive per-item randomness from an id without shared RNG state.

#include <cstdint>

namespace pals {

/// The increment of a splitmix64 stream (2^64 / golden ratio).
inline constexpr std::uint64_t kSplitmixGamma = 0x9E3779B97F4A7C15ULL;

/// splitmix64's output function: a bijective mix of all 64 bits. The k-th output of the
/// stream seeded with s is mix64(s + k * kSplitmixGamma).
[[nodiscard]] constexpr std::uint64_t mix64(std::uint64_t z) {
    z = (z ^ (z >> 30U)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27U)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31U);
}

/// A uniform double in [0, 1) from the top 53 bits of mix64(z).
[[nodiscard]] constexpr double unit_interval(std::uint64_t z) {
    return static_cast<double>(mix64(z) >> 11U) * 0x1.0p-53;
}

}  // namespace pals
