#include "serve/openai_protocol.hpp"

#include <algorithm>
#include <array>
#include <climits>
#include <cstddef>
#include <nlohmann/json.hpp>
#include <utility>

#include "pals/common/json.hpp"

namespace pals::serve {

namespace {

using json = nlohmann::ordered_json;  // responses keep their keys in order
using in_json = nlohmann::json;       // request bodies, parsed by pals::parse_json

/// The words of the generated text, cycled.
constexpr std::array<std::string_view, 32> kWords = {
    "The",       "quick", "brown",   "fox",     "jumps", "over",    "the",     "lazy",
    "dog",       "while", "a",       "steady",  "river", "carries", "small",   "boats",
    "past",      "green", "hills",   "under",   "clear", "skies",   "and",     "every",
    "simulated", "token", "arrives", "exactly", "when",  "it",      "should.", "Then"};

Result<in_json> parse_object(std::string_view body) {
    // Bounded depth and size, every nlohmann exception (1e400 too) as a Status.
    PALS_ASSIGN_OR_RETURN(in_json parsed, pals::parse_json(body, "the request body"));
    in_json doc = std::move(parsed);
    if (!doc.is_object()) {
        return Status::invalid_argument("the request body must be a JSON object");
    }
    return doc;
}

bool present(const in_json& obj, const char* key) {
    const auto it = obj.find(key);
    return it != obj.end() && !it->is_null();
}

/// An optional positive int field; kInvalidArgument naming it otherwise.
Status read_positive_int(const in_json& obj, const char* key, std::optional<int>& out) {
    if (!present(obj, key)) {
        return Status::ok();
    }
    const in_json& v = obj.at(key);
    if (!v.is_number_integer()) {
        return Status::invalid_argument(std::string("'") + key + "' must be an integer");
    }
    const std::int64_t n = v.is_number_unsigned()
                               ? static_cast<std::int64_t>(std::min<std::uint64_t>(
                                     v.get<std::uint64_t>(), std::uint64_t{INT_MAX} + 1))
                               : v.get<std::int64_t>();
    if (n < 1) {
        return Status::invalid_argument(std::string("'") + key + "' must be at least 1, got " +
                                        std::to_string(n));
    }
    if (n > INT_MAX) {
        return Status::invalid_argument(std::string("'") + key + "' is too large");
    }
    out = static_cast<int>(n);
    return Status::ok();
}

Status read_bool(const in_json& obj, const char* key, bool& out) {
    if (!present(obj, key)) {
        return Status::ok();
    }
    if (!obj.at(key).is_boolean()) {
        return Status::invalid_argument(std::string("'") + key + "' must be true or false");
    }
    out = obj.at(key).get<bool>();
    return Status::ok();
}

/// The fields both endpoints share: model, n, stream, stream_options.
Status read_common(const in_json& doc, GenerationRequest& out) {
    if (present(doc, "model")) {
        if (!doc.at("model").is_string()) {
            return Status::invalid_argument("'model' must be a string");
        }
        out.model = doc.at("model").get<std::string>();
    }
    if (present(doc, "n")) {
        const in_json& v = doc.at("n");
        if (!v.is_number_integer() || v.get<std::int64_t>() != 1) {
            return Status::invalid_argument(
                "'n' must be 1: the simulated server returns one choice");
        }
    }
    PALS_RETURN_IF_ERROR(read_bool(doc, "stream", out.stream));
    if (present(doc, "stream_options")) {
        const in_json& opts = doc.at("stream_options");
        if (!opts.is_object()) {
            return Status::invalid_argument("'stream_options' must be an object");
        }
        if (!out.stream) {
            return Status::invalid_argument(
                "Stream options can only be defined when `stream=True`.");
        }
        PALS_RETURN_IF_ERROR(read_bool(opts, "include_usage", out.include_usage));
        PALS_RETURN_IF_ERROR(read_bool(opts, "continuous_usage_stats", out.continuous_usage));
    }
    return Status::ok();
}

/// Token ids: every element an integer >= 0.
bool is_token_ids(const in_json& v) {
    if (!v.is_array() || v.empty()) {
        return false;
    }
    for (const in_json& t : v) {
        if (!t.is_number_integer() || (!t.is_number_unsigned() && t.get<std::int64_t>() < 0)) {
            return false;
        }
    }
    return true;
}

Result<int> prompt_tokens_of(const in_json& prompt) {
    if (prompt.is_string()) {
        const int n = count_text_tokens(prompt.get_ref<const std::string&>());
        if (n == 0) {
            return Status::invalid_argument("'prompt' cannot be empty");
        }
        return n;
    }
    if (!prompt.is_array()) {
        return Status::invalid_argument(
            "'prompt' must be a string, an array of token ids, or a one-element array of either");
    }
    if (prompt.empty()) {
        return Status::invalid_argument("'prompt' cannot be empty");
    }
    if (is_token_ids(prompt)) {
        return static_cast<int>(std::min<std::size_t>(prompt.size(), INT_MAX));
    }
    if (prompt.size() > 1) {
        return Status::invalid_argument(
            "batched prompts are not supported: send one prompt per request");
    }
    const in_json& only = prompt.front();
    if (only.is_string()) {
        return prompt_tokens_of(only);
    }
    if (is_token_ids(only)) {
        return static_cast<int>(std::min<std::size_t>(only.size(), INT_MAX));
    }
    return Status::invalid_argument(
        "'prompt' must be a string, an array of token ids, or a one-element array of either");
}

Result<int> message_tokens(const in_json& message, std::size_t index) {
    const std::string where = "'messages'[" + std::to_string(index) + "]";
    if (!message.is_object()) {
        return Status::invalid_argument(where + " must be an object");
    }
    if (!message.contains("role") || !message.at("role").is_string()) {
        return Status::invalid_argument(where + " needs a string 'role'");
    }
    std::size_t bytes = 0;
    if (present(message, "content")) {
        const in_json& content = message.at("content");
        if (content.is_string()) {
            bytes = content.get_ref<const std::string&>().size();
        } else if (content.is_array()) {
            for (const in_json& part : content) {
                if (!part.is_object() || !part.contains("type") || part.at("type") != "text" ||
                    !part.contains("text") || !part.at("text").is_string()) {
                    return Status::invalid_argument(
                        where +
                        ".content: only {\"type\": \"text\", \"text\": ...} parts are "
                        "supported");
                }
                bytes += part.at("text").get_ref<const std::string&>().size();
            }
        } else {
            return Status::invalid_argument(where +
                                            ".content must be a string or an array of parts");
        }
    }
    const std::size_t tokens = (bytes + kBytesPerToken - 1) / kBytesPerToken;
    return static_cast<int>(std::min<std::size_t>(tokens, INT_MAX / 2)) + kChatTokensPerMessage;
}

json usage_json(int prompt_tokens, int completion_tokens) {
    return json{{"prompt_tokens", prompt_tokens},
                {"total_tokens", prompt_tokens + completion_tokens},
                {"completion_tokens", completion_tokens},
                {"prompt_tokens_details", nullptr}};
}

std::string event(const json& chunk) {
    return "data: " + chunk.dump() + "\n\n";
}

}  // namespace

int count_text_tokens(std::string_view text) {
    const std::size_t tokens = (text.size() + kBytesPerToken - 1) / kBytesPerToken;
    return static_cast<int>(std::min<std::size_t>(tokens, INT_MAX));
}

Result<GenerationRequest> parse_completion_request(std::string_view body) {
    PALS_ASSIGN_OR_RETURN(in_json doc, parse_object(body));
    GenerationRequest out;
    out.endpoint = Endpoint::kCompletions;
    PALS_RETURN_IF_ERROR(read_common(doc, out));
    if (!present(doc, "prompt")) {
        return Status::invalid_argument("'prompt' is required");
    }
    PALS_ASSIGN_OR_RETURN(int tokens, prompt_tokens_of(doc.at("prompt")));
    out.prompt_tokens = tokens;
    PALS_RETURN_IF_ERROR(read_positive_int(doc, "max_tokens", out.max_tokens));
    return out;
}

Result<GenerationRequest> parse_chat_request(std::string_view body) {
    PALS_ASSIGN_OR_RETURN(in_json doc, parse_object(body));
    GenerationRequest out;
    out.endpoint = Endpoint::kChatCompletions;
    PALS_RETURN_IF_ERROR(read_common(doc, out));
    if (!present(doc, "messages") || !doc.at("messages").is_array() || doc.at("messages").empty()) {
        return Status::invalid_argument("'messages' must be a non-empty array");
    }
    std::int64_t tokens = kChatGenerationPromptTokens;
    const in_json& messages = doc.at("messages");
    for (std::size_t i = 0; i < messages.size(); ++i) {
        PALS_ASSIGN_OR_RETURN(int n, message_tokens(messages[i], i));
        tokens = std::min<std::int64_t>(tokens + n, INT_MAX);
    }
    out.prompt_tokens = static_cast<int>(tokens);
    PALS_RETURN_IF_ERROR(read_positive_int(doc, "max_tokens", out.max_tokens));
    std::optional<int> max_completion;
    PALS_RETURN_IF_ERROR(read_positive_int(doc, "max_completion_tokens", max_completion));
    if (max_completion) {
        out.max_tokens = max_completion;  // the newer name wins, as in vLLM
    }
    return out;
}

std::string token_text(int index) {
    const auto i = static_cast<std::size_t>(index < 0 ? 0 : index);
    const std::string_view word = kWords[i % kWords.size()];
    std::string out(word.size() + 1, ' ');
    word.copy(out.data() + 1, word.size());
    return out;
}

std::string generated_text(int count) {
    std::string text;
    for (int i = 0; i < count; ++i) {
        text += token_text(i);
    }
    return text;
}

std::string error_body(const ApiError& error) {
    return json{{"error",
                 {{"message", error.message},
                  {"type", error.type},
                  {"param", error.param.empty() ? json(nullptr) : json(error.param)},
                  {"code", error.status}}}}
        .dump();
}

ApiError bad_request(std::string message, std::string param) {
    return {400, "BadRequestError", std::move(message), std::move(param)};
}

ApiError model_not_found(std::string_view model) {
    return {404, "NotFoundError", "The model `" + std::string(model) + "` does not exist.",
            "model"};
}

std::string full_response(const ResponseHeader& header, int completion_tokens) {
    json choice;
    if (header.endpoint == Endpoint::kCompletions) {
        choice = {{"index", 0},
                  {"text", generated_text(completion_tokens)},
                  {"logprobs", nullptr},
                  {"finish_reason", "length"},
                  {"stop_reason", nullptr},
                  {"prompt_logprobs", nullptr}};
    } else {
        choice = {{"index", 0},
                  {"message",
                   {{"role", "assistant"},
                    {"content", generated_text(completion_tokens)},
                    {"tool_calls", json::array()}}},
                  {"logprobs", nullptr},
                  {"finish_reason", "length"},
                  {"stop_reason", nullptr}};
    }
    return json{{"id", header.id},
                {"object",
                 header.endpoint == Endpoint::kCompletions ? "text_completion" : "chat.completion"},
                {"created", header.created},
                {"model", header.model},
                {"choices", json::array({choice})},
                {"usage", usage_json(header.prompt_tokens, completion_tokens)}}
        .dump();
}

StreamEncoder::StreamEncoder(ResponseHeader header, bool include_usage, bool continuous_usage)
    : m_header(std::move(header))
    , m_include_usage(include_usage)
    , m_continuous_usage(include_usage && continuous_usage) {}

std::string StreamEncoder::begin() const {
    if (m_header.endpoint != Endpoint::kChatCompletions) {
        return {};
    }
    json chunk = {{"id", m_header.id},
                  {"object", "chat.completion.chunk"},
                  {"created", m_header.created},
                  {"model", m_header.model},
                  {"choices", json::array({{{"index", 0},
                                            {"delta", {{"role", "assistant"}, {"content", ""}}},
                                            {"logprobs", nullptr},
                                            {"finish_reason", nullptr}}})}};
    if (m_continuous_usage) {
        chunk["usage"] = usage_json(m_header.prompt_tokens, 0);
    }
    return event(chunk);
}

std::string StreamEncoder::token(int generated, bool last) const {
    const std::string text = token_text(generated - 1);
    const json finish = last ? json("length") : json(nullptr);
    json chunk;
    if (m_header.endpoint == Endpoint::kCompletions) {
        // vLLM dumps completion chunks with exclude_unset=False: "usage" is always present.
        chunk = {{"id", m_header.id},
                 {"object", "text_completion"},
                 {"created", m_header.created},
                 {"model", m_header.model},
                 {"choices", json::array({{{"index", 0},
                                           {"text", text},
                                           {"logprobs", nullptr},
                                           {"finish_reason", finish},
                                           {"stop_reason", nullptr}}})},
                 {"usage", nullptr}};
    } else {
        json choice = {{"index", 0},
                       {"delta", {{"content", text}}},
                       {"logprobs", nullptr},
                       {"finish_reason", finish}};
        if (last) {
            choice["stop_reason"] = nullptr;
        }
        chunk = {{"id", m_header.id},
                 {"object", "chat.completion.chunk"},
                 {"created", m_header.created},
                 {"model", m_header.model},
                 {"choices", json::array({choice})}};
    }
    if (m_continuous_usage) {
        chunk["usage"] = usage_json(m_header.prompt_tokens, generated);
    }
    return event(chunk);
}

std::string StreamEncoder::end(int completion_tokens) const {
    std::string out;
    if (m_include_usage) {
        const json chunk = {
            {"id", m_header.id},
            {"object", m_header.endpoint == Endpoint::kCompletions ? "text_completion"
                                                                   : "chat.completion.chunk"},
            {"created", m_header.created},
            {"model", m_header.model},
            {"choices", json::array()},
            {"usage", usage_json(m_header.prompt_tokens, completion_tokens)}};
        out = event(chunk);
    }
    return out + "data: [DONE]\n\n";
}

std::string models_response(const std::string& model, int max_model_len, std::int64_t created) {
    const json card = {{"id", model},
                       {"object", "model"},
                       {"created", created},
                       {"owned_by", "vllm"},
                       {"root", model},
                       {"parent", nullptr},
                       {"max_model_len", max_model_len},
                       {"permission", json::array()}};
    return json{{"object", "list"}, {"data", json::array({card})}}.dump();
}

}  // namespace pals::serve
