#pragma once
// Helpers of the sim-serve tests: a per-test folder, a small simulated node, a fake NVML
// configuration with an external load, and an SSE splitter.

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "pals/model/model_spec.hpp"
#include "pals/sim/gpu_spec.hpp"
#include "pals/sim/simulator.hpp"

namespace pals::serve::testing {

/// A fresh folder per test, removed at the end.
class TempDir {
public:
    TempDir() {
        static std::atomic<int> counter{0};
        m_path =
            std::filesystem::temp_directory_path() /
            ("pals-serve-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
        std::filesystem::remove_all(m_path);
        std::filesystem::create_directories(m_path);
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(m_path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    [[nodiscard]] const std::filesystem::path& path() const { return m_path; }
    [[nodiscard]] std::string file(const std::string& name) const {
        return (m_path / name).string();
    }

private:
    std::filesystem::path m_path;
};

inline void write_text(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
}

/// Llama-3.1-8B on H100s: small and fast to simulate. A low gpu_memory_utilization leaves a
/// KV cache of about 18k tokens, so a long prompt is rejected by the simulator (not by
/// max_model_len).
inline sim::NodeConfig llama_node(int max_num_seqs = 64, int tp = 1, int replicas = 1) {
    sim::NodeConfig node;
    auto spec = model::load_model_spec(std::string(PALS_SHARED_DIR) +
                                       "/models/meta-llama__Llama-3.1-8B-Instruct.json");
    EXPECT_TRUE(spec.is_ok()) << spec.status().message();
    node.model = spec.value();
    node.gpu = sim::find_gpu_spec("H100-SXM").value();
    node.parallel.tp = tp;
    node.replicas = replicas;
    node.engine.max_num_seqs = max_num_seqs;
    node.engine.gpu_memory_utilization = 0.25;
    return node;
}

/// A fake NVML configuration of `count` H100s whose power comes from a reporting process.
inline std::string external_config(int count) {
    return nlohmann::json{{"count", count}, {"gpu", "H100-SXM"}, {"load", "external"}}.dump();
}

/// The `data:` payloads of a server-sent event stream, in order ("[DONE]" included).
inline std::vector<std::string> sse_payloads(const std::string& body) {
    std::vector<std::string> out;
    std::size_t pos = 0;
    while (pos < body.size()) {
        const std::size_t end = body.find("\n\n", pos);
        const std::string event = body.substr(pos, end == std::string::npos ? end : end - pos);
        pos = end == std::string::npos ? body.size() : end + 2;
        if (event.rfind("data: ", 0) == 0) {
            out.push_back(event.substr(6));
        } else if (!event.empty()) {
            ADD_FAILURE() << "not a data event: " << event;
        }
    }
    return out;
}

}  // namespace pals::serve::testing
