#pragma once
/// @file mock_gpu_backend.hpp
/// @brief gMock GpuBackend for interaction tests (STYLE.md 3.6): StrictMock where a test checks
/// what is written, NiceMock for incidental collaborators.

#include <gmock/gmock.h>

#include <optional>
#include <string_view>
#include <vector>

#include "pals/power/gpu_backend.hpp"

namespace pals::power {

class MockGpuBackend : public GpuBackend {
public:
    MOCK_METHOD(std::string_view, backend_name, (), (const, override));
    MOCK_METHOD(Result<int>, device_count, (), (const, override));
    MOCK_METHOD(Result<GpuInfo>, device_info, (int gpu), (const, override));
    MOCK_METHOD(Result<PowerLimitRange>, power_limit_range, (int gpu), (const, override));
    MOCK_METHOD(Result<double>, power_limit_w, (int gpu), (const, override));
    MOCK_METHOD(Result<double>, enforced_power_limit_w, (int gpu), (const, override));
    MOCK_METHOD(Result<GpuSample>, sample, (int gpu), (override));
    MOCK_METHOD(Result<std::vector<GpuSample>>, sample_all, (), (override));
    MOCK_METHOD(Result<double>, set_power_limit, (int gpu, double limit_w), (override));
    MOCK_METHOD(Result<std::optional<ClockRangeMhz>>, locked_sm_clocks, (int gpu),
                (const, override));
    MOCK_METHOD(Status, lock_sm_clocks, (int gpu, ClockRangeMhz range), (override));
    MOCK_METHOD(Status, reset_sm_clocks, (int gpu), (override));
};

}  // namespace pals::power
