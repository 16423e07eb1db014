// NvmlBackend through the real dlopen path, against the fake libnvidia-ml.so.1 that the project
// builds (src/fake_nvml/). Each test gets its own fake state file and configuration.
#include "pals/power/nvml_backend.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "power_test_helpers.hpp"

namespace pals::power {
namespace {

using testing::fake_nvml_path;
using testing::FakeNvmlEnv;
using testing::legacy_fake_nvml_path;

class NvmlBackendTest : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_TRUE(std::filesystem::exists(fake_nvml_path()))
            << fake_nvml_path() << " is missing: build the pals_fake_nvml target";
    }

    static std::unique_ptr<NvmlBackend> open_fake(const std::string& path = fake_nvml_path()) {
        auto backend = NvmlBackend::open(NvmlBackend::Options{path, nullptr});
        EXPECT_TRUE(backend.is_ok()) << backend.status().message();
        return backend.is_ok() ? std::move(backend).value() : nullptr;
    }

    FakeNvmlEnv m_env;
};

TEST_F(NvmlBackendTest, LoadsTheLibraryAndResolvesVersionedSymbols) {
    auto backend = open_fake();
    ASSERT_NE(backend, nullptr);
    EXPECT_EQ(backend->backend_name(), "nvml");
    EXPECT_EQ(backend->library_path(), fake_nvml_path());
    EXPECT_EQ(backend->symbol_for("init"), "nvmlInit_v2");
    EXPECT_EQ(backend->symbol_for("device_get_count"), "nvmlDeviceGetCount_v2");
    EXPECT_EQ(backend->symbol_for("device_get_handle_by_index"), "nvmlDeviceGetHandleByIndex_v2");
    EXPECT_EQ(backend->symbol_for("device_get_current_clocks_event_reasons"),
              "nvmlDeviceGetCurrentClocksEventReasons");
    EXPECT_EQ(backend->driver_version(), "550.54.15");
}

TEST_F(NvmlBackendTest, FallsBackToUnversionedSymbolsOfAnOldDriver) {
    auto backend = open_fake(legacy_fake_nvml_path());
    ASSERT_NE(backend, nullptr);
    EXPECT_EQ(backend->symbol_for("init"), "nvmlInit");
    EXPECT_EQ(backend->symbol_for("device_get_count"), "nvmlDeviceGetCount");
    EXPECT_EQ(backend->symbol_for("device_get_handle_by_index"), "nvmlDeviceGetHandleByIndex");
    EXPECT_EQ(backend->symbol_for("device_get_current_clocks_event_reasons"),
              "nvmlDeviceGetCurrentClocksThrottleReasons");
    EXPECT_EQ(backend->symbol_for("device_set_gpu_locked_clocks"), "");
    EXPECT_EQ(*backend->device_count(), 8);
    EXPECT_OK(backend->sample_all());
    EXPECT_OK(backend->set_power_limit(0, 400.0));
    EXPECT_STATUS(backend->lock_sm_clocks(0, ClockRangeMhz{1000, 1200}), StatusCode::kUnavailable,
                  "nvmlDeviceSetGpuLockedClocks");
}

TEST_F(NvmlBackendTest, MissingLibraryIsUnavailable) {
    auto backend = NvmlBackend::open({"/nonexistent/libnvidia-ml.so.1", nullptr});
    EXPECT_STATUS(backend, StatusCode::kUnavailable,
                  "cannot load NVML from '/nonexistent/libnvidia-ml.so.1'");
    EXPECT_STATUS(backend, StatusCode::kUnavailable, "--nvml-lib");
    EXPECT_EQ(exit_code_for(backend.status()), 3);
}

TEST_F(NvmlBackendTest, LibraryWithoutNvmlIsUnavailable) {
    auto backend = NvmlBackend::open({"libm.so.6", nullptr});
    EXPECT_STATUS(backend, StatusCode::kUnavailable, "lacks nvmlInit_v2 or nvmlInit");
}

TEST_F(NvmlBackendTest, LibraryPathFromFlagThenEnvironmentThenDefault) {
    EXPECT_EQ(NvmlBackend::resolve_library_path(""), "libnvidia-ml.so.1");
    ::setenv("PALS_NVML_LIB", fake_nvml_path().c_str(), 1);
    EXPECT_EQ(NvmlBackend::resolve_library_path(""), fake_nvml_path());
    EXPECT_EQ(NvmlBackend::resolve_library_path("/x/libnvidia-ml.so.1"), "/x/libnvidia-ml.so.1");
    auto backend = NvmlBackend::open({});
    ASSERT_OK(backend);
    EXPECT_EQ((*backend)->library_path(), fake_nvml_path());
    ::unsetenv("PALS_NVML_LIB");
}

TEST_F(NvmlBackendTest, DefaultsToEightIdleH100s) {
    auto backend = open_fake();
    ASSERT_NE(backend, nullptr);
    ASSERT_EQ(*backend->device_count(), 8);
    std::set<std::string> uuids;
    for (int i = 0; i < 8; ++i) {
        auto info = backend->device_info(i);
        ASSERT_OK(info);
        EXPECT_EQ(info->index, i);
        EXPECT_EQ(info->name, "NVIDIA H100 80GB HBM3");
        EXPECT_EQ(info->uuid.rfind("GPU-", 0), 0U) << info->uuid;
        uuids.insert(info->uuid);
    }
    EXPECT_EQ(uuids.size(), 8U);
    auto range = backend->power_limit_range(3);
    ASSERT_OK(range);
    EXPECT_DOUBLE_EQ(range->min_w, 200.0);
    EXPECT_DOUBLE_EQ(range->max_w, 700.0);
    EXPECT_DOUBLE_EQ(range->default_w, 700.0);
    auto s = backend->sample(3);
    ASSERT_OK(s);
    EXPECT_EQ(s->index, 3);
    EXPECT_DOUBLE_EQ(s->power_w, 75.0);
    EXPECT_DOUBLE_EQ(s->sm_clock_mhz, 345.0);
    EXPECT_DOUBLE_EQ(s->power_limit_w, 700.0);
    EXPECT_DOUBLE_EQ(s->enforced_power_limit_w, 700.0);
    EXPECT_EQ(s->throttle_reasons, to_mask(ThrottleReason::kGpuIdle));
    EXPECT_GE(s->energy_j, 0.0);
    EXPECT_STATUS(backend->sample(8), StatusCode::kNotFound, "GPU 8 does not exist");
}

TEST_F(NvmlBackendTest, ConfigChoosesGpuKindAndCount) {
    m_env.write_config(R"({"count": 2, "gpu": "a100", "driver_version": "535.1"})");
    auto backend = open_fake();
    ASSERT_NE(backend, nullptr);
    EXPECT_EQ(*backend->device_count(), 2);
    EXPECT_EQ(backend->device_info(1)->name, "NVIDIA A100-SXM4-80GB");
    EXPECT_DOUBLE_EQ(backend->power_limit_range(0)->max_w, 400.0);
    EXPECT_DOUBLE_EQ(backend->power_limit_range(0)->min_w, 100.0);
    EXPECT_EQ(backend->driver_version(), "535.1");
}

TEST_F(NvmlBackendTest, BadConfigSaysWhy) {
    m_env.write_config(R"({"count": "eight"})");
    auto backend = NvmlBackend::open({fake_nvml_path(), nullptr});
    EXPECT_STATUS(backend, StatusCode::kInternal, "'count' must be an integer in [1, 64]");
    m_env.write_config(R"({"gpu": "Z9000"})");
    EXPECT_STATUS(NvmlBackend::open({fake_nvml_path(), nullptr}), StatusCode::kInternal,
                  "unknown GPU 'Z9000'");
    m_env.write_config(
        R"({"faults": [{"function": "nvmlDeviceGetPowerUsage", "error": "BOGUS"}]})");
    EXPECT_STATUS(NvmlBackend::open({fake_nvml_path(), nullptr}), StatusCode::kInternal,
                  "unknown NVML error 'BOGUS'");
}

/// {"count": 1e300} reached get<int>() (a float-to-int cast out of range: undefined behaviour).
/// Every number of the config is now checked: a number, integral where an int is meant, in range.
TEST_F(NvmlBackendTest, ConfigNumbersMustBeInRange) {
    struct Case {
        const char* config;
        const char* expected;
    };
    for (const Case& c : {
             Case{R"({"count": 1e300})", "'count' must be an integer in [1, 64]"},
             Case{R"({"count": 2.5})", "'count' must be an integer"},
             Case{R"({"count": -9223372036854775808})", "'count' must be an integer"},
             Case{R"({"load": {"kind": "decode", "batch": 1e300}})", "'batch' must be an integer"},
             Case{R"({"load": {"kind": "decode", "model_params_b": 1e300}})",
                  "'model_params_b' must be a number"},
             Case{R"({"load": {"kind": "custom", "flops": 1e300}})", "'flops' must be a number"},
             Case{R"({"faults": [{"after_calls": 1e300, "error": "UNKNOWN"}]})",
                  "'after_calls' must be an integer"},
             Case{R"({"faults": [{"delay_ms": 1e300}]})", "'delay_ms' must be a number"},
             Case{R"({"out_of_band_limit_w": -5})", "'out_of_band_limit_w' must be a number"},
             Case{R"({"count": 1e400})", "malformed JSON"},
         }) {
        SCOPED_TRACE(c.config);
        m_env.write_config(c.config);
        EXPECT_STATUS(NvmlBackend::open({fake_nvml_path(), nullptr}), StatusCode::kInternal,
                      c.expected);
    }
}

/// A deeply nested config is refused by the bounded parse instead of overflowing the stack.
TEST_F(NvmlBackendTest, DeeplyNestedConfigIsRefused) {
    m_env.write_config(R"({"load": )" + std::string(100000, '[') + std::string(100000, ']') + "}");
    EXPECT_STATUS(NvmlBackend::open({fake_nvml_path(), nullptr}), StatusCode::kInternal,
                  "nested deeper than");
}

TEST_F(NvmlBackendTest, SetLimitReadsBackAndPersistsLikeADriver) {
    {
        auto backend = open_fake();
        ASSERT_NE(backend, nullptr);
        auto enforced = backend->set_power_limit(1, 300.0);
        ASSERT_OK(enforced);
        EXPECT_DOUBLE_EQ(*enforced, 300.0);
        EXPECT_DOUBLE_EQ(*backend->power_limit_w(1), 300.0);
        EXPECT_DOUBLE_EQ(*backend->power_limit_w(0), 700.0);
    }
    // A later "process" (a new load of the library) sees the limit the driver kept.
    auto backend = open_fake();
    ASSERT_NE(backend, nullptr);
    EXPECT_DOUBLE_EQ(*backend->power_limit_w(1), 300.0);
    EXPECT_DOUBLE_EQ(backend->sample(1)->enforced_power_limit_w, 300.0);
}

TEST_F(NvmlBackendTest, SetLimitClampsToTheConstraints) {
    auto backend = open_fake();
    ASSERT_NE(backend, nullptr);
    EXPECT_DOUBLE_EQ(*backend->set_power_limit(0, 50.0), 200.0);
    EXPECT_DOUBLE_EQ(*backend->set_power_limit(0, 5000.0), 700.0);
    EXPECT_DOUBLE_EQ(*backend->set_power_limit(0, 333.3), 333.3);
    EXPECT_STATUS(backend->set_power_limit(0, INFINITY), StatusCode::kInvalidArgument, "finite");
}

TEST_F(NvmlBackendTest, EnforcedLimitCanBeBelowTheRequest) {
    m_env.write_config(R"({"out_of_band_limit_w": 500})");
    auto backend = open_fake();
    ASSERT_NE(backend, nullptr);
    EXPECT_DOUBLE_EQ(*backend->set_power_limit(0, 600.0), 500.0);
    EXPECT_DOUBLE_EQ(*backend->power_limit_w(0), 600.0);
    EXPECT_DOUBLE_EQ(*backend->enforced_power_limit_w(0), 500.0);
}

TEST_F(NvmlBackendTest, DecodeLoadSlowsTheClockWhenTheCapBinds) {
    m_env.write_config(R"({"count": 2, "load": {"kind": "decode", "batch": 64}})");
    auto backend = open_fake();
    ASSERT_NE(backend, nullptr);
    auto free_run = backend->sample(0);
    ASSERT_OK(free_run);
    EXPECT_GT(free_run->power_w, 300.0);
    EXPECT_LT(free_run->power_w, 700.0);
    EXPECT_DOUBLE_EQ(free_run->sm_clock_mhz, 1980.0);
    EXPECT_EQ(free_run->throttle_reasons, 0U);

    ASSERT_OK(backend->set_power_limit(0, 250.0));
    auto capped = backend->sample(0);
    ASSERT_OK(capped);
    EXPECT_LE(capped->power_w, 250.0);
    EXPECT_GT(capped->power_w, 240.0);
    EXPECT_LT(capped->sm_clock_mhz, 1980.0);
    EXPECT_TRUE(capped->is_power_capped());
    EXPECT_EQ(throttle_reasons_to_string(capped->throttle_reasons), "sw_power_cap");
    EXPECT_FALSE(backend->sample(1)->is_power_capped());
}

TEST_F(NvmlBackendTest, PrefillLoadDrawsMoreThanDecode) {
    m_env.write_config(R"({"count": 1, "load": "prefill"})");
    auto prefill = open_fake();
    ASSERT_NE(prefill, nullptr);
    const double prefill_w = prefill->sample(0)->power_w;
    prefill.reset();
    m_env.write_config(R"({"count": 1, "load": "decode"})");
    auto decode = open_fake();
    ASSERT_NE(decode, nullptr);
    EXPECT_GT(prefill_w, decode->sample(0)->power_w);
}

TEST_F(NvmlBackendTest, EnergyGrowsWithWallTimeTimesModelledPower) {
    m_env.write_config(R"({"count": 1, "load": "decode"})");
    auto backend = open_fake();
    ASSERT_NE(backend, nullptr);
    auto a = backend->sample(0);
    ASSERT_OK(a);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    auto b = backend->sample(0);
    ASSERT_OK(b);
    const double dt = (b->time - a->time).count();
    const double de = b->energy_j - a->energy_j;
    ASSERT_GT(dt, 0.25);
    EXPECT_NEAR(de / dt, a->power_w, 0.1 * a->power_w);
}

TEST_F(NvmlBackendTest, EnergyCounterSurvivesLimitChangesAndReloads) {
    m_env.write_config(R"({"count": 1, "load": "decode"})");
    double last = 0.0;
    for (double limit : {300.0, 250.0, 700.0}) {
        auto backend = open_fake();
        ASSERT_NE(backend, nullptr);
        ASSERT_OK(backend->set_power_limit(0, limit));
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        const double e = backend->sample(0)->energy_j;
        EXPECT_GT(e, last);
        last = e;
    }
}

TEST_F(NvmlBackendTest, WithoutPermissionReadsWorkAndWritesAreRefused) {
    m_env.write_config(R"({"count": 2, "root": false})");
    auto backend = open_fake();
    ASSERT_NE(backend, nullptr);
    EXPECT_OK(backend->sample_all());
    auto set = backend->set_power_limit(0, 300.0);
    EXPECT_STATUS(set, StatusCode::kPermissionDenied, "needs root or CAP_SYS_ADMIN");
    EXPECT_STATUS(set, StatusCode::kPermissionDenied, "Insufficient Permissions");
    EXPECT_EQ(exit_code_for(set.status()), 4);
    EXPECT_STATUS(backend->set_power_limit(1, 300.0), StatusCode::kPermissionDenied,
                  "CAP_SYS_ADMIN");
    EXPECT_STATUS(backend->lock_sm_clocks(0, ClockRangeMhz{1000, 1200}),
                  StatusCode::kPermissionDenied, "CAP_SYS_ADMIN");
    EXPECT_DOUBLE_EQ(*backend->power_limit_w(0), 700.0);
}

TEST_F(NvmlBackendTest, InjectedErrorOnOneCallAndGpu) {
    m_env.write_config(R"({"count": 2, "faults": [
        {"function": "nvmlDeviceGetPowerUsage", "gpu": 1, "error": "UNKNOWN"}]})");
    auto backend = open_fake();
    ASSERT_NE(backend, nullptr);
    EXPECT_OK(backend->sample(0));
    EXPECT_STATUS(backend->sample(1), StatusCode::kInternal,
                  "GPU 1: nvmlDeviceGetPowerUsage: an unknown NVML error occurred "
                  "(NVML_ERROR_UNKNOWN: Unknown Error)");
    EXPECT_STATUS(backend->sample_all(), StatusCode::kInternal, "GPU 1");
}

TEST_F(NvmlBackendTest, InjectedTimeoutIsUnavailable) {
    m_env.write_config(R"({"count": 1, "faults": [
        {"function": "nvmlDeviceGetEnforcedPowerLimit", "error": "TIMEOUT", "times": 1}]})");
    auto backend = open_fake();
    ASSERT_NE(backend, nullptr);
    EXPECT_STATUS(backend->sample(0), StatusCode::kUnavailable, "timed out");
    EXPECT_OK(backend->sample(0));  // "times": 1 - a transient fault
}

TEST_F(NvmlBackendTest, NotSupportedReadingsBecomeNaN) {
    m_env.write_config(R"({"count": 1, "faults": [
        {"function": "nvmlDeviceGetTotalEnergyConsumption", "error": "NOT_SUPPORTED"},
        {"function": "nvmlDeviceGetCurrentClocksEventReasons", "error": "NOT_SUPPORTED"}]})");
    auto backend = open_fake();
    ASSERT_NE(backend, nullptr);
    auto s = backend->sample(0);
    ASSERT_OK(s);
    EXPECT_TRUE(std::isnan(s->energy_j));
    EXPECT_EQ(s->throttle_reasons, 0U);
    EXPECT_DOUBLE_EQ(s->power_w, 75.0);
}

TEST_F(NvmlBackendTest, GpuLostAfterNCallsStaysLost) {
    m_env.write_config(R"({"count": 2, "faults": [{"gpu": 0, "lost": true, "after_calls": 10}]})");
    auto backend = open_fake();
    ASSERT_NE(backend, nullptr);
    int ok_samples = 0;
    Status lost;
    for (int i = 0; i < 10 && lost.is_ok(); ++i) {
        auto s = backend->sample(0);
        if (s.is_ok()) {
            ++ok_samples;
        } else {
            lost = s.status();
        }
    }
    EXPECT_GE(ok_samples, 1);
    EXPECT_STATUS(lost, StatusCode::kUnavailable, "fallen off the bus");
    EXPECT_STATUS(lost, StatusCode::kUnavailable, "NVML_ERROR_GPU_IS_LOST: GPU is lost");
    EXPECT_STATUS(backend->device_info(0), StatusCode::kUnavailable, "GPU_IS_LOST");
    EXPECT_STATUS(backend->set_power_limit(0, 300.0), StatusCode::kUnavailable, "GPU_IS_LOST");
    EXPECT_OK(backend->sample(1));
}

TEST_F(NvmlBackendTest, GpuLostFromTheStartFailsOnlyThatGpu) {
    m_env.write_config(R"({"count": 3, "faults": [{"gpu": 1, "lost": true}]})");
    auto backend = open_fake();
    ASSERT_NE(backend, nullptr);
    EXPECT_EQ(*backend->device_count(), 3);
    EXPECT_STATUS(backend->device_info(1), StatusCode::kUnavailable,
                  "GPU 1: nvmlDeviceGetHandleByIndex_v2: the GPU has fallen off the bus");
    EXPECT_OK(backend->device_info(0));
    EXPECT_OK(backend->sample(2));
}

TEST_F(NvmlBackendTest, SlowCallsSucceedLate) {
    m_env.write_config(R"({"count": 1, "faults": [
        {"function": "nvmlDeviceGetPowerUsage", "delay_ms": 150, "times": 1}]})");
    auto backend = open_fake();
    ASSERT_NE(backend, nullptr);
    const auto start = std::chrono::steady_clock::now();
    EXPECT_OK(backend->sample(0));
    EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(150));
}

TEST_F(NvmlBackendTest, InitFailureIsMapped) {
    m_env.write_config(R"({"faults": [{"function": "nvmlInit", "error": "DRIVER_NOT_LOADED"}]})");
    auto backend = NvmlBackend::open({fake_nvml_path(), nullptr});
    EXPECT_STATUS(backend, StatusCode::kUnavailable,
                  "nvmlInit_v2: the NVIDIA kernel driver is not loaded (check nvidia-smi) "
                  "(NVML_ERROR_DRIVER_NOT_LOADED: Driver Not Loaded)");
    EXPECT_EQ(exit_code_for(backend.status()), 3);
}

TEST_F(NvmlBackendTest, DriverRejectionNamesTheAllowedRange) {
    m_env.write_config(R"({"count": 1, "faults": [
        {"function": "nvmlDeviceSetPowerManagementLimit", "error": "INVALID_ARGUMENT"}]})");
    auto backend = open_fake();
    ASSERT_NE(backend, nullptr);
    EXPECT_STATUS(backend->set_power_limit(0, 300.0), StatusCode::kInvalidArgument,
                  "allowed range 200-700 W");
}

TEST_F(NvmlBackendTest, LocksAndResetsSmClocks) {
    m_env.write_config(R"({"count": 1, "load": "decode"})");
    auto backend = open_fake();
    ASSERT_NE(backend, nullptr);
    EXPECT_FALSE(backend->locked_sm_clocks(0)->has_value());
    ASSERT_OK(backend->lock_sm_clocks(0, ClockRangeMhz{1000.0, 1200.0}));
    EXPECT_EQ(**backend->locked_sm_clocks(0), (ClockRangeMhz{1000.0, 1200.0}));
    auto s = backend->sample(0);
    ASSERT_OK(s);
    EXPECT_LE(s->sm_clock_mhz, 1200.0);
    EXPECT_EQ(throttle_reasons_to_string(s->throttle_reasons), "applications_clocks_setting");
    ASSERT_OK(backend->reset_sm_clocks(0));
    EXPECT_FALSE(backend->locked_sm_clocks(0)->has_value());
    EXPECT_DOUBLE_EQ(backend->sample(0)->sm_clock_mhz, 1980.0);
}

TEST_F(NvmlBackendTest, ConcurrentProcessesDoNotLoseUpdates) {
    // Each child sets its own GPU's limit many times; the state file's flock keeps every other
    // GPU's value intact, so the final limits are each child's last value.
    constexpr int kChildren = 4;
    constexpr int kWrites = 25;
    std::vector<pid_t> children;
    for (int c = 0; c < kChildren; ++c) {
        const pid_t pid = ::fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            auto backend = NvmlBackend::open({fake_nvml_path(), nullptr});
            if (!backend.is_ok()) {
                ::_exit(1);
            }
            for (int i = 0; i < kWrites; ++i) {
                if (!(*backend)->set_power_limit(c, 200.0 + c * 50.0 + i).is_ok()) {
                    ::_exit(2);
                }
            }
            ::_exit(0);
        }
        children.push_back(pid);
    }
    for (pid_t pid : children) {
        int status = 0;
        ASSERT_EQ(::waitpid(pid, &status, 0), pid);
        ASSERT_TRUE(WIFEXITED(status));
        EXPECT_EQ(WEXITSTATUS(status), 0);
    }
    auto backend = open_fake();
    ASSERT_NE(backend, nullptr);
    for (int c = 0; c < kChildren; ++c) {
        EXPECT_DOUBLE_EQ(*backend->power_limit_w(c), 200.0 + c * 50.0 + kWrites - 1) << "GPU " << c;
    }
}

}  // namespace
}  // namespace pals::power
