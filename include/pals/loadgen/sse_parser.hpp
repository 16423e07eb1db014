#pragma once
/// @file sse_parser.hpp
/// @brief Server-sent events as OpenAI-compatible servers stream them (`data: <json>\n\n`, ending
/// with `data: [DONE]`), and the meaning of one streamed JSON chunk for the load generator.
///
/// The parsing rules are those of `vllm bench serve` (docs/research/integration.md §3.1-3.2):
/// events are separated by a blank line, only `data:` lines count, `:` comment lines are skipped,
/// and `[DONE]` ends the stream.
///
/// Thread-safety: SseParser is a value type without internal locking (one per stream); the free
/// functions are pure and thread-safe.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pals/common/status.hpp"

namespace pals::loadgen {

/// Incremental parser of a `text/event-stream` body. Bytes may arrive split at any boundary
/// (inside a line, between `\r` and `\n`, inside a UTF-8 sequence); feed() buffers the tail of
/// an incomplete event until the rest arrives.
class SseParser {
public:
    /// The `[DONE]` sentinel that ends an OpenAI-compatible stream.
    static constexpr std::string_view kDoneSentinel = "[DONE]";
    /// Default bound on one incomplete event (its bytes before the closing blank line): 1 MiB.
    /// An OpenAI-compatible chunk is a few hundred bytes (a few KB with logprobs); a server that
    /// never sends the blank line would otherwise make the buffer grow without bound.
    static constexpr std::size_t kDefaultMaxEventBytes = std::size_t{1} << 20;

    /// A parser that fails (see error()) once an incomplete event exceeds `max_event_bytes`.
    explicit SseParser(std::size_t max_event_bytes = kDefaultMaxEventBytes)
        : m_max_event_bytes(max_event_bytes) {}

    /// Appends `bytes` and returns the data payloads of every event they complete, in order.
    /// An event with several `data:` lines yields them joined by `\n` (the SSE rule); events with
    /// no `data:` line (comments, `event:`/`id:` only) yield nothing. The `[DONE]` payload is not
    /// returned: it sets done(), after which all further input is ignored.
    [[nodiscard]] std::vector<std::string> feed(std::string_view bytes);

    /// Ends the stream: an event still buffered without its closing blank line is parsed as if
    /// it were complete (some servers omit the final blank line) and its payload returned.
    [[nodiscard]] std::vector<std::string> finish();

    /// True once `data: [DONE]` was seen.
    [[nodiscard]] bool done() const { return m_done; }

    /// Bytes of an incomplete event held back (for tests and diagnostics).
    [[nodiscard]] std::size_t pending_bytes() const { return m_buffer.size(); }

    /// Non-empty once the stream is unusable (an event longer than the bound): what is wrong.
    /// The buffer is then released and all further input ignored; the request must fail.
    [[nodiscard]] const std::string& error() const { return m_error; }

private:
    /// Parses one complete event (its lines, without the blank separator) into `out`.
    void parse_event(std::string_view event, std::vector<std::string>& out);

    std::size_t m_max_event_bytes;
    std::string m_error;      ///< set once an event exceeded m_max_event_bytes
    std::string m_buffer;     ///< bytes after the last complete event, line endings as '\n'
    bool m_after_cr = false;  ///< the last byte fed was '\r' (a following '\n' is skipped)
    bool m_done = false;
};

/// What one streamed JSON chunk says, reduced to what the metrics need.
struct StreamChunk {
    /// The chunk has a non-empty `choices` array: it carries output (text, a chat delta, or an
    /// empty string for a special token). TTFT and ITL are measured on these chunks only.
    bool has_choices = false;
    std::optional<int> completion_tokens;  ///< `usage.completion_tokens`, when usage is present
    std::optional<int> prompt_tokens;      ///< `usage.prompt_tokens`, when usage is present
    /// An in-band error object (`{"error": {...}}` or `{"object": "error", "message": ...}`):
    /// its message. The request fails with it.
    std::optional<std::string> error;
};

/// Interprets one `data:` payload, parsed with pals::parse_json (nesting depth bounded, so a
/// hostile server cannot overflow the stack). Returns kInvalidArgument when it is not a JSON
/// object (a broken stream: the request fails with that message).
[[nodiscard]] Result<StreamChunk> parse_stream_chunk(std::string_view payload);

/// The most useful message in an error response body: `error.message`, top-level `message`,
/// `detail` (FastAPI), a string `error`, else the body itself shortened to 300 bytes.
[[nodiscard]] std::string extract_error_message(std::string_view body);

}  // namespace pals::loadgen
