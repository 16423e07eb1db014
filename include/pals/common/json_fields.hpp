#pragma once
/// @file json_fields.hpp
/// @brief The one typed reader of fields of a JSON object from a file (model configs,
/// MODEL.json): required and optional integers, numbers, booleans, strings and arrays, with
/// errors "FILE: field 'text_config.num_layers' must be a positive integer". The first error
/// sticks (later reads return defaults), so a parser reads a block of fields and checks status()
/// once. JSON null counts as absent (Hugging Face writes null for "not set").
///
/// Thread-safety: one reader per thread.

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pals/common/status.hpp"

namespace pals {

/// Reads typed fields from one JSON object. The first error sticks (later reads return
/// defaults), so a parser reads a block of fields and checks status() once.
class JsonFields {
public:
    /// `prefix` is prepended to field names in messages ("text_config." or "").
    JsonFields(const nlohmann::json& object, std::string_view source, std::string prefix)
        : m_object(object), m_source(source), m_prefix(std::move(prefix)) {}

    [[nodiscard]] bool ok() const { return m_status.is_ok(); }
    [[nodiscard]] const Status& status() const { return m_status; }
    [[nodiscard]] const nlohmann::json& object() const { return m_object; }

    /// The field, or nullptr when it is absent or JSON null (HF writes null for "not set").
    [[nodiscard]] const nlohmann::json* find(std::string_view key) const {
        auto it = m_object.find(key);
        if (it == m_object.end() || it->is_null()) {
            return nullptr;
        }
        return &*it;
    }
    [[nodiscard]] bool has(std::string_view key) const { return find(key) != nullptr; }

    /// A required integer >= min_value.
    int require_int(std::string_view key, int min_value = 1) {
        const nlohmann::json* value = find(key);
        if (value == nullptr) {
            fail_missing(key);
            return min_value;
        }
        return to_int(key, *value, min_value);
    }

    /// An optional integer >= min_value; `fallback` when absent or null.
    int optional_int(std::string_view key, int fallback, int min_value = 1) {
        const nlohmann::json* value = find(key);
        return value == nullptr ? fallback : to_int(key, *value, min_value);
    }

    bool optional_bool(std::string_view key, bool fallback) {
        const nlohmann::json* value = find(key);
        if (value == nullptr) {
            return fallback;
        }
        if (!value->is_boolean()) {
            fail(fmt::format("field '{}{}' must be true or false", m_prefix, key));
            return fallback;
        }
        return value->get<bool>();
    }

    std::optional<std::string> optional_string(std::string_view key) {
        const nlohmann::json* value = find(key);
        if (value == nullptr) {
            return std::nullopt;
        }
        if (!value->is_string()) {
            fail(fmt::format("field '{}{}' must be a string", m_prefix, key));
            return std::nullopt;
        }
        return value->get<std::string>();
    }

    /// An optional array of strings (empty when absent).
    std::vector<std::string> optional_strings(std::string_view key) {
        std::vector<std::string> out;
        const nlohmann::json* value = find(key);
        if (value == nullptr) {
            return out;
        }
        if (!value->is_array()) {
            fail(fmt::format("field '{}{}' must be an array of strings", m_prefix, key));
            return out;
        }
        for (const nlohmann::json& item : *value) {
            if (!item.is_string()) {
                fail(fmt::format("field '{}{}' must be an array of strings", m_prefix, key));
                return {};
            }
            out.push_back(item.get<std::string>());
        }
        return out;
    }

    /// An optional array of integers >= min_value (empty when absent).
    std::vector<int> optional_ints(std::string_view key, int min_value = 0) {
        std::vector<int> out;
        const nlohmann::json* value = find(key);
        if (value == nullptr) {
            return out;
        }
        if (!value->is_array()) {
            fail(fmt::format("field '{}{}' must be an array of integers", m_prefix, key));
            return out;
        }
        for (const nlohmann::json& item : *value) {
            if (!is_int_at_least(item, min_value)) {
                fail(fmt::format("field '{}{}' must be an array of integers >= {}", m_prefix, key,
                                 min_value));
                return {};
            }
            out.push_back(item.get<int>());
        }
        return out;
    }

    /// A required string.
    std::string require_string(std::string_view key) {
        const nlohmann::json* value = find(key);
        if (value == nullptr) {
            fail_missing(key);
            return {};
        }
        std::optional<std::string> s = optional_string(key);
        return s.value_or(std::string());
    }

    /// A required finite number.
    double require_number(std::string_view key) {
        const nlohmann::json* value = find(key);
        if (value == nullptr) {
            fail_missing(key);
            return 0.0;
        }
        if (!value->is_number() || !std::isfinite(value->get<double>())) {
            fail(fmt::format("field '{}{}' must be a finite number", m_prefix, key));
            return 0.0;
        }
        return value->get<double>();
    }

    void fail_missing(std::string_view key) {
        fail(fmt::format("missing field '{}{}'", m_prefix, key));
    }

    /// Records an error (prefixed with the source) unless one is already recorded.
    void fail(const std::string& message) {
        if (m_status.is_ok()) {
            m_status = Status::invalid_argument(fmt::format("{}: {}", m_source, message));
        }
    }

    [[nodiscard]] const std::string& prefix() const { return m_prefix; }

private:
    static bool is_int_at_least(const nlohmann::json& value, int min_value) {
        constexpr std::int64_t kMax = std::numeric_limits<int>::max();
        if (value.is_number_unsigned()) {  // nlohmann stores non-negative integers unsigned
            const std::uint64_t v = value.get<std::uint64_t>();
            return v <= static_cast<std::uint64_t>(kMax) &&
                   static_cast<std::int64_t>(v) >= min_value;
        }
        if (value.is_number_integer()) {
            const std::int64_t v = value.get<std::int64_t>();
            return v >= min_value && v <= kMax;
        }
        return false;
    }

    int to_int(std::string_view key, const nlohmann::json& value, int min_value) {
        if (!is_int_at_least(value, min_value)) {
            const char* what = min_value >= 1   ? "a positive integer"
                               : min_value == 0 ? "a non-negative integer"
                                                : "an integer";
            fail(fmt::format("field '{}{}' must be {}", m_prefix, key, what));
            return std::max(min_value, 1);
        }
        return value.get<int>();
    }

    const nlohmann::json& m_object;
    std::string_view m_source;
    std::string m_prefix;
    Status m_status;
};

}  // namespace pals
