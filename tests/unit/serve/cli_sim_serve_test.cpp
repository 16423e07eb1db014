// `pals sim-serve` as a process: start-up lines, SIGTERM -> exit 0, bad model -> 2, port in
// use -> 3. Skipped when the pals executable has not been built.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "pals/serve/sim_server.hpp"
#include "serve_test_helpers.hpp"

namespace pals::serve {
namespace {

using testing::TempDir;

std::string pals_binary() {
    return std::string(PALS_BINARY_DIR) + "/pals";
}

std::string llama_path() {
    return std::string(PALS_SHARED_DIR) + "/models/meta-llama__Llama-3.1-8B-Instruct.json";
}

/// A child process with its standard output in a pipe.
class Child {
public:
    explicit Child(std::vector<std::string> args) {
        std::array<int, 2> out{};
        EXPECT_EQ(::pipe(out.data()), 0);
        m_pid = ::fork();
        if (m_pid == 0) {
            ::dup2(out[1], STDOUT_FILENO);
            const int null_fd = ::open("/dev/null", O_WRONLY);
            ::dup2(null_fd, STDERR_FILENO);
            ::close(out[0]);
            std::vector<char*> argv;
            for (auto& a : args) {
                argv.push_back(a.data());
            }
            argv.push_back(nullptr);
            ::execv(argv[0], argv.data());
            ::_exit(127);
        }
        ::close(out[1]);
        m_out = out[0];
    }
    ~Child() {
        if (m_pid > 0) {
            ::kill(m_pid, SIGKILL);
            ::waitpid(m_pid, nullptr, 0);
        }
        ::close(m_out);
    }
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;

    /// Reads standard output until it contains `text` (true) or `timeout_ms` passes or it ends.
    bool read_until(const std::string& text, int timeout_ms) {
        const auto deadline =
            std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
        std::array<char, 4096> buf{};
        while (m_output.find(text) == std::string::npos) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                                  deadline - std::chrono::steady_clock::now())
                                  .count();
            if (left <= 0) {
                return false;
            }
            pollfd pfd{m_out, POLLIN, 0};
            if (::poll(&pfd, 1, static_cast<int>(left)) <= 0) {
                return false;
            }
            const ssize_t n = ::read(m_out, buf.data(), buf.size());
            if (n <= 0) {
                return m_output.find(text) != std::string::npos;
            }
            m_output.append(buf.data(), static_cast<std::size_t>(n));
        }
        return true;
    }

    /// Waits for the exit code (-1 on a signal or a timeout).
    int wait_exit(int timeout_ms) {
        const auto deadline =
            std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
        while (std::chrono::steady_clock::now() < deadline) {
            int status = 0;
            if (::waitpid(m_pid, &status, WNOHANG) == m_pid) {
                m_pid = -1;
                return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
            }
            ::usleep(10000);
        }
        return -1;
    }

    [[nodiscard]] pid_t pid() const { return m_pid; }
    [[nodiscard]] const std::string& output() const { return m_output; }

private:
    pid_t m_pid = -1;
    int m_out = -1;
    std::string m_output;
};

class SimServeCliTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (!std::filesystem::exists(pals_binary())) {
            GTEST_SKIP() << pals_binary() << " is not built";
        }
    }
    TempDir m_dir;
};

TEST_F(SimServeCliTest, PrintsWhereToFindItsGpusAndStopsOnSigterm) {
    Child child({pals_binary(), "sim-serve", "--model", llama_path(), "--port", "0", "--state-dir",
                 m_dir.path().string()});
    ASSERT_TRUE(child.read_until("PALS_BATCH_CAP_FILE=", 10000)) << child.output();
    EXPECT_NE(child.output().find("listening on http://127.0.0.1:"), std::string::npos);
    EXPECT_NE(child.output().find("PALS_NVML_LIB="), std::string::npos);
    EXPECT_NE(child.output().find("PALS_FAKE_NVML_CONFIG=" + m_dir.file("fake-nvml.json")),
              std::string::npos);
    EXPECT_NE(child.output().find("PALS_FAKE_NVML_STATE=" + m_dir.file("fake-nvml-state.json")),
              std::string::npos);
    EXPECT_TRUE(std::filesystem::exists(m_dir.file("fake-nvml.json")));
    ASSERT_EQ(::kill(child.pid(), SIGTERM), 0);
    EXPECT_EQ(child.wait_exit(10000), 0);
}

TEST_F(SimServeCliTest, ABadModelExitsWith2) {
    Child missing({pals_binary(), "sim-serve", "--model", m_dir.file("none.json"), "--port", "0",
                   "--state-dir", m_dir.path().string()});
    EXPECT_EQ(missing.wait_exit(10000), 2);
    Child bad_flag({pals_binary(), "sim-serve", "--time-scale", "fast"});
    EXPECT_EQ(bad_flag.wait_exit(10000), 2);
    Child zero_scale({pals_binary(), "sim-serve", "--model", llama_path(), "--time-scale", "0",
                      "--state-dir", m_dir.path().string()});
    EXPECT_EQ(zero_scale.wait_exit(10000), 2);
}

TEST_F(SimServeCliTest, APortInUseExitsWith3) {
    SimServerOptions o;
    auto holder = SimServer::create(testing::llama_node(), o);
    ASSERT_TRUE(holder.is_ok());
    ASSERT_TRUE((*holder)->start().is_ok());
    Child child({pals_binary(), "sim-serve", "--model", llama_path(), "--port",
                 std::to_string((*holder)->port()), "--state-dir", m_dir.path().string()});
    EXPECT_EQ(child.wait_exit(10000), 3);
}

}  // namespace
}  // namespace pals::serve
