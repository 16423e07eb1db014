#pragma once
/// @file strings.hpp
/// @brief Small text helpers shared by the parsers (traces, flags, SSE, configs).

#include <string>
#include <string_view>
#include <vector>

#include "pals/common/status.hpp"

namespace pals {

/// `s` without leading and trailing spaces, tabs, carriage returns and newlines.
[[nodiscard]] inline std::string_view trim(std::string_view s) {
    const auto first = s.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos) {
        return {};
    }
    return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
}

/// The pieces of `s` between `separator`s, as written (an empty `s` gives one empty piece).
[[nodiscard]] std::vector<std::string> split(std::string_view s, char separator);

/// A finite decimal number, surrounding blanks allowed. Errors: "must be a number, got '...'".
[[nodiscard]] Result<double> parse_number(std::string_view text);

/// A decimal integer that fits an int, surrounding blanks allowed. Errors: "must be an integer,
/// got '...'".
[[nodiscard]] Result<int> parse_integer(std::string_view text);

}  // namespace pals
