#pragma once
/// @file workload.hpp
/// @brief Requests for the simulator and load generators: real traces (Azure CSV, Mooncake-style
/// JSONL), synthetic Poisson/gamma arrivals, and closed-loop batches (ML.ENERGY style).

#include <cstdint>
#include <filesystem>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pals/common/status.hpp"

namespace pals::workload {

/// One inference request. Times are seconds from the start of the workload.
struct Request {
    std::uint64_t id = 0;
    double arrival_s = 0.0;
    int input_tokens = 0;
    int output_tokens = 0;
};

/// A distribution of token counts: a fixed number, uniform integers in [lo, hi], a lognormal
/// truncated to [lo, hi] (long-context prompts), or a histogram (`bins` edges and `counts`, as
/// ML.ENERGY's output_length_distributions.json holds).
class LengthDistribution {
public:
    /// Parses "N", "uniform:LO:HI", "lognormal:MEDIAN:SIGMA:LO:HI" (exp(mu) = MEDIAN, draws
    /// outside [LO, HI] redrawn), or a JSON file path "FILE" / "FILE#KEY". The file holds either
    /// {"bins": [...], "counts": [...]} at the top level, or under KEY (KEY may name an object
    /// that itself holds `model_output_length_distribution`). Errors name the text or the file.
    /// "fixed:N" (what describe() prints) is accepted too.
    [[nodiscard]] static Result<LengthDistribution> parse(std::string_view text);
    /// fixed() and uniform() throw std::invalid_argument (a programmer error) unless
    /// tokens >= 1 and 1 <= lo <= hi; user text goes through parse(), which returns a Status.
    static LengthDistribution fixed(int tokens);
    static LengthDistribution uniform(int lo, int hi);
    /// Needs 1 <= lo <= median <= hi and sigma > 0.
    static LengthDistribution lognormal(int median, double sigma, int lo, int hi);
    /// `edges` has counts.size() + 1 increasing entries; samples are uniform within a bin.
    [[nodiscard]] static Result<LengthDistribution> histogram(std::vector<double> edges,
                                                              std::vector<double> counts);

    /// Draws one length (>= 1).
    [[nodiscard]] int sample(std::mt19937_64& rng) const;
    /// Expected value of sample().
    [[nodiscard]] double mean() const;
    /// What was parsed, for messages ("fixed:128", "uniform:10:20", "histogram(40 bins)").
    [[nodiscard]] std::string describe() const;

private:
    enum class Kind { kFixed, kUniform, kLognormal, kHistogram };
    Kind m_kind = Kind::kFixed;
    int m_lo = 1;
    int m_hi = 1;
    double m_mu = 0.0;  ///< kLognormal: log of the median
    double m_sigma = 0.0;
    std::vector<double> m_edges;
    std::vector<double> m_cumulative;  ///< normalised cumulative counts
};

/// Where requests come from.
enum class WorkloadKind {
    kTrace,       ///< a trace file: Azure CSV (.csv) or JSONL (.jsonl)
    kSynthetic,   ///< open loop: gamma inter-arrivals with mean 1/rate (burstiness 1 = Poisson)
    kClosedLoop,  ///< num_requests all submitted at t = 0
};

/// Everything needed to build a request list. Defaults reproduce `vllm bench serve`'s defaults
/// where they exist.
struct WorkloadSpec {
    WorkloadKind kind = WorkloadKind::kSynthetic;
    std::filesystem::path trace_path;  ///< kTrace
    /// Arrival times become (t - t_first) * time_scale / rate_scale: time_scale > 1 stretches
    /// the trace, rate_scale > 1 compresses it (more load per second).
    double time_scale = 1.0;
    double rate_scale = 1.0;
    std::optional<double> duration_s;  ///< keep requests arriving before this (after scaling)
    /// kTrace: the replay starts this many seconds into the trace (trace time, before
    /// scaling) and wraps around: the requests before it follow the last one, a mean gap
    /// later, so any window of the trace can be replayed at full length (a second sample of
    /// a scenario: `pals evaluate --trace-start`). 0: from the first request.
    double trace_start_s = 0.0;
    double rate_rps = 1.0;    ///< kSynthetic: mean arrival rate (requests/s)
    double burstiness = 1.0;  ///< kSynthetic: gamma shape; < 1 burstier, 1 Poisson
    int num_requests = 0;     ///< kSynthetic/kClosedLoop: how many (0: until duration)
    /// (t_s, factor) from increasing times: from t_s on, requests arrive `factor` times as fast
    /// as rate_rps or the trace says (time is warped, so a trace's later requests come sooner).
    /// Before the first step the factor is 1.
    std::vector<std::pair<double, double>> rate_steps;
    LengthDistribution input = LengthDistribution::fixed(1024);
    LengthDistribution output = LengthDistribution::fixed(128);
    std::uint64_t seed = 0;
};

/// Reads an Azure LLM inference trace CSV (header `TIMESTAMP,ContextTokens,GeneratedTokens`).
/// Arrival times are relative to the first row. Errors name the file and line.
[[nodiscard]] Result<std::vector<Request>> load_azure_trace(const std::filesystem::path& path);

/// Reads a JSONL trace, one object per line: {"timestamp": ms, "input_length": n,
/// "output_length": m} (Mooncake's public format; other keys are ignored). Errors name the file
/// and line.
[[nodiscard]] Result<std::vector<Request>> load_jsonl_trace(const std::filesystem::path& path);

/// Builds the request list a spec describes, sorted by arrival time, ids 0..n-1.
[[nodiscard]] Result<std::vector<Request>> build_workload(const WorkloadSpec& spec);

}  // namespace pals::workload
