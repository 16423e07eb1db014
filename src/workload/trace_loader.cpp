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

#include "pals/common/strings.hpp"
#include "pals/common/file_util.hpp"
#include "pals/workload/workload.hpp"

namespace pals::workload {

namespace {

constexpr std::string_view kAzureHeader = "TIMESTAMP,ContextTokens,GeneratedTokens";
constexpr std::int64_t kNanosPerSecond = 1'000'000'000;
constexpr double kSecondsPerNano = 1e-9;
constexpr double kSecondsPerMilli = 1e-3;

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

/// Parses "YYYY-MM-DD HH:MM:SS[.F...]" (up to 9 fraction digits; the Azure files have 7) into
/// nanoseconds since 1970-01-01 00:00:00. Date arithmetic is done here, not by a locale-dependent
/// parser, so day, month and year rollovers are exact.
bool parse_timestamp(std::string_view s, std::int64_t& nanos) {
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
        return false;
    }
    std::int64_t fraction_ns = 0;
    if (s.size() > 19) {
        const std::size_t digits = s.size() - 20;
        if (s[19] != '.' || digits == 0 || digits > 9) {
            return false;
        }
        int value = 0;
        if (!fixed_digits(s, 20, digits, value)) {
            return false;
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
        return false;
    }
    const std::int64_t days = std::chrono::sys_days{date}.time_since_epoch().count();
    const std::int64_t seconds = days * 86'400 + std::int64_t{hour} * 3'600 +
                                 std::int64_t{minute} * 60 + std::int64_t{second};
    nanos = seconds * kNanosPerSecond + fraction_ns;
    return true;
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

}  // namespace

Result<std::vector<Request>> load_azure_trace(const std::filesystem::path& path) {
    auto content = read_file(path);
    if (!content.is_ok()) {
        return content.status();
    }
    const std::string& text = content.value();
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
        if (!parse_timestamp(fields[0], ns)) {
            return line_error(
                path, cursor.number(),
                fmt::format("bad TIMESTAMP '{}' (expected YYYY-MM-DD HH:MM:SS.FFFFFFF)",
                            fields[0]));
        }
        Request r;
        if (auto err = parse_tokens(fields[1], "ContextTokens", r.input_tokens); !err.empty()) {
            return line_error(path, cursor.number(), err);
        }
        if (auto err = parse_tokens(fields[2], "GeneratedTokens", r.output_tokens); !err.empty()) {
            return line_error(path, cursor.number(), err);
        }
        r.input_tokens = clamp_to_one(r.input_tokens);
        r.output_tokens = clamp_to_one(r.output_tokens);
        if (requests.empty()) {
            first_ns = ns;
        } else if (ns < previous_ns) {
            return line_error(
                path, cursor.number(),
                fmt::format("TIMESTAMP '{}' is earlier than the previous row's", fields[0]));
        }
        previous_ns = ns;
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

/// Reads a non-negative integer field of a JSONL row; an empty string on success.
std::string json_tokens(const nlohmann::json& row, const char* key, int& out) {
    const auto it = row.find(key);
    if (it == row.end()) {
        return fmt::format("missing \"{}\"", key);
    }
    if (!it->is_number()) {
        return fmt::format("\"{}\" is not a number ({})", key, it->dump());
    }
    const double value = it->get<double>();
    if (it->is_number_float() && value != std::floor(value)) {
        return fmt::format("\"{}\" is not an integer ({})", key, it->dump());
    }
    if (value < 0.0) {
        return fmt::format("\"{}\" is negative ({})", key, it->dump());
    }
    if (value > static_cast<double>(INT_MAX)) {
        return fmt::format("\"{}\" is too large ({})", key, it->dump());
    }
    out = clamp_to_one(static_cast<int>(value));
    return {};
}

}  // namespace

Result<std::vector<Request>> load_jsonl_trace(const std::filesystem::path& path) {
    auto content = read_file(path);
    if (!content.is_ok()) {
        return content.status();
    }
    LineCursor cursor(content.value());
    std::string_view line;
    std::vector<Request> requests;
    std::vector<double> timestamps_ms;
    while (cursor.next(line)) {
        if (is_blank(line)) {
            continue;
        }
        nlohmann::json row;
        try {
            row = nlohmann::json::parse(line);
        } catch (const nlohmann::json::exception& e) {
            return line_error(path, cursor.number(), fmt::format("invalid JSON: {}", e.what()));
        }
        if (!row.is_object()) {
            return line_error(path, cursor.number(),
                              fmt::format("expected a JSON object, got {}", row.type_name()));
        }
        const auto ts = row.find("timestamp");
        if (ts == row.end()) {
            return line_error(path, cursor.number(), "missing \"timestamp\"");
        }
        if (!ts->is_number() || !std::isfinite(ts->get<double>())) {
            return line_error(path, cursor.number(),
                              fmt::format("\"timestamp\" is not a number ({})", ts->dump()));
        }
        Request r;
        if (auto err = json_tokens(row, "input_length", r.input_tokens); !err.empty()) {
            return line_error(path, cursor.number(), err);
        }
        if (auto err = json_tokens(row, "output_length", r.output_tokens); !err.empty()) {
            return line_error(path, cursor.number(), err);
        }
        timestamps_ms.push_back(ts->get<double>());
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
