#pragma once
/// @file node_coupling.hpp
/// @brief How `pals sim-serve` meets the processes that control a real vLLM node: the batch-cap
/// and step-token files of the PALS vLLM plugin, and the fake libnvidia-ml.so.1's state file (power
/// limits and locked clocks in, each GPU's power out).
///
/// Thread-safety: not thread-safe; owned by the simulation thread.

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fake_nvml/fake_driver.hpp"
#include "pals/common/status.hpp"
#include "pals/sim/gpu_spec.hpp"

namespace pals::serve {

/// A file of the PALS vLLM plugin (python/src/pals_vllm/batch_cap.py) as the plugin reads it:
/// the batch cap (`what` "batch cap", launch value max_num_seqs) or the per-step token budget
/// ("step-token budget", max_num_batched_tokens). Exactly 8 bytes, little-endian uint64. A
/// missing, unreadable or malformed file, or 0, means none: the launch value. Values are
/// clamped to [1, launch].
class PluginFile {
public:
    PluginFile(std::string path, int launch, std::string what, std::string launch_name);
    /// Reads the file now; logs once each time its state (absent, malformed, valid) changes.
    /// Returns the value to apply (the launch value without one).
    [[nodiscard]] int read();
    /// The value the last read() found, unclamped (0: none).
    [[nodiscard]] int requested() const { return m_requested; }
    [[nodiscard]] const std::string& path() const { return m_path; }

private:
    enum class FileState { kUnknown, kAbsent, kMalformed, kValid };
    std::string m_path;
    int m_launch;
    std::string m_what;
    std::string m_launch_name;
    int m_requested = 0;
    FileState m_state = FileState::kUnknown;
};

/// The acknowledgement the PALS vLLM plugin writes beside each of its files (docs/vllm.md):
/// written atomically when (applied, requested, launch) changes and at least every `heartbeat`.
class PluginAckWriter {
public:
    explicit PluginAckWriter(std::string path,
                             std::chrono::milliseconds heartbeat = std::chrono::seconds(1));
    /// Writes when something changed or the heartbeat is due; a failed write is logged once
    /// (until one succeeds) and retried at the next heartbeat.
    void update(int applied, int requested, int launch);
    [[nodiscard]] const std::string& path() const { return m_path; }
    [[nodiscard]] std::uint64_t writes() const { return m_writes; }

private:
    std::string m_path;
    std::chrono::milliseconds m_heartbeat;
    std::optional<std::array<int, 3>> m_last;
    std::chrono::steady_clock::time_point m_last_write;
    bool m_failed = false;
    std::uint64_t m_writes = 0;
};

/// The controls other processes set on one GPU through the fake NVML.
struct GpuControls {
    double enforced_limit_w = 0.0;
    double locked_max_mhz = 0.0;  ///< 0: not locked
};

/// The node's GPUs [gpu_offset, gpu_offset + gpu_count) in a fake NVML state file.
class NvmlCoupling {
public:
    /// Reads and checks the configuration (load kind "external", GPU type `node_gpu`, enough
    /// GPUs) and opens the state file. Errors: kInvalidArgument / kNotFound naming the file.
    [[nodiscard]] static Result<std::unique_ptr<NvmlCoupling>> open(const std::string& config_path,
                                                                    const std::string& state_path,
                                                                    int gpu_offset, int gpu_count,
                                                                    const sim::GpuSpec& node_gpu);

    /// The controls of the node's GPUs when the state file changed since the last call (the
    /// first call always reads); nullopt when unchanged or unreadable.
    [[nodiscard]] std::optional<std::vector<GpuControls>> read_if_changed();
    /// Writes the node's GPU limits (a --power-cap / --locked-clock given at launch).
    [[nodiscard]] Status set_controls(double limit_w, double locked_clock_mhz);
    /// Records each node GPU's power and clock (readings.size() == gpu_count).
    [[nodiscard]] Status report(const std::vector<power::fake_nvml::ExternalReading>& readings);

    [[nodiscard]] std::uint64_t state_reads() const { return m_state_reads; }
    [[nodiscard]] const std::string& state_path() const { return m_state_path; }

private:
    NvmlCoupling() = default;

    power::fake_nvml::FakeDriver m_driver;
    std::string m_state_path;
    int m_gpu_offset = 0;
    int m_gpu_count = 0;
    /// The state file's identity at the last read (rename replaces the inode on every write).
    struct FileStamp {
        std::uint64_t inode = 0;
        std::int64_t mtime_ns = 0;
        std::int64_t size = -1;
        bool operator==(const FileStamp&) const = default;
    };
    std::optional<FileStamp> m_last_stamp;
    std::uint64_t m_state_reads = 0;
};

}  // namespace pals::serve
