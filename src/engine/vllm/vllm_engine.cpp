#include "pals/engine/vllm/vllm_engine.hpp"

#include <httplib.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <exception>
#include <limits>
#include <utility>

#include "pals/common/file_util.hpp"
#include "pals/common/http_guard.hpp"
#include "pals/common/log.hpp"

namespace pals::engine::vllm {

namespace {

constexpr std::string_view kAckMagic = "PALSACK1";
constexpr double kMicrosecondsPerSecond = 1e6;

void put_u64(std::string& out, std::size_t at, std::uint64_t v) {
    for (std::size_t i = 0; i < 8; ++i) {
        out[at + i] = static_cast<char>((v >> (8 * i)) & 0xFFU);
    }
}

std::uint64_t get_u64(std::string_view in, std::size_t at) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < 8; ++i) {
        v |= static_cast<std::uint64_t>(static_cast<unsigned char>(in[at + i])) << (8 * i);
    }
    return v;
}

int to_int(std::uint64_t v) {
    return static_cast<int>(std::min<std::uint64_t>(v, std::numeric_limits<int>::max()));
}

}  // namespace

std::string encode_batch_cap(std::uint64_t batch_cap) {
    std::string bytes(8, '\0');
    put_u64(bytes, 0, batch_cap);
    return bytes;
}

Result<std::uint64_t> decode_batch_cap(std::string_view bytes) {
    if (bytes.size() != 8) {
        return Status::invalid_argument("batch-cap file: expected 8 bytes, got " +
                                        std::to_string(bytes.size()));
    }
    return get_u64(bytes, 0);
}

std::string encode_batch_cap_ack(const BatchCapAckRecord& record) {
    std::string bytes(kBatchCapAckBytes, '\0');
    std::copy(kAckMagic.begin(), kAckMagic.end(), bytes.begin());
    put_u64(bytes, 8, record.applied);
    put_u64(bytes, 16, record.requested);
    put_u64(bytes, 24, record.launch);
    put_u64(bytes, 32, record.time_unix_us);
    return bytes;
}

Result<BatchCapAckRecord> decode_batch_cap_ack(std::string_view bytes) {
    if (bytes.size() != kBatchCapAckBytes) {
        return Status::invalid_argument("batch-cap acknowledgement: expected 40 bytes, got " +
                                        std::to_string(bytes.size()));
    }
    if (bytes.substr(0, kAckMagic.size()) != kAckMagic) {
        return Status::invalid_argument("batch-cap acknowledgement: it does not start with " +
                                        std::string(kAckMagic));
    }
    return BatchCapAckRecord{get_u64(bytes, 8), get_u64(bytes, 16), get_u64(bytes, 24),
                             get_u64(bytes, 32)};
}

std::filesystem::path batch_cap_ack_path(const VllmEngineConfig& config) {
    if (!config.batch_cap_ack_path.empty()) {
        return config.batch_cap_ack_path;
    }
    std::filesystem::path p = config.batch_cap_path;
    p += ".ack";
    return p;
}

std::filesystem::path step_tokens_path(const VllmEngineConfig& config) {
    if (!config.step_tokens_path.empty()) {
        return config.step_tokens_path;
    }
    std::filesystem::path p = config.batch_cap_path;
    p += ".step_tokens";
    return p;
}

BatchCapAck AckReader::read(const Clock& clock, Seconds stale_after) {
    BatchCapAck ack;
    ack.source = m_path.string();
    std::array<char, kBatchCapAckBytes + 1> buffer{};
    std::size_t n = 0;
    std::FILE* f = std::fopen(ack.source.c_str(), "rbe");
    if (f == nullptr) {
        ack.state = BatchCapAck::State::kMissing;
        m_time_us = 0;
        return ack;
    }
    n = std::fread(buffer.data(), 1, buffer.size(), f);
    std::fclose(f);
    const Result<BatchCapAckRecord> record =
        decode_batch_cap_ack(std::string_view(buffer.data(), n));
    if (!record.is_ok()) {
        ack.state = BatchCapAck::State::kMissing;
        ack.source += " (" + record.status().message() + ")";
        m_time_us = 0;
        return ack;
    }
    ack.applied = to_int(record->applied);
    ack.requested = to_int(record->requested);
    ack.launch = to_int(record->launch);
    const Seconds now = clock.now();
    if (record->time_unix_us != m_time_us) {
        const bool first = m_time_us == 0;
        m_time_us = record->time_unix_us;
        m_renewed_at = now;
        if (first) {
            // Its age by the wall clock that stamped it: an acknowledgement left by an engine
            // that is gone is stale from the first read, not stale_after later.
            const double wall_now_us = std::chrono::duration<double, std::micro>(
                                           std::chrono::system_clock::now().time_since_epoch())
                                           .count();
            const double age_s =
                (wall_now_us - static_cast<double>(record->time_unix_us)) / kMicrosecondsPerSecond;
            if (age_s > 0.0) {
                m_renewed_at = now - Seconds{age_s};
            }
        }
    }
    ack.age_s = (now - m_renewed_at).count();
    ack.state =
        ack.age_s > stale_after.count() ? BatchCapAck::State::kStale : BatchCapAck::State::kFresh;
    return ack;
}

VllmEngine::VllmEngine(VllmEngineConfig config, Clock& clock)
    : m_config(std::move(config))
    , m_clock(clock)
    , m_ack(batch_cap_ack_path(m_config))
    , m_step_tokens_path(step_tokens_path(m_config))
    , m_step_tokens_ack(std::filesystem::path(m_step_tokens_path.string() + ".ack")) {
    m_config.max_num_seqs = std::max(1, m_config.max_num_seqs);
    m_config.max_num_batched_tokens = std::max(0, m_config.max_num_batched_tokens);
    m_batch_cap = m_config.max_num_seqs;
}

int VllmEngine::max_batch_cap() const {
    return m_engine_launch > 0 ? std::min(m_config.max_num_seqs, m_engine_launch)
                               : m_config.max_num_seqs;
}

int VllmEngine::max_step_tokens() const {
    if (m_config.max_num_batched_tokens > 0) {
        return m_engine_launch_tokens > 0
                   ? std::min(m_config.max_num_batched_tokens, m_engine_launch_tokens)
                   : m_config.max_num_batched_tokens;
    }
    return m_engine_launch_tokens;
}

BatchCapAck VllmEngine::read_batch_cap_ack() {
    BatchCapAck ack = m_ack.read(m_clock, m_config.ack_stale_after);
    if (ack.state == BatchCapAck::State::kFresh && ack.launch > 0 &&
        ack.launch != m_engine_launch) {
        const bool was_known = m_engine_launch > 0;
        m_engine_launch = ack.launch;
        if (ack.launch != m_config.max_num_seqs) {
            PALS_LOG_WARN(
                "{}: the engine was launched with max_num_seqs {} (its acknowledgement {}) but "
                "the group's max_num_seqs is {}: PALS sets batch caps up to {}; set "
                "max_num_seqs = {} for this group in the configuration",
                m_config.name, ack.launch, ack.source, m_config.max_num_seqs, max_batch_cap(),
                ack.launch);
        } else if (was_known) {
            PALS_LOG_INFO("{}: the engine's launch max_num_seqs is {} again, as configured",
                          m_config.name, ack.launch);
        }
    }
    return ack;
}

BatchCapAck VllmEngine::read_step_tokens_ack() {
    BatchCapAck ack = m_step_tokens_ack.read(m_clock, m_config.ack_stale_after);
    if (ack.state == BatchCapAck::State::kFresh && ack.launch > 0 &&
        ack.launch != m_engine_launch_tokens) {
        m_engine_launch_tokens = ack.launch;
        if (m_config.max_num_batched_tokens > 0 && ack.launch != m_config.max_num_batched_tokens) {
            PALS_LOG_WARN(
                "{}: the engine was launched with max_num_batched_tokens {} (its "
                "acknowledgement {}) but the group's max_num_batched_tokens is {}: PALS sets "
                "step-token budgets up to {}",
                m_config.name, ack.launch, ack.source, m_config.max_num_batched_tokens,
                max_step_tokens());
        } else {
            PALS_LOG_INFO("{}: the engine's launch max_num_batched_tokens is {} ({})",
                          m_config.name, ack.launch, ack.source);
        }
    }
    return ack;
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
    snap.batch_cap_ack = read_batch_cap_ack();
    snap.batch_cap = batch_cap();
    snap.batch_cap_requested = m_published;
    snap.step_tokens_ack = read_step_tokens_ack();
    const int launch_tokens = max_step_tokens();
    snap.step_tokens = m_step_tokens > 0 ? m_step_tokens : launch_tokens;
    return snap;
}

Status VllmEngine::set_batch_cap(int batch_cap) {
    const int clamped = std::clamp(batch_cap, 1, max_batch_cap());
    PALS_RETURN_IF_ERROR(write_file_atomic(m_config.batch_cap_path,
                                           encode_batch_cap(static_cast<std::uint64_t>(clamped)))
                             .with_prefix("batch-cap file"));
    m_batch_cap = clamped;
    m_published = true;
    return Status::ok();
}

Status VllmEngine::set_step_tokens(int tokens) {
    const int max_tokens = max_step_tokens();
    if (max_tokens <= 0) {
        return Status::invalid_argument(
            m_config.name +
            ": no per-step token budget: the engine's launch "
            "max_num_batched_tokens is not known (set max_num_batched_tokens for "
            "the group, or run the PALS plugin that acknowledges it)");
    }
    const int value = tokens > 0 ? std::clamp(tokens, 1, max_tokens) : 0;
    PALS_RETURN_IF_ERROR(
        write_file_atomic(m_step_tokens_path, encode_batch_cap(static_cast<std::uint64_t>(value)))
            .with_prefix("step-token file"));
    m_step_tokens = value;
    m_step_tokens_published = true;
    return Status::ok();
}

Status VllmEngine::refresh_controls() {
    if (m_published) {
        PALS_RETURN_IF_ERROR(set_batch_cap(m_batch_cap));
    }
    if (m_step_tokens_published) {
        PALS_RETURN_IF_ERROR(set_step_tokens(m_step_tokens));
    }
    return Status::ok();
}

}  // namespace pals::engine::vllm
