#pragma once
/// @file config_keys.hpp
/// @brief What every configuration reader shares about its keys: the flag and `PALS_*`
/// variable each key is also read from, and the "did you mean" hint for an unknown one.

#include <string>
#include <string_view>
#include <vector>

namespace pals {

/// "PALS_" + the key in upper case, '-' as '_' ("period_s" -> "PALS_PERIOD_S").
[[nodiscard]] std::string config_env_name(std::string_view key);

/// "--" + the key with '-' for '_' ("period_s" -> "--period-s").
[[nodiscard]] std::string config_flag_name(std::string_view key);

/// " (did you mean 'x'?)" for the known name closest to `unknown` (edit distance <= 2, or a
/// known name of 4+ characters that starts it: "budget_w" for "budget_watts"); "" otherwise.
[[nodiscard]] std::string did_you_mean(std::string_view unknown,
                                       const std::vector<std::string_view>& known);

}  // namespace pals
