/// @file sse_parser.cpp
/// @brief SseParser and the interpretation of OpenAI-compatible stream chunks.

#include "pals/loadgen/sse_parser.hpp"

#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "pals/common/json.hpp"
#include "pals/common/strings.hpp"

namespace pals::loadgen {

namespace {

using nlohmann::json;

/// Longest error text kept from a body that is not a recognised error object.
constexpr std::size_t kMaxRawErrorBytes = 300;

/// A JSON number as an int token count, or nullopt when it is not a usable count.
std::optional<int> as_token_count(const json& value) {
    if (!value.is_number()) {
        return std::nullopt;
    }
    const double v = value.get<double>();
    if (!std::isfinite(v) || v < 0.0 || v > static_cast<double>(std::numeric_limits<int>::max())) {
        return std::nullopt;
    }
    return static_cast<int>(v);
}

/// The message of an error value: an object's "message", a string, or the JSON text.
std::string error_value_message(const json& error) {
    if (error.is_object()) {
        const auto it = error.find("message");
        if (it != error.end() && it->is_string()) {
            return it->get<std::string>();
        }
    }
    if (error.is_string()) {
        return error.get<std::string>();
    }
    return error.dump();
}

/// The error message an object carries, if it is an error object (OpenAI's {"error": {...}},
/// vLLM's older {"object": "error", "message": ...}, FastAPI's {"detail": ...}).
std::optional<std::string> object_error_message(const json& object) {
    const auto error = object.find("error");
    if (error != object.end() && !error->is_null()) {
        return error_value_message(*error);
    }
    const auto kind = object.find("object");
    if (kind != object.end() && kind->is_string() && kind->get<std::string>() == "error") {
        const auto message = object.find("message");
        if (message != object.end()) {
            return error_value_message(*message);
        }
        return object.dump();
    }
    return std::nullopt;
}

}  // namespace

std::vector<std::string> SseParser::feed(std::string_view bytes) {
    std::vector<std::string> out;
    if (m_done || !m_error.empty()) {
        return out;
    }
    // Normalise line endings while appending: "\r\n" and a lone '\r' both end a line. A '\r'
    // that ends one feed may be followed by the '\n' of the same line ending in the next one.
    const std::size_t scan_from = m_buffer.empty() ? 0 : m_buffer.size() - 1;
    m_buffer.reserve(m_buffer.size() + bytes.size());
    for (const char c : bytes) {
        if (m_after_cr) {
            m_after_cr = false;
            if (c == '\n') {
                continue;
            }
        }
        if (c == '\r') {
            m_buffer.push_back('\n');
            m_after_cr = true;
        } else {
            m_buffer.push_back(c);
        }
    }
    std::size_t consumed = 0;
    std::size_t search = scan_from;
    while (!m_done) {
        const std::size_t end = m_buffer.find("\n\n", search);
        if (end == std::string::npos) {
            break;
        }
        parse_event(std::string_view(m_buffer).substr(consumed, end - consumed), out);
        consumed = end + 2;
        search = consumed;
    }
    if (m_done) {
        m_buffer.clear();
    } else {
        m_buffer.erase(0, consumed);
        if (m_buffer.size() > m_max_event_bytes) {
            m_error =
                fmt::format("stream event exceeds {} bytes without an event separator (blank line)",
                            m_max_event_bytes);
            m_buffer.clear();
            m_buffer.shrink_to_fit();
        }
    }
    return out;
}

std::vector<std::string> SseParser::finish() {
    std::vector<std::string> out;
    if (!m_done && m_error.empty() && !trim(m_buffer).empty()) {
        parse_event(m_buffer, out);
    }
    m_buffer.clear();
    return out;
}

void SseParser::parse_event(std::string_view event, std::vector<std::string>& out) {
    std::string data;
    bool has_data = false;
    while (!event.empty()) {
        const std::size_t eol = event.find('\n');
        const std::string_view line = event.substr(0, eol);
        event.remove_prefix(eol == std::string_view::npos ? event.size() : eol + 1);
        if (line.empty() || line.front() == ':') {
            continue;  // blank (only at a stream's start) or a comment / keep-alive
        }
        const std::size_t colon = line.find(':');
        const std::string_view field = line.substr(0, colon);
        if (field != "data") {
            continue;  // event:, id:, retry: do not matter here
        }
        std::string_view value =
            colon == std::string_view::npos ? std::string_view{} : line.substr(colon + 1);
        if (!value.empty() && value.front() == ' ') {
            value.remove_prefix(1);
        }
        if (has_data) {
            data.push_back('\n');
        }
        data.append(value);
        has_data = true;
    }
    if (!has_data) {
        return;
    }
    if (trim(data) == kDoneSentinel) {
        m_done = true;
        return;
    }
    out.push_back(std::move(data));
}

Result<StreamChunk> parse_stream_chunk(std::string_view payload) {
    Result<json> parsed = parse_json(payload, "stream chunk");
    if (!parsed.is_ok() || !parsed->is_object()) {
        std::string_view shown = trim(payload);
        if (shown.size() > kMaxRawErrorBytes) {
            shown = shown.substr(0, kMaxRawErrorBytes);
        }
        const std::string why = parsed.is_ok() ? "" : " (" + parsed.status().message() + ")";
        return Status::invalid_argument(
            fmt::format("stream chunk is not a JSON object{}: '{}'", why, shown));
    }
    const json doc = std::move(parsed).value();
    StreamChunk chunk;
    chunk.error = object_error_message(doc);
    const auto choices = doc.find("choices");
    chunk.has_choices = choices != doc.end() && choices->is_array() && !choices->empty();
    const auto usage = doc.find("usage");
    if (usage != doc.end() && usage->is_object()) {
        if (const auto it = usage->find("completion_tokens"); it != usage->end()) {
            chunk.completion_tokens = as_token_count(*it);
        }
        if (const auto it = usage->find("prompt_tokens"); it != usage->end()) {
            chunk.prompt_tokens = as_token_count(*it);
        }
    }
    return chunk;
}

std::string extract_error_message(std::string_view body) {
    Result<json> parsed = parse_json(body, "error body");
    if (parsed.is_ok() && parsed->is_object()) {
        const json& doc = *parsed;
        if (std::optional<std::string> message = object_error_message(doc)) {
            return *message;
        }
        const auto message = doc.find("message");
        if (message != doc.end()) {
            return error_value_message(*message);
        }
        const auto detail = doc.find("detail");
        if (detail != doc.end()) {
            return error_value_message(*detail);
        }
    }
    std::string_view shown = trim(body);
    if (shown.size() > kMaxRawErrorBytes) {
        return std::string(shown.substr(0, kMaxRawErrorBytes)) + "...";
    }
    return std::string(shown);
}

}  // namespace pals::loadgen
