#pragma once
/// @file workload_mix.hpp
/// @brief A named workload mix for profiling: the request-length mix the engine is saturated
/// with while a point is measured. `pals profile --workload NAME=SPEC` (docs/profile.md):
///
///   SPEC = KEY=VALUE[,KEY=VALUE...]  or  a trace path (same as trace=PATH)
///   in=LEN     prompt tokens: N, uniform:LO:HI or FILE.json[#KEY] (as --input-len)
///   out=LEN    output tokens, same forms (as --output-len)
///   trace=PATH input/output lengths of an Azure CSV or JSONL trace, cycled in order
///              (arrival times are ignored: profiling is at saturation)
///   seed=N     random seed of the length draws (default 0)
///
/// Thread-safety: value types.

#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "pals/common/status.hpp"
#include "pals/workload/workload.hpp"

namespace pals::profile {

/// Name of the mix used when none is given.
inline constexpr std::string_view kDefaultWorkloadName = "default";
/// Lengths of the default mix: prompts uniform in [64, 512], 256 output tokens.
inline constexpr std::string_view kDefaultInputLen = "uniform:64:512";
inline constexpr std::string_view kDefaultOutputLen = "256";

/// Where a mix's request lengths come from.
struct WorkloadMix {
    std::string name;  ///< [A-Za-z0-9_.-]+, the `workload` column of the profile
    std::string spec;  ///< the SPEC text it was parsed from (for messages)
    workload::LengthDistribution input = workload::LengthDistribution::fixed(1);
    workload::LengthDistribution output = workload::LengthDistribution::fixed(1);
    /// When not empty: (input, output) lengths taken in order (from a trace), cycled.
    std::vector<workload::Request> lengths;
    std::uint64_t seed = 0;

    /// Mean output tokens per request.
    [[nodiscard]] double mean_output_tokens() const;
    /// Mean prompt tokens per request.
    [[nodiscard]] double mean_input_tokens() const;
    /// `n` requests, all arriving at t = 0, ids 0..n-1, lengths from the mix (seeded: the same
    /// n gives the same list). The first `stagger` requests get their output length scaled by a
    /// uniform random fraction in (0, 1], so that a closed loop starts with its in-flight
    /// requests at spread-out phases rather than in lock step.
    [[nodiscard]] std::vector<workload::Request> closed_loop_requests(int n, int stagger) const;
};

/// The default mix: name "default", in=uniform:64:512, out=256.
[[nodiscard]] WorkloadMix default_workload_mix();

/// Parses "NAME=SPEC". Errors name the text and the offending key.
[[nodiscard]] Result<WorkloadMix> parse_workload_mix(std::string_view text);

/// True for a valid mix name: 1-64 characters of [A-Za-z0-9_.-].
[[nodiscard]] bool is_valid_workload_name(std::string_view name);

}  // namespace pals::profile
