#pragma once
/// @file prometheus_text.hpp
/// @brief A parser of the Prometheus text exposition format 0.0.4 (what vLLM's /metrics serves)
/// into typed samples. It accepts `# HELP` / `# TYPE` lines, other comments, blank lines,
/// escaped label values, optional timestamps and every float spelling prometheus_client writes
/// (`3.0`, `1.5e-05`, `NaN`, `+Inf`, `-Inf`). It never throws: malformed text returns
/// kInvalidArgument naming the line number and what is wrong.
///
/// Thread-safety: free functions over value types; safe to call from any thread.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pals/common/status.hpp"

namespace pals::engine::vllm {

/// A metric family's declared type (`# TYPE name <type>`); kUntyped when undeclared.
enum class MetricType { kUntyped, kCounter, kGauge, kHistogram, kSummary };

/// One `name="value"` pair; `value` is unescaped.
struct Label {
    std::string name;
    std::string value;
    bool operator==(const Label&) const = default;
};

/// One sample line: `name{labels} value [timestamp_ms]`.
struct Sample {
    std::string name;
    std::vector<Label> labels;  ///< in the order written (the format does not sort them)
    double value = 0.0;
    std::optional<std::int64_t> timestamp_ms;  ///< milliseconds since the Unix epoch

    /// The value of label `label_name`, or nullptr if the sample has no such label.
    [[nodiscard]] const std::string* label(std::string_view label_name) const;
};

/// A whole exposition: samples in text order plus the HELP and TYPE lines by family name.
struct ParsedMetrics {
    std::vector<Sample> samples;
    std::map<std::string, MetricType, std::less<>> types;
    std::map<std::string, std::string, std::less<>> help;  ///< unescaped docstrings

    /// The declared type of family `family` (kUntyped if it has no TYPE line).
    [[nodiscard]] MetricType type_of(std::string_view family) const;
};

/// Parses a whole exposition. Errors: kInvalidArgument "line N: <what is wrong>".
[[nodiscard]] Result<ParsedMetrics> parse_prometheus_text(std::string_view text);

/// Parses one Prometheus float: decimal or scientific, `NaN`, `+Inf`, `-Inf` (case-insensitive,
/// as Go's strconv.ParseFloat). The whole token must be a number. Errors: kInvalidArgument.
[[nodiscard]] Result<double> parse_prometheus_float(std::string_view token);

}  // namespace pals::engine::vllm
