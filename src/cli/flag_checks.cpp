#include "cli/flag_checks.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
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

CLI::Validator one_of(std::vector<std::string> names) {
    std::string list = fmt::format("{}", fmt::join(names, ", "));
    return CLI::Validator(
        [names = std::move(names), list](std::string& text) -> std::string {
            if (std::find(names.begin(), names.end(), text) != names.end()) {
                return "";
            }
            return "'" + text + "' is not one of " + list;
        },
        "one of " + list);
}

CLI::Validator existing_file() {
    return CLI::Validator(
        [](std::string& text) -> std::string {
            std::error_code ec;
            const std::filesystem::file_status st = std::filesystem::status(text, ec);
            if (ec || !std::filesystem::exists(st)) {
                return "'" + text + "': no such file";
            }
            if (std::filesystem::is_directory(st)) {
                return "'" + text + "' is a directory, not a file";
            }
            return "";
        },
        "FILE");
}

CLI::Validator existing_dir() {
    return CLI::Validator(
        [](std::string& text) -> std::string {
            std::error_code ec;
            if (!std::filesystem::is_directory(text, ec)) {
                return "'" + text + "': no such directory";
            }
            return "";
        },
        "DIR");
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

}  // namespace pals::cli
