#pragma once
/// @file strings.hpp
/// @brief Small text helpers shared by the parsers (traces, flags, SSE, configs).

#include <string_view>

namespace pals {

/// `s` without leading and trailing spaces, tabs, carriage returns and newlines.
[[nodiscard]] inline std::string_view trim(std::string_view s) {
    const auto first = s.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos) {
        return {};
    }
    return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
}

}  // namespace pals
