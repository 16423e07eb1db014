/// @file request_sender.cpp
/// @brief One streamed OpenAI-compatible request, timed as vLLM's benchmark client times it
/// (`lib/endpoint_request_func.py`: async_request_openai_completions / _chat_completions).

#include <fmt/format.h>
#include <httplib.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <exception>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <system_error>

#include "pals/common/hash.hpp"
#include "pals/common/http_guard.hpp"
#include "pals/common/json.hpp"
#include "pals/loadgen/loadgen.hpp"

namespace pals::loadgen {

namespace {

using nlohmann::json;

/// Synthetic prompt token ids are drawn from [kMinTokenId, kMaxTokenId]: below every modern
/// vocabulary's size (>= 32000) and above the low ids where some tokenizers keep control tokens.
constexpr int kMinTokenId = 1000;
constexpr int kMaxTokenId = 30000;
/// Most bytes of an error response body kept for the message.
constexpr std::size_t kMaxErrorBodyBytes = std::size_t{64} * 1024;
/// Timeout of the start-up probes (GET /v1/models).
constexpr double kProbeTimeoutS = 10.0;
/// A read that failed after this share of --request-timeout is reported as the timeout.
constexpr double kTimeoutSlack = 0.999;
/// Common English words (one token each in most tokenizers) for chat prompts.
constexpr std::string_view kWords[] = {
    "the",   "time",  "people", "way",   "water", "day",   "world",  "life",  "work",   "part",
    "year",  "place", "number", "word",  "house", "point", "light",  "hand",  "night",  "city",
    "tree",  "river", "stone",  "music", "paper", "story", "field",  "green", "blue",   "small",
    "large", "early", "good",   "new",   "first", "last",  "long",   "great", "little", "old",
    "right", "high",  "young",  "next",  "open",  "short", "clear",  "cold",  "warm",   "fast",
    "slow",  "south", "north",  "east",  "west",  "table", "window", "door",  "road",   "book",
    "sun",   "moon",  "star",   "cloud"};

/// A deterministic per-request generator: seed and id mixed by splitmix64.
std::mt19937_64 prompt_rng(std::uint64_t seed, std::uint64_t id) {
    return std::mt19937_64(mix64(seed + kSplitmixGamma * (id + 1)));
}

std::chrono::microseconds to_micros(double seconds) {
    return std::chrono::microseconds(static_cast<std::int64_t>(std::llround(seconds * 1e6)));
}

/// A client for `url` with the timeouts every loadgen request uses.
std::unique_ptr<httplib::Client> make_client(const Url& url, double read_timeout_s) {
    auto client = std::make_unique<httplib::Client>(url.origin());
    client->set_tcp_nodelay(true);  // small SSE writes and our request must not wait for ACKs
    client->set_keep_alive(false);
    client->set_connection_timeout(to_micros(std::min(kConnectTimeoutS, read_timeout_s)));
    client->set_read_timeout(to_micros(read_timeout_s));
    client->set_write_timeout(to_micros(std::min(kConnectTimeoutS, read_timeout_s)));
    client->set_follow_location(false);
    return client;
}

httplib::Headers base_headers(const std::string& api_key) {
    httplib::Headers headers = {{"Accept-Encoding", "identity"}, {"User-Agent", "pals-loadgen"}};
    if (!api_key.empty()) {
        headers.emplace("Authorization", "Bearer " + api_key);
    }
    return headers;
}

/// The state of one response while it streams in.
class StreamTimer {
public:
    StreamTimer(EndpointKind kind, double send_s, std::optional<double> timeout_s)
        : m_kind(kind)
        , m_send_s(send_s)
        , m_timeout_s(timeout_s)
        , m_last_any_s(send_s)
        , m_last_choice_s(send_s) {}

    bool on_headers(int status) {
        m_status = status;
        return true;
    }

    /// Returns false to abort the transfer (an error event, a broken chunk or the deadline).
    bool on_bytes(std::string_view bytes, double now_s) {
        if (m_status != 200) {
            const std::size_t room =
                kMaxErrorBodyBytes - std::min(kMaxErrorBodyBytes, m_error_body.size());
            m_error_body.append(bytes.substr(0, room));
            return true;
        }
        for (const std::string& payload : m_parser.feed(bytes)) {
            on_payload(payload, now_s);
            if (m_failure) {
                return false;
            }
        }
        if (!m_parser.error().empty()) {
            m_failure = m_parser.error();
            return false;
        }
        if (m_timeout_s && now_s - m_send_s > *m_timeout_s) {
            m_failure = timeout_message();
            return false;
        }
        return true;
    }

    /// Fills `out` once the transfer is over (`ok`/`error` from the HTTP client).
    void finish(bool ok, httplib::Error error, double now_s, RequestOutcome& out) {
        if (!m_failure && m_status == 200) {
            for (const std::string& payload : m_parser.finish()) {
                on_payload(payload, now_s);
            }
        }
        out.success = false;
        if (m_failure) {
            out.error = *m_failure;
        } else if (!ok && !(m_status == 200 && m_parser.done())) {
            if (m_timeout_s && now_s - m_send_s >= *m_timeout_s * kTimeoutSlack) {
                out.error = timeout_message();
            } else if (m_status == 0) {
                out.error = fmt::format("request failed: {}",
                                        pals::http::describe_client_error(error, kConnectTimeoutS));
            } else if (m_status != 200) {
                out.error =
                    fmt::format("HTTP {}: {}", m_status, extract_error_message(m_error_body));
            } else {
                out.error = fmt::format("stream broken before [DONE]: {}",
                                        pals::http::describe_client_error(error, kConnectTimeoutS));
            }
        } else if (m_status != 200) {
            out.error = fmt::format("HTTP {}: {}", m_status, extract_error_message(m_error_body));
        } else if (!m_parser.done()) {
            out.error = "stream ended without [DONE]";
        } else if (!m_first_choice) {
            out.error = "never received a chunk with choices (no TTFT)";
        } else {
            out.success = true;
        }
        if (!out.success) {
            return;  // vLLM keeps ttft 0 and no ITLs for failed requests
        }
        out.ttft_s = m_ttft_s;
        out.itl_s = std::move(m_itl_s);
        // vLLM's completions client ends at the last choice-bearing chunk; its chat client at the
        // last chunk of any kind (the usage chunk).
        out.e2el_s =
            (m_kind == EndpointKind::kChatCompletions ? m_last_any_s : m_last_choice_s) - m_send_s;
        out.output_tokens = m_completion_tokens.value_or(m_choice_chunks);
        if (m_prompt_tokens) {
            out.input_tokens = *m_prompt_tokens;
        }
    }

private:
    void on_payload(const std::string& payload, double now_s) {
        Result<StreamChunk> chunk = parse_stream_chunk(payload);
        if (!chunk.is_ok()) {
            m_failure = chunk.status().message();
            return;
        }
        if (chunk->error) {
            m_failure = "error event in stream: " + *chunk->error;
            return;
        }
        if (chunk->has_choices) {
            if (!m_first_choice) {
                m_first_choice = true;
                m_ttft_s = now_s - m_send_s;
            } else {
                const double previous =
                    m_kind == EndpointKind::kChatCompletions ? m_last_any_s : m_last_choice_s;
                m_itl_s.push_back(now_s - previous);
            }
            m_last_choice_s = now_s;
            ++m_choice_chunks;
        }
        if (chunk->completion_tokens) {
            m_completion_tokens = chunk->completion_tokens;
        }
        if (chunk->prompt_tokens) {
            m_prompt_tokens = chunk->prompt_tokens;
        }
        m_last_any_s = now_s;
    }

    [[nodiscard]] std::string timeout_message() const {
        return fmt::format("timeout: no complete response within {:g} s (--request-timeout)",
                           m_timeout_s.value_or(0.0));
    }

    EndpointKind m_kind;
    double m_send_s;
    std::optional<double> m_timeout_s;
    int m_status = 0;
    std::string m_error_body;
    SseParser m_parser;
    bool m_first_choice = false;
    double m_ttft_s = 0.0;
    double m_last_any_s;
    double m_last_choice_s;
    int m_choice_chunks = 0;
    std::vector<double> m_itl_s;
    std::optional<int> m_completion_tokens;
    std::optional<int> m_prompt_tokens;
    std::optional<std::string> m_failure;
};

}  // namespace

EndpointKind endpoint_kind_for(std::string_view endpoint_path) {
    constexpr std::string_view kChatSuffix = "chat/completions";
    while (!endpoint_path.empty() && endpoint_path.back() == '/') {
        endpoint_path.remove_suffix(1);
    }
    const bool chat =
        endpoint_path.size() >= kChatSuffix.size() &&
        endpoint_path.substr(endpoint_path.size() - kChatSuffix.size()) == kChatSuffix;
    return chat ? EndpointKind::kChatCompletions : EndpointKind::kCompletions;
}

Result<RequestSender> RequestSender::create(ClientConfig config) {
    if (config.model.empty()) {
        return Status::invalid_argument("the model name is empty");
    }
    if (config.endpoint_path.empty() || config.endpoint_path.front() != '/') {
        return Status::invalid_argument(
            fmt::format("endpoint '{}' must start with '/'", config.endpoint_path));
    }
    if (!config.extra_body_json.empty()) {
        const Result<json> parsed = parse_json(config.extra_body_json, "extra body");
        const json extra = parsed.is_ok() ? *parsed : json(json::value_t::discarded);
        if (extra.is_discarded() || !extra.is_object()) {
            return Status::invalid_argument(
                fmt::format("extra body '{}' is not a JSON object", config.extra_body_json));
        }
    }
    if (config.request_timeout_s &&
        !(*config.request_timeout_s > 0.0 && std::isfinite(*config.request_timeout_s))) {
        return Status::invalid_argument(
            fmt::format("request timeout must be > 0 s (got {})", *config.request_timeout_s));
    }
    return RequestSender(std::move(config));
}

std::string RequestSender::build_body(const workload::Request& request) const {
    std::mt19937_64 rng = prompt_rng(m_config.prompt_seed, request.id);
    const int input_tokens = std::max(1, request.input_tokens);
    json body = {
        {"model", m_config.model}, {"stream", true}, {"stream_options", {{"include_usage", true}}}};
    if (m_config.kind == EndpointKind::kCompletions) {
        std::uniform_int_distribution<int> token(kMinTokenId, kMaxTokenId);
        json ids = json::array();
        for (int i = 0; i < input_tokens; ++i) {
            ids.push_back(token(rng));
        }
        body["prompt"] = std::move(ids);
        body["max_tokens"] = request.output_tokens;
    } else {
        std::uniform_int_distribution<std::size_t> word(0, std::size(kWords) - 1);
        std::string text;
        text.reserve(static_cast<std::size_t>(input_tokens) * 6);
        for (int i = 0; i < input_tokens; ++i) {
            if (i > 0) {
                text.push_back(' ');
            }
            text.append(kWords[word(rng)]);
        }
        body["messages"] = json::array({{{"role", "user"}, {"content", std::move(text)}}});
        body["max_completion_tokens"] = request.output_tokens;
    }
    if (m_config.ignore_eos) {
        body["ignore_eos"] = true;
    }
    if (!m_config.extra_body_json.empty()) {
        // Validated in create(), so this parse succeeds.
        if (Result<json> extra = parse_json(m_config.extra_body_json, "extra body");
            extra.is_ok()) {
            body.update(*extra);
        }
    }
    return body.dump();
}

RequestOutcome RequestSender::send(const workload::Request& request, const Clock& clock) const {
    RequestOutcome out;
    out.id = request.id;
    out.arrival_s = request.arrival_s;
    out.requested_input_tokens = request.input_tokens;
    out.requested_output_tokens = request.output_tokens;
    out.input_tokens = request.input_tokens;
    try {
        const std::optional<double>& timeout = m_config.request_timeout_s;
        std::unique_ptr<httplib::Client> client =
            make_client(m_config.url, timeout.value_or(kDefaultReadTimeoutS));
        httplib::Request req;
        req.method = "POST";
        req.path = m_config.url.path_prefix + m_config.endpoint_path;
        req.headers = base_headers(m_config.api_key);
        req.headers.emplace("Accept", "text/event-stream");
        req.headers.emplace("Content-Type", "application/json");
        req.body = build_body(request);

        out.send_s = clock.now().count();
        StreamTimer timer(m_config.kind, out.send_s, timeout);
        req.response_handler = [&timer](const httplib::Response& res) {
            return timer.on_headers(res.status);
        };
        req.content_receiver = [&timer, &clock](const char* data, std::size_t size,
                                                std::uint64_t /*offset*/, std::uint64_t /*total*/) {
            return timer.on_bytes(std::string_view(data, size), clock.now().count());
        };
        httplib::Response res;
        httplib::Error error = httplib::Error::Success;
        const bool ok = client->send(req, res, error);
        timer.finish(ok, error, clock.now().count(), out);
    } catch (const std::exception& e) {
        // cpp-httplib and nlohmann do not throw here in practice; a request must never take the
        // run down, so anything that does becomes this request's failure.
        out.success = false;
        out.error = fmt::format("internal error: {}", e.what());
    }
    return out;
}

Result<std::string> fetch_first_model(const Url& url, const std::string& api_key) {
    std::unique_ptr<httplib::Client> client = make_client(url, kProbeTimeoutS);
    const std::string path = url.path_prefix + "/v1/models";
    httplib::Result res = client->Get(path, base_headers(api_key));
    if (!res) {
        return Status::unavailable(
            fmt::format("cannot reach {}: {}", url.origin(),
                        pals::http::describe_client_error(res.error(), kConnectTimeoutS)));
    }
    if (res->status != 200) {
        return Status::not_found(fmt::format("GET {} answered HTTP {}: {}; pass --model", path,
                                             res->status, extract_error_message(res->body)));
    }
    const Result<json> parsed = parse_json(res->body, "model list");
    if (parsed.is_ok() && parsed->is_object()) {
        const json& doc = *parsed;
        const auto data = doc.find("data");
        if (data != doc.end() && data->is_array() && !data->empty() && data->front().is_object()) {
            const auto id = data->front().find("id");
            if (id != data->front().end() && id->is_string()) {
                return id->get<std::string>();
            }
        }
    }
    return Status::not_found(fmt::format("GET {} listed no model; pass --model", path));
}

Status check_reachable(const Url& url) {
    std::unique_ptr<httplib::Client> client = make_client(url, kProbeTimeoutS);
    httplib::Result res = client->Get(url.path_prefix + "/v1/models", base_headers(""));
    if (!res) {
        return Status::unavailable(
            fmt::format("cannot reach {}: {}", url.origin(),
                        pals::http::describe_client_error(res.error(), kConnectTimeoutS)));
    }
    return Status::ok();
}

}  // namespace pals::loadgen
