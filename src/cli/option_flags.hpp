#pragma once
/// @file option_flags.hpp
/// @brief The command-line front end of an OptionTable (common/option_table.hpp): one flag per
/// option with its range as a CLI11 check, and after parsing the `PALS_*` variable of every
/// option not given as a flag (flag > environment > default).

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>

#include "cli/flag_checks.hpp"
#include "pals/common/option_table.hpp"

namespace pals::cli {

/// The CLI11 check of a range (none for an unbounded one).
[[nodiscard]] inline std::optional<CLI::Validator> range_check(const ValueRange& r, bool integer) {
    if (std::isinf(r.lo) && std::isinf(r.hi)) {
        return std::nullopt;
    }
    const std::string unit(r.unit);
    if (integer) {
        const auto lo =
            std::isinf(r.lo) ? std::numeric_limits<int>::min() : static_cast<std::int64_t>(r.lo);
        const auto hi =
            std::isinf(r.hi) ? std::numeric_limits<int>::max() : static_cast<std::int64_t>(r.hi);
        return integer_in(lo, hi, unit);
    }
    return r.lo_open ? finite_above(r.lo, r.hi, unit) : finite_in(r.lo, r.hi, unit);
}

/// Whether `key` is one of `skip` (the options a command does not use: no flag, no variable).
inline bool skipped(std::string_view key, const std::vector<std::string_view>& skip) {
    return std::find(skip.begin(), skip.end(), key) != skip.end();
}

/// Adds a flag for every option of `table` but those in `skip` to `app`, bound to the members
/// of `values`.
template <class C>
void add_option_flags(CLI::App& app, const OptionTable<C>& table, C& values,
                      const std::vector<std::string_view>& skip = {}) {
    for (const Option<C>& option : table) {
        if (skipped(option.key, skip)) {
            continue;
        }
        const std::string flag = option_flag(option);
        const std::string help(option.help);
        std::visit(
            [&](auto member) {
                using T = std::remove_reference_t<decltype(values.*member)>;
                if constexpr (std::is_same_v<T, bool>) {
                    const bool set_to = !option.flag_clears;
                    app.add_flag_callback(
                        flag, [&values, member, set_to] { values.*member = set_to; }, help);
                } else {
                    CLI::Option* o = app.add_option(flag, values.*member, help);
                    if constexpr (std::is_same_v<T, int> || std::is_same_v<T, double>) {
                        if (auto check = range_check(option.range, std::is_same_v<T, int>)) {
                            o->check(*check);
                        }
                    }
                    // Show defaults that say something (not "" or 0).
                    if constexpr (std::is_same_v<T, std::string>) {
                        if (!(values.*member).empty()) {
                            o->capture_default_str();
                        }
                    } else if constexpr (std::is_arithmetic_v<T>) {
                        if (values.*member != T{}) {
                            o->capture_default_str();
                        }
                    }
                }
            },
            option.member);
    }
}

/// After parsing: the origins of `values` (each given flag; defaults named by their flag), and
/// the `PALS_*` variable of every option whose flag was not given applied to `values`.
template <class C>
[[nodiscard]] Result<OptionOrigins> apply_option_sources(
    const CLI::App& app, const OptionTable<C>& table, C& values,
    const std::vector<std::string_view>& skip = {}) {
    OptionOrigins origins;
    origins.fallback = [&table](std::string_view key) {
        const Option<C>* option = find_option(table, key);
        return option != nullptr ? option_flag(*option) : std::string(key);
    };
    origins.label = origins.fallback;
    for (const Option<C>& option : table) {
        if (skipped(option.key, skip)) {
            continue;
        }
        const std::string flag = option_flag(option);
        if (app.count(flag) > 0) {
            origins.given[std::string(option.key)] = flag;
            continue;
        }
        const std::string name = option_env(option);
        const char* value = std::getenv(name.c_str());
        if (value == nullptr || *value == '\0') {
            continue;
        }
        if (Status s = set_option_from_text(values, option, value); !s.is_ok()) {
            return s.with_prefix(name);
        }
        origins.given[std::string(option.key)] = name;
    }
    return origins;
}

}  // namespace pals::cli
