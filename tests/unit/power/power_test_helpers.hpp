#pragma once
// Helpers of the power tests: Status assertions and a per-test fake NVML environment.

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "pals/common/status.hpp"
#include "status_assertions.hpp"

namespace pals::power::testing {

/// The fake libnvidia-ml.so.1 built by src/fake_nvml/.
inline std::string fake_nvml_path() {
    return std::string(PALS_BINARY_DIR) + "/fake_nvml/libnvidia-ml.so.1";
}
/// The old-driver variant (unversioned symbols only).
inline std::string legacy_fake_nvml_path() {
    return std::string(PALS_BINARY_DIR) + "/fake_nvml_legacy/libnvidia-ml.so.1";
}

/// A fresh folder per test with the fake's state file and (optionally) its configuration, set
/// through the environment before a backend is created.
class FakeNvmlEnv {
public:
    FakeNvmlEnv() {
        static std::atomic<int> counter{0};
        m_dir = std::filesystem::temp_directory_path() /
                ("pals_power_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
        std::filesystem::remove_all(m_dir);
        std::filesystem::create_directories(m_dir);
        ::setenv("PALS_FAKE_NVML_STATE", state_path().c_str(), 1);
        ::unsetenv("PALS_FAKE_NVML_CONFIG");
        ::unsetenv("PALS_NVML_LIB");
    }
    ~FakeNvmlEnv() {
        ::unsetenv("PALS_FAKE_NVML_STATE");
        ::unsetenv("PALS_FAKE_NVML_CONFIG");
        std::error_code ec;
        std::filesystem::remove_all(m_dir, ec);
    }
    FakeNvmlEnv(const FakeNvmlEnv&) = delete;
    FakeNvmlEnv& operator=(const FakeNvmlEnv&) = delete;

    /// Writes the fake's configuration and points PALS_FAKE_NVML_CONFIG at it.
    void write_config(const std::string& json) const {
        const std::string path = (m_dir / "config.json").string();
        std::ofstream(path) << json;
        ::setenv("PALS_FAKE_NVML_CONFIG", path.c_str(), 1);
    }
    [[nodiscard]] std::string state_path() const { return (m_dir / "fake_state.json").string(); }
    [[nodiscard]] const std::filesystem::path& dir() const { return m_dir; }

private:
    std::filesystem::path m_dir;
};

}  // namespace pals::power::testing
