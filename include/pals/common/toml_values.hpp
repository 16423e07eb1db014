#pragma once
/// @file toml_values.hpp
/// @brief One typed reader of TOML values for every configuration file (scenarios, `pals run`):
/// a string, a finite number or an integer in range, with errors that name what was found.
/// Callers prefix the errors with file:line:key (toml_location()).

#include <toml++/toml.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "pals/common/status.hpp"

namespace pals {

/// "a string", "an integer", "a number", "a boolean", "an array", "a table", "a date or time".
[[nodiscard]] const char* toml_type_name(const toml::node& node);

/// "FILE:LINE:COLUMN" of a node (its key's position).
[[nodiscard]] std::string toml_location(const std::string& file, const toml::source_region& region);

/// The node as a T: std::string (a TOML string), double (an integer or float, finite) or an
/// integral type (a TOML integer within T's range). Errors (kInvalidArgument, without prefix):
/// "must be a string, not an integer", "must be a finite number", "is out of range".
template <class T>
[[nodiscard]] Result<T> toml_value(const toml::node& node) {
    if constexpr (std::is_same_v<T, std::string>) {
        if (auto v = node.value_exact<std::string>()) {
            return *v;
        }
        return Status::invalid_argument(std::string("must be a string, not ") +
                                        toml_type_name(node));
    } else if constexpr (std::is_same_v<T, double>) {
        if (!node.is_number()) {
            return Status::invalid_argument(std::string("must be a number, not ") +
                                            toml_type_name(node));
        }
        if (auto v = node.value<double>(); v && std::isfinite(*v)) {
            return *v;
        }
        return Status::invalid_argument("must be a finite number");
    } else {
        static_assert(std::is_integral_v<T>, "toml_value: std::string, double or an integer");
        auto v = node.value_exact<std::int64_t>();
        if (!v) {
            return Status::invalid_argument(std::string("must be an integer, not ") +
                                            toml_type_name(node));
        }
        if (!std::in_range<T>(*v)) {
            return Status::invalid_argument("is out of range");
        }
        return static_cast<T>(*v);
    }
}

/// Parses a TOML document; a syntax error is kInvalidArgument "FILE:LINE:COLUMN: what".
[[nodiscard]] Result<toml::table> parse_toml(std::string_view text, const std::string& file);

/// Typed access to the values of a parsed document by dotted path ("node.tp"), with errors
/// "FILE:LINE:COLUMN: node.tp: what" (the value's position; "FILE: key: what" for a key that is
/// absent).
class TomlReader {
public:
    TomlReader(const toml::table& root, std::string file) : m_root(root), m_file(std::move(file)) {}

    /// "FILE:LINE:COLUMN: key" where the key has a value, "FILE: key" otherwise.
    [[nodiscard]] std::string origin(std::string_view key) const;
    /// kInvalidArgument "origin(key): what".
    [[nodiscard]] Status error(std::string_view key, const std::string& what) const {
        return Status::invalid_argument(origin(key) + ": " + what);
    }

    /// The value at `key` as a T (toml_value()), or nullopt when absent.
    template <class T>
    [[nodiscard]] Result<std::optional<T>> get(std::string_view key) const {
        const auto node = m_root.at_path(key);
        if (!node) {
            return std::optional<T>{};
        }
        Result<T> value = toml_value<T>(*node.node());
        if (!value.is_ok()) {
            return error(key, value.status().message());
        }
        return std::optional<T>{std::move(value).value()};
    }

    [[nodiscard]] const toml::table& root() const { return m_root; }
    [[nodiscard]] const std::string& file() const { return m_file; }

private:
    const toml::table& m_root;
    std::string m_file;
};

}  // namespace pals
