#pragma once
/// @file option_table.hpp
/// @brief Options declared once and read by every front end: a TOML table, `PALS_*`
/// environment variables and command-line flags (as llama.cpp's common/arg.cpp declares each
/// option with its flag and variable). A configuration type `C` lists its options in one
/// OptionTable<C>: key, flag, help, the member it sets and the range of its value. Reading, range
/// checks, printing and "did you mean" are written here once; `C`'s own validate() checks what
/// crosses keys.
///
/// Thread-safety: tables are immutable after construction; the functions are pure.

#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "pals/common/config_keys.hpp"
#include "pals/common/status.hpp"
#include "pals/common/strings.hpp"
#include "pals/common/toml_values.hpp"

namespace pals {

/// The range a number (or each index of an index list) must lie in.
struct ValueRange {
    double lo = -std::numeric_limits<double>::infinity();
    double hi = std::numeric_limits<double>::infinity();
    bool lo_open = false;     ///< (lo, hi] instead of [lo, hi]
    std::string_view unit{};  ///< "W", "s", ... ("" = none)
};

/// "100 W", "0.5", "1000000000 s": a number as people write it (whole numbers in full), with
/// the unit if any.
[[nodiscard]] std::string format_quantity(double value, std::string_view unit);

/// kOutOfRange without prefix when `value` is outside `range`: "must be 100-700 W (got 5000 W)",
/// "must be > 0 s (got 0 s)"; kInvalidArgument for NaN and infinities.
[[nodiscard]] Status check_value_range(double value, const ValueRange& range);

template <class C>
using OptionMember = std::variant<std::string C::*, double C::*, int C::*, bool C::*,
                                  std::uint64_t C::*, std::vector<int> C::*>;

/// One option of configuration type `C`.
template <class C>
struct Option {
    std::string_view key{};   ///< TOML key ("max_num_seqs")
    std::string_view flag{};  ///< command-line flag; "" = config_flag_name(key)
    std::string_view help{};  ///< one line, for --help and docs
    OptionMember<C> member{};
    ValueRange range{};            ///< numbers and index lists
    bool in_file = true;           ///< false: a flag and variable only (not a file key)
    bool integer_as_text = false;  ///< a string option that a TOML integer may also give
    bool flag_clears = false;      ///< a boolean whose flag sets it false ("--no-chunked-prefill")
};

template <class C>
using OptionTable = std::vector<Option<C>>;

/// The flag of an option ("--max-num-seqs").
template <class C>
[[nodiscard]] std::string option_flag(const Option<C>& option) {
    return option.flag.empty() ? config_flag_name(option.key) : std::string(option.flag);
}

/// The environment variable of an option: "PALS_" + its flag in upper case ("--max-num-seqs"
/// -> "PALS_MAX_NUM_SEQS").
template <class C>
[[nodiscard]] std::string option_env(const Option<C>& option) {
    return config_env_name(std::string_view(option_flag(option)).substr(2));
}

template <class C>
[[nodiscard]] const Option<C>* find_option(const OptionTable<C>& table, std::string_view key) {
    for (const Option<C>& option : table) {
        if (option.key == key) {
            return &option;
        }
    }
    return nullptr;
}

/// Where each key's value came from, as an error prefix: "pals.toml:3:1: budget_w", "--tp",
/// "PALS_TP". Keys not given get fallback(key) ("scenario.toml: node.tp", "--tp").
struct OptionOrigins {
    std::map<std::string, std::string, std::less<>> given{};
    std::function<std::string(std::string_view key)> fallback{};
    /// How the front end names a key in a message ("--trace", "workload.trace"; default: the
    /// key itself).
    std::function<std::string(std::string_view key)> label{};
    /// Prefix of errors no single key is at fault for ("scenario.toml: workload"; "" = none).
    std::string context{};

    [[nodiscard]] std::string of(std::string_view key) const {
        if (auto it = given.find(key); it != given.end()) {
            return it->second;
        }
        return fallback ? fallback(key) : std::string(key) + " (default)";
    }
    [[nodiscard]] bool was_given(std::string_view key) const { return given.count(key) != 0U; }
    [[nodiscard]] std::string name(std::string_view key) const {
        return label ? label(key) : std::string(key);
    }
    /// kInvalidArgument "<context>: what".
    [[nodiscard]] Status context_error(const std::string& what) const {
        return Status::invalid_argument(context.empty() ? what : context + ": " + what);
    }
    /// kInvalidArgument "<origin of key>: what".
    [[nodiscard]] Status error(std::string_view key, const std::string& what) const {
        return Status::invalid_argument(of(key) + ": " + what);
    }
};

namespace option_detail {
Result<bool> parse_bool(std::string_view text);
Result<std::uint64_t> parse_uint64(std::string_view text);
Result<std::vector<int>> parse_index_list(std::string_view text, const ValueRange& range);
Result<std::vector<int>> toml_index_list(const toml::node& node, const ValueRange& range);
std::string quote(std::string_view text);
std::string toml_number(double value);
}  // namespace option_detail

/// Sets an option from text (a flag or variable). Errors without prefix.
template <class C>
[[nodiscard]] Status set_option_from_text(C& config, const Option<C>& option,
                                          std::string_view text) {
    return std::visit(
        [&](auto member) -> Status {
            using T = std::remove_reference_t<decltype(config.*member)>;
            if constexpr (std::is_same_v<T, std::string>) {
                config.*member = std::string(text);
            } else if constexpr (std::is_same_v<T, double>) {
                PALS_ASSIGN_OR_RETURN(const double v, parse_number(text));
                PALS_RETURN_IF_ERROR(check_value_range(v, option.range));
                config.*member = v;
            } else if constexpr (std::is_same_v<T, int>) {
                PALS_ASSIGN_OR_RETURN(const int v, parse_integer(text));
                PALS_RETURN_IF_ERROR(check_value_range(v, option.range));
                config.*member = v;
            } else if constexpr (std::is_same_v<T, bool>) {
                PALS_ASSIGN_OR_RETURN(const bool v, option_detail::parse_bool(text));
                config.*member = option.flag_clears ? !v : v;
            } else if constexpr (std::is_same_v<T, std::uint64_t>) {
                PALS_ASSIGN_OR_RETURN(config.*member, option_detail::parse_uint64(text));
            } else {
                PALS_ASSIGN_OR_RETURN(config.*member,
                                      option_detail::parse_index_list(text, option.range));
            }
            return Status::ok();
        },
        option.member);
}

/// Sets an option from a TOML value. Errors without prefix.
template <class C>
[[nodiscard]] Status set_option_from_toml(C& config, const Option<C>& option,
                                          const toml::node& node) {
    return std::visit(
        [&](auto member) -> Status {
            using T = std::remove_reference_t<decltype(config.*member)>;
            if constexpr (std::is_same_v<T, std::string>) {
                if (option.integer_as_text) {
                    if (auto i = node.value_exact<std::int64_t>()) {
                        config.*member = std::to_string(*i);
                        return Status::ok();
                    }
                }
                PALS_ASSIGN_OR_RETURN(config.*member, toml_value<std::string>(node));
            } else if constexpr (std::is_same_v<T, bool>) {
                auto v = node.value_exact<bool>();
                if (!v) {
                    return Status::invalid_argument(std::string("must be true or false, not ") +
                                                    toml_type_name(node));
                }
                config.*member = *v;
            } else if constexpr (std::is_same_v<T, std::vector<int>>) {
                PALS_ASSIGN_OR_RETURN(config.*member,
                                      option_detail::toml_index_list(node, option.range));
            } else {
                PALS_ASSIGN_OR_RETURN(const T v, toml_value<T>(node));
                if constexpr (!std::is_same_v<T, std::uint64_t>) {
                    PALS_RETURN_IF_ERROR(check_value_range(static_cast<double>(v), option.range));
                }
                config.*member = v;
            }
            return Status::ok();
        },
        option.member);
}

/// The option's value as TOML (`toml` true) or JSON text.
template <class C>
[[nodiscard]] std::string option_value_text(const C& config, const Option<C>& option, bool toml) {
    return std::visit(
        [&](auto member) -> std::string {
            using T = std::remove_cvref_t<decltype(config.*member)>;
            const T& v = config.*member;
            if constexpr (std::is_same_v<T, std::string>) {
                return option_detail::quote(v);
            } else if constexpr (std::is_same_v<T, double>) {
                return toml ? option_detail::toml_number(v) : fmt::format("{}", v);
            } else if constexpr (std::is_same_v<T, bool>) {
                return v ? "true" : "false";
            } else if constexpr (std::is_same_v<T, std::vector<int>>) {
                return fmt::format("[{}]", fmt::join(v, ", "));
            } else {
                return std::to_string(v);
            }
        },
        option.member);
}

/// Every number of `config` within its option's range (values set past the front ends, such as
/// by code, are checked too); the error starts with the key's origin.
template <class C>
[[nodiscard]] Status check_option_ranges(const C& config, const OptionTable<C>& options,
                                         const OptionOrigins& origins) {
    for (const Option<C>& option : options) {
        Status s = std::visit(
            [&](auto member) -> Status {
                using T = std::remove_cvref_t<decltype(config.*member)>;
                if constexpr (std::is_same_v<T, int> || std::is_same_v<T, double>) {
                    return check_value_range(static_cast<double>(config.*member), option.range);
                } else {
                    return Status::ok();
                }
            },
            option.member);
        if (!s.is_ok()) {
            return s.with_prefix(origins.of(option.key));
        }
    }
    return Status::ok();
}

/// The keys of a table (file keys only when `file_only`).
template <class C>
[[nodiscard]] std::vector<std::string_view> option_keys(const OptionTable<C>& table,
                                                        bool file_only = false) {
    std::vector<std::string_view> keys;
    for (const Option<C>& option : table) {
        if (!file_only || option.in_file) {
            keys.push_back(option.key);
        }
    }
    return keys;
}

/// kInvalidArgument "WHERE: unknown key 'x' (did you mean 'y'?) (known: a, b)".
[[nodiscard]] Status unknown_key_error(const std::string& where, std::string_view name,
                                       const std::vector<std::string_view>& known);

/// Reads the keys of TOML table `table` into `config`. `section` prefixes key names in
/// messages and origins ("node" -> "node.tp"; "" = top level). Keys listed in `skip` are left
/// to the caller; any other key not in `options` is an error with a hint. Each key read is
/// recorded in `origins` as "FILE:LINE:COL: section.key".
template <class C>
[[nodiscard]] Status read_toml_options(C& config, const OptionTable<C>& options,
                                       const toml::table& table, const std::string& file,
                                       std::string_view section, OptionOrigins& origins,
                                       const std::vector<std::string_view>& skip = {}) {
    for (const auto& [key, node] : table) {
        const std::string name(key.str());
        if (std::find(skip.begin(), skip.end(), name) != skip.end()) {
            continue;
        }
        const std::string label = section.empty() ? name : std::string(section) + "." + name;
        const std::string at = toml_location(file, key.source());
        const Option<C>* option = find_option(options, name);
        if (option == nullptr || !option->in_file) {
            std::vector<std::string_view> known = option_keys(options, true);
            known.insert(known.end(), skip.begin(), skip.end());
            return unknown_key_error(section.empty() ? at : at + ": " + std::string(section), name,
                                     known);
        }
        if (Status s = set_option_from_toml(config, *option, node); !s.is_ok()) {
            return s.with_prefix(at + ": " + label);
        }
        origins.given[name] = at + ": " + label;
    }
    return Status::ok();
}

/// Reads every option whose variable `env` returns a non-empty value (`option_env`), recording
/// the variable's name as the origin.
template <class C>
[[nodiscard]] Status read_env_options(
    C& config, const OptionTable<C>& options,
    const std::function<std::optional<std::string>(const std::string&)>& env,
    OptionOrigins& origins) {
    for (const Option<C>& option : options) {
        const std::string name = option_env(option);
        const std::optional<std::string> value = env(name);
        if (!value || value->empty()) {
            continue;
        }
        if (Status s = set_option_from_text(config, option, *value); !s.is_ok()) {
            return s.with_prefix(name);
        }
        origins.given[std::string(option.key)] = name;
    }
    return Status::ok();
}

}  // namespace pals
