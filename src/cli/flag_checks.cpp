#include "cli/flag_checks.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>

namespace pals::cli {

namespace {

/// Parses all of `text` as a double (strtod accepts "nan" and "inf"; the callers reject them).
bool parse_double(const std::string& text, double& out) {
    if (text.empty()) {
        return false;
    }
    char* end = nullptr;
    errno = 0;
    out = std::strtod(text.c_str(), &end);
    if (end != text.c_str() + text.size()) {
        return false;
    }
    if (errno == ERANGE && std::isinf(out)) {
        out = std::numeric_limits<double>::infinity();
    }
    return true;
}

std::string range_text(double lo, double hi, std::string_view unit) {
    const std::string suffix = unit.empty() ? "" : " " + std::string(unit);
    if (hi == std::numeric_limits<double>::infinity()) {
        return fmt::format(">= {:g}{}", lo, suffix);
    }
    return fmt::format("{:g}-{:g}{}", lo, hi, suffix);
}

/// Parses `text` into `v`; returns why it is not a finite number ("" when it is).
std::string parse_finite(const std::string& text, double& v) {
    if (!parse_double(text, v)) {
        return "'" + text + "' is not a number";
    }
    if (!std::isfinite(v)) {
        return "'" + text + "' is not a finite number";
    }
    return "";
}

}  // namespace

std::string format_quantity(double value, std::string_view unit) {
    if (unit.empty()) {
        return fmt::format("{:g}", value);
    }
    return fmt::format("{:g} {}", value, unit);
}

CLI::Validator finite_in(double lo, double hi, const std::string& unit) {
    return CLI::Validator(
        [lo, hi, unit](std::string& text) -> std::string {
            double v = 0.0;
            if (std::string error = parse_finite(text, v); !error.empty()) {
                return error;
            }
            if (!(v >= lo && v <= hi)) {
                return format_quantity(v, unit) + " is outside " + range_text(lo, hi, unit);
            }
            return "";
        },
        "in " + range_text(lo, hi, unit));
}

CLI::Validator finite_above(double lo, double hi, const std::string& unit) {
    return CLI::Validator(
        [lo, hi, unit](std::string& text) -> std::string {
            double v = 0.0;
            if (std::string error = parse_finite(text, v); !error.empty()) {
                return error;
            }
            if (!(v > lo && v <= hi)) {
                return format_quantity(v, unit) + " must be > " + format_quantity(lo, unit) +
                       (hi == std::numeric_limits<double>::infinity()
                            ? std::string()
                            : " and <= " + format_quantity(hi, unit));
            }
            return "";
        },
        "> " + format_quantity(lo, unit));
}

CLI::Validator integer_in(std::int64_t lo, std::int64_t hi, const std::string& unit) {
    return CLI::Validator(
        [lo, hi, unit](std::string& text) -> std::string {
            if (text.empty()) {
                return "'' is not an integer";
            }
            char* end = nullptr;
            errno = 0;
            const long long v = std::strtoll(text.c_str(), &end, 10);
            if (end != text.c_str() + text.size()) {
                return "'" + text + "' is not an integer";
            }
            if (errno == ERANGE || v < lo || v > hi) {
                const std::string suffix = unit.empty() ? "" : " " + unit;
                return "'" + text + "'" + suffix + " is outside " + fmt::format("{}-{}", lo, hi) +
                       suffix;
            }
            return "";
        },
        fmt::format("in {}-{}", lo, hi));
}

Status check_range(std::string_view flag, double value, double lo, double hi, std::string_view unit,
                   std::string_view what) {
    if (!std::isfinite(value)) {
        return Status::invalid_argument(fmt::format("{}: {} is not a finite number", flag, value));
    }
    if (value >= lo && value <= hi) {
        return Status::ok();
    }
    std::string msg = fmt::format("{}: {} is outside {}", flag, format_quantity(value, unit),
                                  range_text(lo, hi, unit));
    if (!what.empty()) {
        msg += fmt::format(" for {}", what);
    }
    return Status::out_of_range(std::move(msg));
}

Status check_length_text(std::string_view flag, std::string_view text) {
    // Only the inline forms: N, fixed:N, uniform:LO:HI. Anything with a letter other than the
    // prefixes is a file name (histogram) and bounded by its parser.
    std::string_view rest = text;
    if (rest.starts_with("fixed:")) {
        rest.remove_prefix(6);
    } else if (rest.starts_with("uniform:")) {
        rest.remove_prefix(8);
    }
    for (char c : rest) {
        if (!(c == ':' || c == ' ' || (c >= '0' && c <= '9'))) {
            return Status::ok();
        }
    }
    std::size_t i = 0;
    while (i < rest.size()) {
        if (rest[i] < '0' || rest[i] > '9') {
            ++i;
            continue;
        }
        std::size_t j = i;
        while (j < rest.size() && rest[j] >= '0' && rest[j] <= '9') {
            ++j;
        }
        const std::string_view digits = rest.substr(i, j - i);
        std::size_t first = digits.find_first_not_of('0');
        const bool too_long = first != std::string_view::npos && digits.size() - first > 9;
        if (too_long || std::stoll(std::string(digits)) > kMaxTokens) {
            return Status::out_of_range(fmt::format("{}: {} tokens is more than the limit of {}",
                                                    flag, digits, kMaxTokens));
        }
        i = j;
    }
    return Status::ok();
}

}  // namespace pals::cli
