#pragma once
/// @file vllm_engine.hpp
/// @brief A vLLM server as an engine::ServingEngine: reads it by scraping its Prometheus
/// `/metrics` endpoint and sets its batch cap and per-step token budget through the files the
/// PALS vLLM scheduler plugin (python/pals_vllm) re-reads on every scheduler step (docs/vllm.md).

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "pals/common/clock.hpp"
#include "pals/common/status.hpp"
#include "pals/engine/serving_engine.hpp"
#include "pals/engine/vllm/vllm_metrics.hpp"

namespace pals::engine::vllm {

/// How to reach and drive one vLLM server (one DP engine or all of them, see `filter`).
struct VllmEngineConfig {
    std::string name = "vllm";  ///< engine_name()
    std::string host = "127.0.0.1";
    int port = 8000;
    Seconds timeout{2.0};     ///< connect and read timeout of one scrape
    VllmSeriesFilter filter;  ///< which model / DP engine's series to read (empty: all, summed)
    int max_num_seqs = 256;   ///< the server's launch --max-num-seqs (>= 1)
    std::vector<int> gpus;    ///< indices in the node's GpuBackend
    std::filesystem::path batch_cap_path = "/run/pals/batch_cap";  ///< $PALS_BATCH_CAP_FILE
    /// The plugin's acknowledgement; empty: batch_cap_path + ".ack" (where the plugin writes it).
    std::filesystem::path batch_cap_ack_path;
    /// An acknowledgement not renewed for this long (by the engine's clock for the first read,
    /// by `clock` after) is stale; the plugin renews it every second.
    Seconds ack_stale_after{5.0};
    /// The server's launch --max-num-batched-tokens: the largest per-step token budget PALS may
    /// set. 0: the launch value the plugin acknowledges (no budget is set before it does: an
    /// engine without the plugin's step-token support never gets one).
    int max_num_batched_tokens = 0;
    /// The plugin's $PALS_STEP_TOKENS_FILE; empty: batch_cap_path + ".step_tokens" (the
    /// plugin's default). Its acknowledgement is this path + ".ack".
    std::filesystem::path step_tokens_path;
};

/// Reads one acknowledgement file of the plugin (the batch cap's or the step-token budget's)
/// and tracks its renewals, to tell a live engine from one that stopped answering.
class AckReader {
public:
    explicit AckReader(std::filesystem::path path) : m_path(std::move(path)) {}
    /// kMissing when absent or malformed; kStale when its time stamp has not changed for
    /// `stale_after` by `clock` (or, at the first read, is older than that by the wall clock);
    /// else kFresh.
    [[nodiscard]] BatchCapAck read(const Clock& clock, Seconds stale_after);
    [[nodiscard]] const std::filesystem::path& path() const { return m_path; }

private:
    std::filesystem::path m_path;
    std::uint64_t m_time_us = 0;  ///< the time stamp last read (0: none)
    Seconds m_renewed_at{0.0};    ///< clock time at which that time stamp was first seen
};

/// The acknowledgement file's content (docs/vllm.md): 40 bytes, little-endian: "PALSACK1", then
/// applied, requested, launch max_num_seqs and the Unix time in microseconds, each uint64.
struct BatchCapAckRecord {
    std::uint64_t applied = 0;
    std::uint64_t requested = 0;
    std::uint64_t launch = 0;
    std::uint64_t time_unix_us = 0;
};
inline constexpr std::size_t kBatchCapAckBytes = 40;
/// The 40 bytes of `record`.
[[nodiscard]] std::string encode_batch_cap_ack(const BatchCapAckRecord& record);
/// kInvalidArgument unless exactly 40 bytes starting with "PALSACK1".
[[nodiscard]] Result<BatchCapAckRecord> decode_batch_cap_ack(std::string_view bytes);
/// config.batch_cap_ack_path, or batch_cap_path + ".ack".
[[nodiscard]] std::filesystem::path batch_cap_ack_path(const VllmEngineConfig& config);
/// config.step_tokens_path, or batch_cap_path + ".step_tokens".
[[nodiscard]] std::filesystem::path step_tokens_path(const VllmEngineConfig& config);

/// Encodes a batch cap as the plugin reads it: 8 bytes, little-endian unsigned 64-bit.
[[nodiscard]] std::string encode_batch_cap(std::uint64_t batch_cap);
/// Decodes the 8-byte file content; kInvalidArgument unless it is exactly 8 bytes.
[[nodiscard]] Result<std::uint64_t> decode_batch_cap(std::string_view bytes);

/// Thread-safety: not thread-safe; one owner calls it (as every ServingEngine).
class VllmEngine final : public ServingEngine {
public:
    /// `clock` stamps snapshots and must outlive the engine. Nothing is contacted or written
    /// here: the cap in force is max_num_seqs until set_batch_cap() is called.
    VllmEngine(VllmEngineConfig config, Clock& clock);

    [[nodiscard]] std::string_view engine_name() const override { return m_config.name; }
    /// GET http://HOST:PORT/metrics (timeout from the config) and snapshot_from_text(); the
    /// snapshot's batch_cap is the cap last published, its batch_cap_ack the acknowledgement
    /// read now (read_batch_cap_ack()). kUnavailable naming the URL when the server does not
    /// answer or answers other than 200; kInvalidArgument (prefixed with the URL) when the text
    /// is malformed or lacks a required metric.
    [[nodiscard]] Result<EngineSnapshot> snapshot() override;
    /// The configured max_num_seqs, or the engine's launch value when its acknowledgement
    /// reports a smaller one (logged once per value, with both numbers).
    [[nodiscard]] int max_batch_cap() const override;
    /// Clamps to [1, max_num_seqs] and writes the cap file atomically (temporary file + rename).
    /// Errors come from the file write; the cap in force is then unchanged.
    [[nodiscard]] Status set_batch_cap(int batch_cap) override;
    /// Rewrites the cap file and the step-token file with the values last published (a new
    /// mtime for the plugin's expiry, $PALS_BATCH_CAP_MAX_AGE_S on the engine side); neither
    /// before its first set_*() call.
    [[nodiscard]] Status refresh_controls() override;
    /// The configured max_num_batched_tokens, else the launch value the plugin's step-token
    /// acknowledgement reports (0 until one is read: no budget can be set).
    [[nodiscard]] int max_step_tokens() const override;
    /// Writes the step-token file atomically: the budget clamped to [1, max_step_tokens()],
    /// or 0 (no budget: the launch value). Errors come from the file write.
    [[nodiscard]] Status set_step_tokens(int tokens) override;
    [[nodiscard]] std::vector<int> gpus() const override { return m_config.gpus; }

    /// The cap last published (max_batch_cap() before the first set_batch_cap()).
    [[nodiscard]] int batch_cap() const { return m_published ? m_batch_cap : max_batch_cap(); }
    /// Reads the plugin's acknowledgement file: kMissing when absent or malformed; kStale when
    /// its time stamp has not changed for ack_stale_after (or, at the first read, is older than
    /// that by the wall clock); else kFresh. A launch max_num_seqs that differs from the
    /// configured one is logged (a warning naming both) when first seen.
    [[nodiscard]] BatchCapAck read_batch_cap_ack();
    /// Reads the step-token acknowledgement (as AckReader::read), and learns the engine's
    /// launch max_num_batched_tokens from a fresh one.
    [[nodiscard]] BatchCapAck read_step_tokens_ack();
    /// The launch max_num_seqs the engine acknowledged (0: none seen yet).
    [[nodiscard]] int engine_max_num_seqs() const { return m_engine_launch; }
    /// "http://HOST:PORT/metrics".
    [[nodiscard]] std::string metrics_url() const;

private:
    VllmEngineConfig m_config;
    Clock& m_clock;
    int m_batch_cap;
    bool m_published = false;  ///< set_batch_cap() has written the file at least once
    AckReader m_ack;
    int m_engine_launch = 0;  ///< launch max_num_seqs last acknowledged (0: unknown)
    std::filesystem::path m_step_tokens_path;
    AckReader m_step_tokens_ack;
    int m_step_tokens = 0;  ///< the budget last published (0: none, the launch value)
    bool m_step_tokens_published = false;
    int m_engine_launch_tokens = 0;  ///< launch max_num_batched_tokens acknowledged (0: unknown)
};

}  // namespace pals::engine::vllm
