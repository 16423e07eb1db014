#include "pals/engine/vllm/vllm_engine.hpp"

#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <utility>

#include "pals/common/file_util.hpp"
#include "pals/common/http_guard.hpp"

namespace pals::engine::vllm {

std::string encode_batch_cap(std::uint64_t batch_cap) {
    std::string bytes(8, '\0');
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        bytes[i] = static_cast<char>((batch_cap >> (8 * i)) & 0xFFU);
    }
    return bytes;
}

Result<std::uint64_t> decode_batch_cap(std::string_view bytes) {
    if (bytes.size() != 8) {
        return Status::invalid_argument("batch-cap file: expected 8 bytes, got " +
                                        std::to_string(bytes.size()));
    }
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        v |= static_cast<std::uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
    }
    return v;
}

VllmEngine::VllmEngine(VllmEngineConfig config, Clock& clock)
    : m_config(std::move(config)), m_clock(clock) {
    m_config.max_num_seqs = std::max(1, m_config.max_num_seqs);
    m_batch_cap = m_config.max_num_seqs;
}

std::string VllmEngine::metrics_url() const {
    return "http://" + m_config.host + ":" + std::to_string(m_config.port) + "/metrics";
}

Result<EngineSnapshot> VllmEngine::snapshot() {
    const std::string url = metrics_url();
    std::string body;
    try {
        httplib::Client client(m_config.host, m_config.port);
        const auto timeout =
            std::chrono::duration_cast<std::chrono::microseconds>(m_config.timeout);
        client.set_connection_timeout(timeout);
        client.set_read_timeout(timeout);
        client.set_keep_alive(false);
        const httplib::Result response = client.Get("/metrics");
        if (!response) {
            return Status::unavailable(
                "GET " + url + " failed: " +
                pals::http::describe_client_error(response.error(), m_config.timeout.count()));
        }
        if (response->status != 200) {
            return Status::unavailable("GET " + url + " answered HTTP " +
                                       std::to_string(response->status));
        }
        body = response->body;
    } catch (const std::exception& e) {
        return Status::unavailable("GET " + url + " failed: " + e.what());
    }
    PALS_ASSIGN_OR_RETURN(
        auto snap, snapshot_from_text(body, m_config.filter, m_clock.now()).with_prefix(url));
    snap.batch_cap = m_batch_cap;
    return snap;
}

Status VllmEngine::set_batch_cap(int batch_cap) {
    const int clamped = std::clamp(batch_cap, 1, m_config.max_num_seqs);
    PALS_RETURN_IF_ERROR(write_file_atomic(m_config.batch_cap_path,
                                           encode_batch_cap(static_cast<std::uint64_t>(clamped)))
                             .with_prefix("batch-cap file"));
    m_batch_cap = clamped;
    m_published = true;
    return Status::ok();
}

Status VllmEngine::refresh_batch_cap() {
    return m_published ? set_batch_cap(m_batch_cap) : Status::ok();
}

}  // namespace pals::engine::vllm
