#pragma once
/// @file openai_protocol.hpp
/// @brief The OpenAI-compatible wire format of `pals sim-serve`, as vLLM writes it: request
/// bodies parsed into typed structs at the edge, and response bodies, stream chunks and errors
/// built from typed values (docs/sim-serve.md). No HTTP and no simulator here.
///
/// Thread-safety: free functions and value types; safe from any thread.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "pals/common/status.hpp"

namespace pals::serve {

/// Token counting of text (the simulator has no tokenizer): about 4 bytes per token, rounded up.
inline constexpr int kBytesPerToken = 4;
/// Chat template tokens per message (role header and end-of-turn markers).
inline constexpr int kChatTokensPerMessage = 4;
/// Chat template tokens of the generation prompt (the assistant header).
inline constexpr int kChatGenerationPromptTokens = 3;

/// Which OpenAI endpoint a request came to.
enum class Endpoint { kCompletions, kChatCompletions };

/// A parsed /v1/completions or /v1/chat/completions request: what the simulator needs.
struct GenerationRequest {
    Endpoint endpoint = Endpoint::kCompletions;
    std::optional<std::string> model;  ///< absent: the served model
    int prompt_tokens = 0;             ///< >= 1
    std::optional<int> max_tokens;     ///< absent: the server's default
    bool stream = false;
    bool include_usage = false;     ///< stream_options.include_usage
    bool continuous_usage = false;  ///< stream_options.continuous_usage_stats
};

/// The tokens of a text prompt: ceil(bytes / kBytesPerToken).
[[nodiscard]] int count_text_tokens(std::string_view text);

/// Parses a /v1/completions body. `prompt`: a string, an array of token ids (its size is the
/// length), or a one-element array of either. Errors (kInvalidArgument) are the 400 message.
[[nodiscard]] Result<GenerationRequest> parse_completion_request(std::string_view body);
/// Parses a /v1/chat/completions body. `messages[].content`: a string, null, or an array of
/// {"type": "text", "text": ...} parts. Prompt tokens: per message count_text_tokens(content)
/// + kChatTokensPerMessage, plus kChatGenerationPromptTokens.
[[nodiscard]] Result<GenerationRequest> parse_chat_request(std::string_view body);

/// The text of output token `index` (0-based): a word with a leading space, deterministic.
[[nodiscard]] std::string token_text(int index);
/// The text of the first `count` tokens.
[[nodiscard]] std::string generated_text(int count);

/// An error as OpenAI and vLLM send it:
/// {"error": {"message", "type", "param", "code"}} (param null when empty).
struct ApiError {
    int status = 400;
    std::string type = "BadRequestError";
    std::string message;
    std::string param;
};
[[nodiscard]] std::string error_body(const ApiError& error);
[[nodiscard]] ApiError bad_request(std::string message, std::string param = {});
/// vLLM's 404 for a model name it does not serve.
[[nodiscard]] ApiError model_not_found(std::string_view model);

/// The identity of one response: shared by all its chunks.
struct ResponseHeader {
    Endpoint endpoint = Endpoint::kCompletions;
    std::string id;            ///< cmpl-… or chatcmpl-…
    std::int64_t created = 0;  ///< Unix seconds
    std::string model;
    int prompt_tokens = 0;
};

/// The non-streaming response of a request that generated `completion_tokens` tokens.
[[nodiscard]] std::string full_response(const ResponseHeader& header, int completion_tokens);

/// Writes a response's server-sent events in vLLM's order: (chat) the role chunk, one chunk
/// per token (finish_reason null until the last, then "length"), the usage chunk with
/// "choices": [] when include_usage, then `data: [DONE]`. Each event is `data: <json>\n\n`.
class StreamEncoder {
public:
    StreamEncoder(ResponseHeader header, bool include_usage, bool continuous_usage);
    /// The events sent before any token (the chat role delta; empty for completions).
    [[nodiscard]] std::string begin() const;
    /// The event of output token `generated` (1-based); `last`: the request's final token.
    [[nodiscard]] std::string token(int generated, bool last) const;
    /// The usage event (when asked for) and [DONE], after `completion_tokens` tokens.
    [[nodiscard]] std::string end(int completion_tokens) const;

private:
    ResponseHeader m_header;
    bool m_include_usage;
    bool m_continuous_usage;
};

/// GET /v1/models: an OpenAI list with the one served model.
[[nodiscard]] std::string models_response(const std::string& model, int max_model_len,
                                          std::int64_t created);

}  // namespace pals::serve
