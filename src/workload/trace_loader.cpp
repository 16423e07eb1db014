/// @file trace_loader.cpp
/// @brief Readers for request traces: the Azure LLM inference CSV and Mooncake-style JSONL.

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "pals/common/file_util.hpp"
#include "pals/common/json.hpp"
#include "pals/common/strings.hpp"
#include "pals/workload/workload.hpp"

namespace pals::workload {

namespace {

constexpr std::string_view kAzureHeader = "TIMESTAMP,ContextTokens,GeneratedTokens";
constexpr std::int64_t kNanosPerSecond = 1'000'000'000;
constexpr double kSecondsPerNano = 1e-9;
constexpr double kSecondsPerMilli = 1e-3;
/// Azure TIMESTAMPs are accepted from the Unix epoch up to the last instant whose nanoseconds
/// since 1970 fit a signed 64-bit integer (2262-04-11 23:47:16.854775807), so a timestamp and
/// the difference of two of them never overflow. docs/formats.md states the same range.
constexpr int kAzureFirstYear = 1970;
constexpr int kAzureLastYear = 2262;
constexpr std::string_view kAzureRange = "1970-01-01 00:00:00 .. 2262-04-11 23:47:16.854775807";
/// JSONL timestamps (milliseconds) are accepted within +-1e15 ms (about 31,700 years), so the
/// arrival times derived from them are finite and exact to well under a millisecond.
constexpr double kMaxJsonlTimestampMs = 1e15;
/// Longest JSON text quoted in an error message.
constexpr std::size_t kMaxQuotedJsonBytes = 80;

/// Walks a buffer line by line, accepting "\n" and "\r\n" endings and a last line without one.
class LineCursor {
public:
    explicit LineCursor(std::string_view text) : m_rest(text) {
        // A UTF-8 byte-order mark is not part of the first line.
        if (m_rest.substr(0, 3) == "\xEF\xBB\xBF") {
            m_rest.remove_prefix(3);
        }
    }

    /// Sets `line` to the next line (without its ending) and returns true, or false at the end.
    bool next(std::string_view& line) {
        if (m_done) {
            return false;
        }
        const void* nl = std::memchr(m_rest.data(), '\n', m_rest.size());
        if (nl == nullptr) {
            line = m_rest;
            m_done = true;
            if (line.empty()) {
                return false;  // the text ended with a newline: no further line
            }
        } else {
            const auto length =
                static_cast<std::size_t>(static_cast<const char*>(nl) - m_rest.data());
            line = m_rest.substr(0, length);
            m_rest.remove_prefix(length + 1);
        }
        if (!line.empty() && line.back() == '\r') {
            line.remove_suffix(1);
        }
        ++m_number;
        return true;
    }

    /// 1-based number of the line last returned.
    [[nodiscard]] std::size_t number() const { return m_number; }

private:
    std::string_view m_rest;
    std::size_t m_number = 0;
    bool m_done = false;
};

bool is_blank(std::string_view s) {
    return trim(s).empty();
}

/// Parses exactly `width` decimal digits at `s[pos]`.
bool fixed_digits(std::string_view s, std::size_t pos, std::size_t width, int& out) {
    if (pos + width > s.size()) {
        return false;
    }
    int value = 0;
    for (std::size_t i = pos; i < pos + width; ++i) {
        const char c = s[i];
        if (c < '0' || c > '9') {
            return false;
        }
        value = value * 10 + (c - '0');
    }
    out = value;
    return true;
}

enum class TimestampError { kNone, kSyntax, kRange };

/// Parses "YYYY-MM-DD HH:MM:SS[.F...]" (up to 9 fraction digits; the Azure files have 7) into
/// nanoseconds since 1970-01-01 00:00:00. Date arithmetic is done here, not by a locale-dependent
/// parser, so day, month and year rollovers are exact. Times outside kAzureRange are kRange; the
/// arithmetic is checked, so no input can overflow.
TimestampError parse_timestamp(std::string_view s, std::int64_t& nanos) {
    int year = 0;
    int month = 0;
    int day = 0;
    int hour = 0;
    int minute = 0;
    int second = 0;
    if (s.size() < 19 || !fixed_digits(s, 0, 4, year) || s[4] != '-' ||
        !fixed_digits(s, 5, 2, month) || s[7] != '-' || !fixed_digits(s, 8, 2, day) ||
        (s[10] != ' ' && s[10] != 'T') || !fixed_digits(s, 11, 2, hour) || s[13] != ':' ||
        !fixed_digits(s, 14, 2, minute) || s[16] != ':' || !fixed_digits(s, 17, 2, second)) {
        return TimestampError::kSyntax;
    }
    std::int64_t fraction_ns = 0;
    if (s.size() > 19) {
        const std::size_t digits = s.size() - 20;
        if (s[19] != '.' || digits == 0 || digits > 9) {
            return TimestampError::kSyntax;
        }
        int value = 0;
        if (!fixed_digits(s, 20, digits, value)) {
            return TimestampError::kSyntax;
        }
        fraction_ns = value;
        for (std::size_t i = digits; i < 9; ++i) {
            fraction_ns *= 10;
        }
    }
    const std::chrono::year_month_day date{std::chrono::year{year},
                                           std::chrono::month{static_cast<unsigned>(month)},
                                           std::chrono::day{static_cast<unsigned>(day)}};
    if (!date.ok() || hour > 23 || minute > 59 || second > 59) {
        return TimestampError::kSyntax;
    }
    if (year < kAzureFirstYear || year > kAzureLastYear) {
        return TimestampError::kRange;
    }
    const std::int64_t days = std::chrono::sys_days{date}.time_since_epoch().count();
    const std::int64_t seconds = days * 86'400 + std::int64_t{hour} * 3'600 +
                                 std::int64_t{minute} * 60 + std::int64_t{second};
    std::int64_t whole_ns = 0;
    if (seconds < 0 || __builtin_mul_overflow(seconds, kNanosPerSecond, &whole_ns) ||
        __builtin_add_overflow(whole_ns, fraction_ns, &nanos)) {
        return TimestampError::kRange;
    }
    return TimestampError::kNone;
}

/// Parses a token count: a non-negative decimal integer that fits an int.
/// Returns an empty string on success, else what is wrong.
std::string parse_tokens(std::string_view field, std::string_view name, int& out) {
    long long value = 0;
    const char* first = field.data();
    const char* last = field.data() + field.size();
    const auto [ptr, ec] = std::from_chars(first, last, value);
    if (field.empty() || ptr != last || ec == std::errc::invalid_argument) {
        return fmt::format("{} '{}' is not an integer", name, field);
    }
    if (ec == std::errc::result_out_of_range || value > INT_MAX) {
        return fmt::format("{} '{}' is too large", name, field);
    }
    if (value < 0) {
        return fmt::format("{} is negative ({})", name, value);
    }
    out = static_cast<int>(value);
    return {};
}

/// A zero-length prompt or output cannot be served (every request prefills at least one token
/// and generates at least one), so trace rows with 0 are clamped to 1 rather than rejected.
int clamp_to_one(int tokens) {
    return std::max(tokens, 1);
}

Status line_error(const std::filesystem::path& path, std::size_t line, std::string_view what) {
    return Status::invalid_argument(fmt::format("{}:{}: {}", path.string(), line, what));
}

/// An error at a 1-based column of a line (file:line:column: what).
Status column_error(const std::filesystem::path& path, std::size_t line, std::size_t column,
                    std::string_view what) {
    return Status::invalid_argument(fmt::format("{}:{}:{}: {}", path.string(), line, column, what));
}

/// 1-based column of `field` (a view into `line`).
std::size_t column_of(std::string_view line, std::string_view field) {
    return static_cast<std::size_t>(field.data() - line.data()) + 1;
}

}  // namespace

Result<std::vector<Request>> load_azure_trace(const std::filesystem::path& path) {
    PALS_ASSIGN_OR_RETURN(auto content, read_file(path));
    const std::string& text = content;
    LineCursor cursor(text);
    std::string_view line;
    if (!cursor.next(line)) {
        return Status::invalid_argument(
            fmt::format("{}: empty file, expected the header '{}'", path.string(), kAzureHeader));
    }
    if (trim(line) != kAzureHeader) {
        return line_error(path, cursor.number(),
                          fmt::format("expected the header '{}', got '{}'", kAzureHeader, line));
    }

    std::vector<Request> requests;
    // About 37 bytes a row in the Azure files; reserving avoids most reallocations.
    requests.reserve(text.size() / 32);
    std::int64_t first_ns = 0;
    std::int64_t previous_ns = 0;
    std::size_t previous_line = 0;
    while (cursor.next(line)) {
        if (is_blank(line)) {
            continue;
        }
        std::string_view fields[3];
        std::size_t count = 0;
        std::string_view rest = line;
        while (true) {
            const auto comma = rest.find(',');
            if (count < 3) {
                fields[count] = trim(rest.substr(0, comma));
            }
            ++count;
            if (comma == std::string_view::npos) {
                break;
            }
            rest.remove_prefix(comma + 1);
        }
        if (count != 3) {
            return line_error(path, cursor.number(),
                              fmt::format("expected 3 fields (TIMESTAMP,ContextTokens,"
                                          "GeneratedTokens), got {}",
                                          count));
        }
        std::int64_t ns = 0;
        const std::size_t ts_column = column_of(line, fields[0]);
        switch (parse_timestamp(fields[0], ns)) {
            case TimestampError::kNone:
                break;
            case TimestampError::kSyntax:
                return column_error(
                    path, cursor.number(), ts_column,
                    fmt::format("bad TIMESTAMP '{}' (expected YYYY-MM-DD HH:MM:SS.FFFFFFF)",
                                fields[0]));
            case TimestampError::kRange:
                return column_error(path, cursor.number(), ts_column,
                                    fmt::format("TIMESTAMP '{}' is outside the accepted range {}",
                                                fields[0], kAzureRange));
        }
        Request r;
        if (auto err = parse_tokens(fields[1], "ContextTokens", r.input_tokens); !err.empty()) {
            return column_error(path, cursor.number(), column_of(line, fields[1]), err);
        }
        if (auto err = parse_tokens(fields[2], "GeneratedTokens", r.output_tokens); !err.empty()) {
            return column_error(path, cursor.number(), column_of(line, fields[2]), err);
        }
        r.input_tokens = clamp_to_one(r.input_tokens);
        r.output_tokens = clamp_to_one(r.output_tokens);
        // Azure traces are sorted by TIMESTAMP; an earlier row means a damaged or hand-edited
        // file, refused rather than reordered (docs/formats.md).
        if (requests.empty()) {
            first_ns = ns;
        } else if (ns < previous_ns) {
            return column_error(
                path, cursor.number(), ts_column,
                fmt::format("TIMESTAMP '{}' is earlier than the previous row's (line {}); rows "
                            "must be sorted by TIMESTAMP",
                            fields[0], previous_line));
        }
        previous_ns = ns;
        previous_line = cursor.number();
        r.id = requests.size();
        r.arrival_s = static_cast<double>(ns - first_ns) * kSecondsPerNano;
        requests.push_back(r);
    }
    if (requests.empty()) {
        return Status::invalid_argument(
            fmt::format("{}: no requests after the header", path.string()));
    }
    return requests;
}

namespace {

/// `value` as JSON text for an error message, shortened to kMaxQuotedJsonBytes.
std::string quoted(const nlohmann::json& value) {
    std::string text = value.dump();
    if (text.size() > kMaxQuotedJsonBytes) {
        text.resize(kMaxQuotedJsonBytes);
        text += "...";
    }
    return text;
}

/// Reads a non-negative integer field of a JSONL row; an empty string on success.
std::string json_tokens(const nlohmann::json& row, const char* key, int& out) {
    const auto it = row.find(key);
    if (it == row.end()) {
        return fmt::format("missing \"{}\"", key);
    }
    if (!it->is_number()) {
        return fmt::format("\"{}\" is not a number ({})", key, quoted(*it));
    }
    const double value = it->get<double>();
    if (!std::isfinite(value)) {
        return fmt::format("\"{}\" is not finite ({})", key, quoted(*it));
    }
    if (it->is_number_float() && value != std::floor(value)) {
        return fmt::format("\"{}\" is not an integer ({})", key, quoted(*it));
    }
    if (value < 0.0) {
        return fmt::format("\"{}\" is negative ({})", key, quoted(*it));
    }
    if (value > static_cast<double>(INT_MAX)) {
        return fmt::format("\"{}\" is too large ({})", key, quoted(*it));
    }
    out = clamp_to_one(static_cast<int>(value));
    return {};
}

}  // namespace

Result<std::vector<Request>> load_jsonl_trace(const std::filesystem::path& path) {
    PALS_ASSIGN_OR_RETURN(auto content, read_file(path));
    LineCursor cursor(content);
    std::string_view line;
    std::vector<Request> requests;
    std::vector<double> timestamps_ms;
    while (cursor.next(line)) {
        if (is_blank(line)) {
            continue;
        }
        PALS_ASSIGN_OR_RETURN(
            nlohmann::json parsed,
            parse_json(line, fmt::format("{}:{}", path.string(), cursor.number())));
        const nlohmann::json row = std::move(parsed);
        if (!row.is_object()) {
            return line_error(path, cursor.number(),
                              fmt::format("expected a JSON object, got {}", row.type_name()));
        }
        const auto ts = row.find("timestamp");
        if (ts == row.end()) {
            return line_error(path, cursor.number(), "missing \"timestamp\"");
        }
        if (!ts->is_number()) {
            return line_error(path, cursor.number(),
                              fmt::format("\"timestamp\" is not a number ({})", quoted(*ts)));
        }
        const double timestamp_ms = ts->get<double>();
        if (!std::isfinite(timestamp_ms) || std::fabs(timestamp_ms) > kMaxJsonlTimestampMs) {
            return line_error(path, cursor.number(),
                              fmt::format("\"timestamp\" {} ms is outside the accepted range "
                                          "[-{:g}, {:g}] ms",
                                          quoted(*ts), kMaxJsonlTimestampMs, kMaxJsonlTimestampMs));
        }
        Request r;
        if (auto err = json_tokens(row, "input_length", r.input_tokens); !err.empty()) {
            return line_error(path, cursor.number(), err);
        }
        if (auto err = json_tokens(row, "output_length", r.output_tokens); !err.empty()) {
            return line_error(path, cursor.number(), err);
        }
        timestamps_ms.push_back(timestamp_ms);
        requests.push_back(r);
    }
    if (requests.empty()) {
        return Status::invalid_argument(fmt::format("{}: no requests", path.string()));
    }
    // Arrivals are relative to the earliest row, the first one in a sorted trace. Public Mooncake
    // traces are sorted; a row out of order is moved into place (a stable sort) rather than
    // rejected.
    const double first_ms = *std::min_element(timestamps_ms.begin(), timestamps_ms.end());
    for (std::size_t i = 0; i < requests.size(); ++i) {
        requests[i].arrival_s = (timestamps_ms[i] - first_ms) * kSecondsPerMilli;
    }
    std::stable_sort(requests.begin(), requests.end(),
                     [](const Request& a, const Request& b) { return a.arrival_s < b.arrival_s; });
    for (std::size_t i = 0; i < requests.size(); ++i) {
        requests[i].id = i;
    }
    return requests;
}

}  // namespace pals::workload
