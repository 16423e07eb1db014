#include "serve/node_coupling.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cstdio>

#include "pals/common/file_util.hpp"
#include "pals/common/log.hpp"
#include "pals/engine/vllm/vllm_engine.hpp"

namespace pals::serve {

namespace fake = power::fake_nvml;

namespace {

/// Bytes read from the batch-cap file: one more than a valid file holds, to see a long one.
constexpr std::size_t kBatchCapReadBytes = 9;
/// A requested cap is reported up to this (an int).
constexpr std::uint64_t kMaxRequested = 0x7FFFFFFF;

}  // namespace

PluginFile::PluginFile(std::string path, int launch, std::string what, std::string launch_name)
    : m_path(std::move(path))
    , m_launch(std::max(1, launch))
    , m_what(std::move(what))
    , m_launch_name(std::move(launch_name)) {}

int PluginFile::read() {
    std::array<char, kBatchCapReadBytes> buffer{};
    std::size_t n = 0;
    bool opened = false;
    if (std::FILE* f = std::fopen(m_path.c_str(), "rbe"); f != nullptr) {
        opened = true;
        n = std::fread(buffer.data(), 1, buffer.size(), f);
        std::fclose(f);
    }
    m_requested = 0;
    if (!opened) {
        if (m_state != FileState::kAbsent) {
            PALS_LOG_INFO("sim-serve: {} file {} absent: {} = {} {}", m_what, m_path, m_what,
                          m_launch_name, m_launch);
            m_state = FileState::kAbsent;
        }
        return m_launch;
    }
    Result<std::uint64_t> cap = engine::vllm::decode_batch_cap(std::string_view(buffer.data(), n));
    if (!cap.is_ok()) {
        if (m_state != FileState::kMalformed) {
            PALS_LOG_WARN("sim-serve: {} file {} is malformed ({} bytes, expected 8): {} = {} {}",
                          m_what, m_path, n, m_what, m_launch_name, m_launch);
            m_state = FileState::kMalformed;
        }
        return m_launch;
    }
    if (m_state != FileState::kValid) {
        PALS_LOG_INFO("sim-serve: reading the {} from {}", m_what, m_path);
        m_state = FileState::kValid;
    }
    if (cap.value() == 0) {
        return m_launch;  // the plugin's "none"
    }
    m_requested = static_cast<int>(
        std::min<std::uint64_t>(cap.value(), static_cast<std::uint64_t>(kMaxRequested)));
    return static_cast<int>(
        std::min<std::uint64_t>(cap.value(), static_cast<std::uint64_t>(m_launch)));
}

PluginAckWriter::PluginAckWriter(std::string path, std::chrono::milliseconds heartbeat)
    : m_path(std::move(path)), m_heartbeat(heartbeat) {}

void PluginAckWriter::update(int applied, int requested, int launch) {
    const std::array<int, 3> state = {applied, requested, launch};
    const auto now = std::chrono::steady_clock::now();
    if (m_last && *m_last == state && now - m_last_write < m_heartbeat) {
        return;
    }
    engine::vllm::BatchCapAckRecord record;
    record.applied = static_cast<std::uint64_t>(std::max(0, applied));
    record.requested = static_cast<std::uint64_t>(std::max(0, requested));
    record.launch = static_cast<std::uint64_t>(std::max(0, launch));
    record.time_unix_us =
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count());
    m_last_write = now;
    const Status written = write_file_atomic(m_path, engine::vllm::encode_batch_cap_ack(record));
    if (!written.is_ok()) {
        if (!m_failed) {
            PALS_LOG_WARN("sim-serve: cannot write the acknowledgement {}: {}", m_path,
                          written.message());
        }
        m_failed = true;
        m_last = state;  // retried at the next heartbeat, not every tick
        return;
    }
    m_failed = false;
    m_last = state;
    ++m_writes;
}

Result<std::unique_ptr<NvmlCoupling>> NvmlCoupling::open(const std::string& config_path,
                                                         const std::string& state_path,
                                                         int gpu_offset, int gpu_count,
                                                         const sim::GpuSpec& node_gpu) {
    PALS_ASSIGN_OR_RETURN(std::string text, read_file(config_path).with_prefix("fake NVML config"));
    std::string error;
    std::optional<fake::FakeConfig> config = fake::parse_config(text, error);
    if (!config) {
        return Status::invalid_argument("fake NVML config " + config_path + ": " + error);
    }
    if (config->load.kind != "external") {
        return Status::invalid_argument("fake NVML config " + config_path +
                                        ": the load must be \"external\" (it is \"" +
                                        config->load.kind + "\")");
    }
    if (config->spec.name != node_gpu.name) {
        return Status::invalid_argument("fake NVML config " + config_path + ": its gpu " +
                                        config->spec.name + " is not the node's " + node_gpu.name);
    }
    if (gpu_offset < 0 || gpu_offset + gpu_count > config->count) {
        return Status::invalid_argument("--gpu-offset " + std::to_string(gpu_offset) +
                                        ": the node's " + std::to_string(gpu_count) +
                                        " GPUs do not fit in the " + std::to_string(config->count) +
                                        " GPUs of " + config_path);
    }
    if (state_path.empty()) {
        return Status::invalid_argument("a fake NVML state file path is required");
    }
    std::unique_ptr<NvmlCoupling> coupling(new NvmlCoupling());
    coupling->m_state_path = state_path;
    coupling->m_gpu_offset = gpu_offset;
    coupling->m_gpu_count = gpu_count;
    const power::nvml::ReturnCode rc = coupling->m_driver.init(std::move(*config), state_path);
    if (rc != power::nvml::kSuccess) {
        return Status::invalid_argument("fake NVML state " + state_path + ": " +
                                        coupling->m_driver.last_error());
    }
    return coupling;
}

std::optional<std::vector<GpuControls>> NvmlCoupling::read_if_changed() {
    struct stat st {};
    if (::stat(m_state_path.c_str(), &st) == 0) {
        const FileStamp stamp{
            static_cast<std::uint64_t>(st.st_ino),
            static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
            static_cast<std::int64_t>(st.st_size)};
        if (m_last_stamp && *m_last_stamp == stamp) {
            return std::nullopt;
        }
        m_last_stamp = stamp;
    } else {
        m_last_stamp.reset();  // gone: read_state() recreates it
    }
    std::optional<std::vector<fake::DeviceState>> devices = m_driver.read_state();
    if (!devices) {
        return std::nullopt;
    }
    ++m_state_reads;
    std::vector<GpuControls> out;
    out.reserve(static_cast<std::size_t>(m_gpu_count));
    for (int i = 0; i < m_gpu_count; ++i) {
        const fake::DeviceState& d =
            (*devices)[static_cast<std::size_t>(m_gpu_offset) + static_cast<std::size_t>(i)];
        out.push_back({m_driver.enforced_limit_w(d), d.locked_max_mhz});
    }
    return out;
}

Status NvmlCoupling::set_controls(double limit_w, double locked_clock_mhz) {
    for (int i = 0; i < m_gpu_count; ++i) {
        const power::nvml::ReturnCode rc =
            m_driver.modify(m_gpu_offset + i, [&](fake::DeviceState& d) {
                if (limit_w > 0.0) {
                    d.limit_w = limit_w;
                }
                if (locked_clock_mhz > 0.0) {
                    d.locked_min_mhz = locked_clock_mhz;
                    d.locked_max_mhz = locked_clock_mhz;
                }
                return power::nvml::kSuccess;
            });
        if (rc != power::nvml::kSuccess) {
            return Status::unavailable("fake NVML state " + m_state_path + ": " +
                                       m_driver.last_error());
        }
    }
    return Status::ok();
}

Status NvmlCoupling::report(const std::vector<fake::ExternalReading>& readings) {
    const power::nvml::ReturnCode rc = m_driver.report(m_gpu_offset, readings);
    if (rc != power::nvml::kSuccess) {
        return Status::unavailable("fake NVML state " + m_state_path + ": report failed (" +
                                   m_driver.last_error() + ")");
    }
    return Status::ok();
}

}  // namespace pals::serve
