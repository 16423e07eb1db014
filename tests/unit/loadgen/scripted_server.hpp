#pragma once
/// @file scripted_server.hpp
/// @brief A tiny OpenAI-compatible streaming server on loopback (port 0) whose behaviour each
/// request picks through its body, for the loadgen's end-to-end tests.
///
/// Behaviour by the request's "model":
///   ok        stream, then a usage chunk and [DONE]
///   split     as ok, but every event is written in two pieces a few ms apart
///   nousage   as ok without the usage chunk
///   error400  HTTP 400 with an OpenAI error object
///   inband    one chunk, then an in-band error event, then [DONE]
///   close     two chunks, then the connection is dropped
///   nodone    chunks and usage, then the stream ends without [DONE]
///   stall     waits (up to 3 s, or until the server stops) before the first byte
///   deep      one error event nested 200,000 levels deep, then [DONE]
///   endless   bytes without an event separator until the client hangs up (at most 64 MiB)
/// Body fields "test_delay_ms" (default 20) and "test_tokens_per_chunk" (default 1) shape the
/// stream: max_tokens / tokens_per_chunk chunks, one every delay_ms, the first after delay_ms.

#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

namespace pals::loadgen::testing {

class ScriptedServer {
public:
    /// Server threads: enough for every test's requests to stream at once.
    static constexpr int kThreads = 96;
    /// Pending connections the listening socket holds.
    static constexpr int kBacklog = 1024;

    ScriptedServer() {
        m_server.new_task_queue = [] { return new httplib::ThreadPool(kThreads); };
        m_server.set_tcp_nodelay(true);
        m_server.Get("/v1/models", [](const httplib::Request&, httplib::Response& res) {
            res.set_content(R"({"object":"list","data":[{"id":"test-model","object":"model"}]})",
                            "application/json");
        });
        m_server.Post("/v1/completions",
                      [this](const httplib::Request& req, httplib::Response& res) {
                          handle(req, res, false);
                      });
        m_server.Post("/v1/chat/completions",
                      [this](const httplib::Request& req, httplib::Response& res) {
                          handle(req, res, true);
                      });
        // cpp-httplib listens with a backlog of 5: a burst of connects overflows it and the
        // kernel drops connections. Keep the socket and raise the backlog after binding
        // (listen() again on a listening socket updates it on Linux).
        m_server.set_socket_options([this](int sock) {
            const int yes = 1;
            ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
            m_listen_fd = sock;
        });
        m_port = m_server.bind_to_any_port("127.0.0.1");
        if (m_listen_fd >= 0) {
            ::listen(m_listen_fd, kBacklog);
        }
        m_thread = std::thread([this] { m_server.listen_after_bind(); });
        while (!m_server.is_running()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    }
    ScriptedServer(const ScriptedServer&) = delete;
    ScriptedServer& operator=(const ScriptedServer&) = delete;
    ~ScriptedServer() {
        m_stopping = true;
        m_server.stop();
        m_thread.join();
    }

    [[nodiscard]] int port() const { return m_port; }
    [[nodiscard]] std::string url() const { return "http://127.0.0.1:" + std::to_string(m_port); }
    /// Most streams open at the same time so far.
    [[nodiscard]] int max_active() const { return m_max_active.load(); }
    /// Bodies and Authorization headers of every request received.
    [[nodiscard]] std::vector<nlohmann::json> bodies() const {
        std::lock_guard<std::mutex> lock(m_mutex);
        return m_bodies;
    }
    [[nodiscard]] std::vector<std::string> auth_headers() const {
        std::lock_guard<std::mutex> lock(m_mutex);
        return m_auth;
    }

private:
    struct Stream {
        std::string mode;
        bool chat = false;
        int chunks = 0;
        int tokens = 0;
        int prompt_tokens = 0;
        std::chrono::milliseconds delay{20};
        int sent = 0;
        bool finished = false;
        bool active = true;  ///< counted in m_active
    };

    static std::string chunk_json(const Stream& s, const std::string& text) {
        nlohmann::json j;
        if (s.chat) {
            j = {{"id", "chatcmpl-1"},
                 {"object", "chat.completion.chunk"},
                 {"choices",
                  {{{"index", 0}, {"delta", {{"content", text}}}, {"finish_reason", nullptr}}}}};
        } else {
            j = {{"id", "cmpl-1"},
                 {"object", "text_completion"},
                 {"choices", {{{"index", 0}, {"text", text}, {"finish_reason", nullptr}}}}};
        }
        return "data: " + j.dump() + "\n\n";
    }

    static std::string usage_json(const Stream& s) {
        const nlohmann::json j = {{"id", "cmpl-1"},
                                  {"choices", nlohmann::json::array()},
                                  {"usage",
                                   {{"prompt_tokens", s.prompt_tokens},
                                    {"completion_tokens", s.tokens},
                                    {"total_tokens", s.prompt_tokens + s.tokens}}}};
        return "data: " + j.dump() + "\n\n";
    }

    /// Writes one event, in two pieces split inside the JSON for the "split" mode.
    void write_event(const Stream& s, httplib::DataSink& sink, const std::string& event) const {
        if (s.mode != "split") {
            sink.write(event.data(), event.size());
            return;
        }
        const std::size_t half = event.size() / 2;
        sink.write(event.data(), half);
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        sink.write(event.data() + half, event.size() - half);
    }

    void handle(const httplib::Request& req, httplib::Response& res, bool chat) {
        const nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
        {
            std::lock_guard<std::mutex> lock(m_mutex);
            m_bodies.push_back(body);
            m_auth.push_back(req.get_header_value("Authorization"));
        }
        auto s = std::make_shared<Stream>();
        s->mode = body.value("model", "ok");
        s->chat = chat;
        s->tokens = body.value(chat ? "max_completion_tokens" : "max_tokens", 5);
        const int per_chunk = std::max(1, body.value("test_tokens_per_chunk", 1));
        s->chunks = std::max(1, s->tokens / per_chunk);
        s->delay = std::chrono::milliseconds(body.value("test_delay_ms", 20));
        if (body.contains("prompt") && body["prompt"].is_array()) {
            s->prompt_tokens = static_cast<int>(body["prompt"].size());
        } else {
            s->prompt_tokens = 7;
        }
        if (s->mode == "error400") {
            res.status = 400;
            res.set_content(
                R"({"error":{"message":"max_tokens is too large","type":"BadRequestError","code":400}})",
                "application/json");
            return;
        }
        const int active = ++m_active;
        int seen = m_max_active.load();
        while (active > seen && !m_max_active.compare_exchange_weak(seen, active)) {
        }
        res.set_chunked_content_provider(
            "text/event-stream",
            [this, s](std::size_t /*offset*/, httplib::DataSink& sink) { return step(*s, sink); },
            [this, s](bool /*success*/) { release(*s); });
    }

    /// Ends a stream's share of m_active (once): before the last event is written, so a client
    /// that saw the end cannot start another request while this one still counts.
    void release(Stream& s) {
        if (s.active) {
            s.active = false;
            --m_active;
        }
    }

    /// One call of the content provider: writes the next event (or ends the stream).
    bool step(Stream& s, httplib::DataSink& sink) {
        if (s.mode == "deep") {
            constexpr std::size_t kDepth = 200000;
            const std::string event = "data: {\"error\": " + std::string(kDepth, '[') +
                                      std::string(kDepth, ']') + "}\n\ndata: [DONE]\n\n";
            release(s);
            sink.write(event.data(), event.size());
            sink.done();
            return true;
        }
        if (s.mode == "endless") {
            constexpr std::size_t kChunkBytes = std::size_t{64} << 10;
            constexpr std::size_t kMaxBytes = std::size_t{64} << 20;
            const std::string chunk(kChunkBytes, 'a');
            release(s);
            for (std::size_t sent = 0; sent < kMaxBytes && !m_stopping; sent += kChunkBytes) {
                if (!sink.write(chunk.data(), chunk.size())) {
                    return false;  // the client hung up
                }
            }
            return false;
        }
        if (s.sent == 0 && s.mode == "stall") {
            const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(3);
            while (!m_stopping && std::chrono::steady_clock::now() < until) {
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
            }
            return false;
        }
        if (s.sent == 0 && !s.finished) {
            const std::string comment = ": keep-alive\n\n";
            sink.write(comment.data(), comment.size());
            if (s.chat) {
                // vLLM's first chat delta carries the role and an empty content.
                std::this_thread::sleep_for(s.delay);
                const nlohmann::json role = {
                    {"object", "chat.completion.chunk"},
                    {"choices",
                     {{{"index", 0}, {"delta", {{"role", "assistant"}, {"content", ""}}}}}}};
                const std::string event = "data: " + role.dump() + "\n\n";
                sink.write(event.data(), event.size());
                s.finished = true;  // marks "role sent"; content chunks follow immediately
                return true;
            }
        }
        if (s.sent < s.chunks) {
            if (!(s.chat && s.sent == 0)) {
                std::this_thread::sleep_for(s.delay);
            }
            write_event(s, sink, chunk_json(s, "tok"));
            ++s.sent;
            if (s.mode == "close" && s.sent == 2) {
                return false;  // drop the connection mid-stream
            }
            if (s.mode == "inband" && s.sent == 1) {
                const std::string error =
                    R"(data: {"error":{"message":"engine died","type":"InternalServerError","code":500}})"
                    "\n\n";
                release(s);
                sink.write(error.data(), error.size());
                const std::string done = "data: [DONE]\n\n";
                sink.write(done.data(), done.size());
                sink.done();
            }
            return true;
        }
        release(s);
        if (s.mode != "nousage") {
            const std::string usage = usage_json(s);
            sink.write(usage.data(), usage.size());
        }
        if (s.mode != "nodone") {
            const std::string done = "data: [DONE]\n\n";
            sink.write(done.data(), done.size());
        }
        sink.done();
        return true;
    }

    httplib::Server m_server;
    std::thread m_thread;
    int m_port = 0;
    int m_listen_fd = -1;
    std::atomic<bool> m_stopping{false};
    std::atomic<int> m_active{0};
    std::atomic<int> m_max_active{0};
    mutable std::mutex m_mutex;
    std::vector<nlohmann::json> m_bodies;
    std::vector<std::string> m_auth;
};

}  // namespace pals::loadgen::testing
