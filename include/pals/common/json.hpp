#pragma once
/// @file json.hpp
/// @brief One way to parse JSON that comes from outside (files, HTTP bodies, SSE events):
/// bounded nesting depth and size, every nlohmann exception turned into a Status.
///
/// Why: nlohmann's parser is iterative, but dump(), operator== and user code that walks a value
/// recurse, so ~200 KB of `[[[[...` overflows the stack (a SIGSEGV, not an error). A number such
/// as 1e400 throws out_of_range, not parse_error. Callers include this header only from targets
/// that link nlohmann_json.
///
/// Thread-safety: free functions, no shared state.

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "pals/common/status.hpp"

namespace pals {

/// Limits for parse_json(). The defaults suit every format PALS reads.
struct JsonLimits {
    /// Deepest nesting of arrays and objects accepted (a value at the top level is depth 1).
    int max_depth = 64;
    /// Largest text accepted, in bytes.
    std::size_t max_bytes = std::size_t{64} << 20;
};

/// The deepest array/object nesting in `text` (strings and escapes skipped), stopping early once
/// it exceeds `stop_above`. Malformed text is left to the parser.
[[nodiscard]] inline int json_nesting_depth(std::string_view text, int stop_above) {
    int depth = 0;
    int deepest = 0;
    bool in_string = false;
    bool escaped = false;
    for (const char c : text) {
        if (in_string) {
            if (escaped) {
                escaped = false;
            } else if (c == '\\') {
                escaped = true;
            } else if (c == '"') {
                in_string = false;
            }
            continue;
        }
        if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            ++depth;
            if (depth > deepest) {
                deepest = depth;
                if (deepest > stop_above) {
                    return deepest;
                }
            }
        } else if (c == ']' || c == '}') {
            --depth;
        }
    }
    return deepest;
}

/// Parses `text` as one JSON value. Errors (kInvalidArgument) start with `what` (a file:line, a
/// field, "request body") and say what is wrong: malformed, too deep, too large, a number out of
/// range.
[[nodiscard]] inline Result<nlohmann::json> parse_json(std::string_view text, std::string_view what,
                                                       JsonLimits limits = {}) {
    const std::string where(what);
    if (text.size() > limits.max_bytes) {
        return Status::invalid_argument(where + ": JSON text of " + std::to_string(text.size()) +
                                        " bytes exceeds the limit of " +
                                        std::to_string(limits.max_bytes) + " bytes");
    }
    if (json_nesting_depth(text, limits.max_depth) > limits.max_depth) {
        return Status::invalid_argument(where + ": JSON nested deeper than " +
                                        std::to_string(limits.max_depth) + " levels");
    }
    try {
        return nlohmann::json::parse(text.begin(), text.end());
    } catch (const nlohmann::json::exception& e) {
        return Status::invalid_argument(where + ": malformed JSON: " + e.what());
    }
}

}  // namespace pals
