#pragma once
/// @file flag_checks.hpp
/// @brief The one validation of numeric flags: every number a command accepts is finite and
/// within a documented range (NaN and inf fail, as do values that would overflow the counts and
/// sizes computed from them). CLI11 check()s for fixed ranges (the parse error names the flag and
/// exits 2); check_range() for ranges known only after parsing (a GPU's power-limit range).

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "pals/common/limits.hpp"
#include "pals/common/option_table.hpp"
#include "pals/common/status.hpp"

namespace pals::cli {

/// A CLI11 check: the text is a finite number in [lo, hi]. The message reads
/// "nan is not a finite number" or "5000 W is outside 100-700 W".
[[nodiscard]] CLI::Validator finite_in(double lo, double hi, const std::string& unit = "");
/// As finite_in, but the range excludes lo: (lo, hi].
[[nodiscard]] CLI::Validator finite_above(double lo, double hi, const std::string& unit = "");
/// A CLI11 check: the text is an integer in [lo, hi].
[[nodiscard]] CLI::Validator integer_in(std::int64_t lo, std::int64_t hi,
                                        const std::string& unit = "");

/// A CLI11 check: the text is one of `names` ("'loud' is not one of trace, debug, ...").
[[nodiscard]] CLI::Validator one_of(std::vector<std::string> names);
/// A CLI11 check: the text names an existing regular file ("'x.toml': no such file",
/// "'adir' is a directory, not a file").
[[nodiscard]] CLI::Validator existing_file();
/// A CLI11 check: the text names an existing directory ("'x': no such directory").
[[nodiscard]] CLI::Validator existing_dir();

/// Post-parse: `value` finite and within [lo, hi]; else out_of_range "FLAG: 100 W is outside
/// 200-700 W for WHAT" (", for WHAT" only when `what` is not empty).
[[nodiscard]] Status check_range(std::string_view flag, double value, double lo, double hi,
                                 std::string_view unit, std::string_view what = "");

}  // namespace pals::cli
