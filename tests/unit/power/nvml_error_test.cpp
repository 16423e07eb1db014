// nvmlReturn_t -> Status: every code gets a StatusCode and a message a person can act on.
#include "power/nvml/nvml_error.hpp"

#include <gtest/gtest.h>

#include <string>

#include "power_test_helpers.hpp"

namespace pals::power::nvml {
namespace {

struct Expectation {
    ReturnCode rc;
    StatusCode code;
    const char* substring;
};

TEST(NvmlErrorTest, MapsEveryCodeToAClearStatus) {
    const Expectation cases[] = {
        {kErrorUninitialized, StatusCode::kInternal, "not initialized"},
        {kErrorInvalidArgument, StatusCode::kInvalidArgument, "rejected an argument"},
        {kErrorNotSupported, StatusCode::kUnavailable, "does not support"},
        {kErrorNoPermission, StatusCode::kPermissionDenied, "needs root or CAP_SYS_ADMIN"},
        {kErrorAlreadyInitialized, StatusCode::kInternal, "already initialized"},
        {kErrorNotFound, StatusCode::kNotFound, "no such GPU"},
        {kErrorInsufficientSize, StatusCode::kInternal, "too small"},
        {kErrorInsufficientPower, StatusCode::kUnavailable, "power cable"},
        {kErrorDriverNotLoaded, StatusCode::kUnavailable, "driver is not loaded"},
        {kErrorTimeout, StatusCode::kUnavailable, "timed out"},
        {kErrorIrqIssue, StatusCode::kUnavailable, "interrupt"},
        {kErrorLibraryNotFound, StatusCode::kUnavailable, "could not find a library"},
        {kErrorFunctionNotFound, StatusCode::kUnavailable, "driver too old"},
        {kErrorCorruptedInforom, StatusCode::kUnavailable, "infoROM"},
        {kErrorGpuIsLost, StatusCode::kUnavailable, "fallen off the bus"},
        {kErrorResetRequired, StatusCode::kUnavailable, "needs a reset"},
        {kErrorOperatingSystem, StatusCode::kUnavailable, "operating system"},
        {kErrorLibRmVersionMismatch, StatusCode::kUnavailable, "versions differ"},
        {kErrorInUse, StatusCode::kUnavailable, "in use"},
        {kErrorMemory, StatusCode::kInternal, "out of memory"},
        {kErrorNoData, StatusCode::kUnavailable, "no data"},
        {kErrorVgpuEccNotSupported, StatusCode::kUnavailable, "vGPU"},
        {kErrorInsufficientResources, StatusCode::kUnavailable, "resources"},
        {kErrorFreqNotSupported, StatusCode::kInvalidArgument, "frequency"},
        {kErrorArgumentVersionMismatch, StatusCode::kInternal, "struct version"},
        {kErrorDeprecated, StatusCode::kUnavailable, "deprecated"},
        {kErrorNotReady, StatusCode::kUnavailable, "not ready"},
        {kErrorGpuNotFound, StatusCode::kNotFound, "no GPU"},
        {kErrorInvalidState, StatusCode::kUnavailable, "state"},
        {kErrorResetTypeNotSupported, StatusCode::kUnavailable, "reset type"},
        {kErrorUnknown, StatusCode::kInternal, "unknown NVML error"},
    };
    for (const Expectation& c : cases) {
        SCOPED_TRACE(std::string(return_code_name(c.rc)));
        const Status s = status_from_nvml(c.rc, "GPU 3: nvmlDeviceGetPowerUsage");
        EXPECT_EQ(s.code(), c.code) << s.message();
        EXPECT_NE(s.message().find(c.substring), std::string::npos) << s.message();
        EXPECT_EQ(s.message().rfind("GPU 3: nvmlDeviceGetPowerUsage: ", 0), 0U) << s.message();
        EXPECT_NE(s.message().find("NVML_ERROR_" + std::string(return_code_name(c.rc))),
                  std::string::npos)
            << s.message();
    }
}

TEST(NvmlErrorTest, SuccessIsOk) {
    EXPECT_TRUE(status_from_nvml(kSuccess, "x").is_ok());
}

TEST(NvmlErrorTest, NoPermissionIsPermissionDenied) {
    const Status s = status_from_nvml(
        kErrorNoPermission, "GPU 0: nvmlDeviceSetPowerManagementLimit", "Insufficient Permissions");
    EXPECT_EQ(s.code(), StatusCode::kPermissionDenied);
    EXPECT_EQ(exit_code_for(s), 4);
    EXPECT_EQ(
        s.message(),
        "GPU 0: nvmlDeviceSetPowerManagementLimit: insufficient permissions: setting power limits "
        "needs root or CAP_SYS_ADMIN (NVML_ERROR_NO_PERMISSION: Insufficient Permissions)");
}

TEST(NvmlErrorTest, UnavailableCodesExitWith3) {
    EXPECT_EQ(exit_code_for(status_from_nvml(kErrorGpuIsLost, "x")), 3);
    EXPECT_EQ(exit_code_for(status_from_nvml(kErrorDriverNotLoaded, "x")), 3);
    EXPECT_EQ(exit_code_for(status_from_nvml(kErrorInvalidArgument, "x")), 2);
}

TEST(NvmlErrorTest, UndocumentedCodeIsInternalWithItsNumber) {
    const Status s = status_from_nvml(12345, "nvmlInit_v2");
    EXPECT_EQ(s.code(), StatusCode::kInternal);
    EXPECT_NE(s.message().find("12345"), std::string::npos) << s.message();
    EXPECT_EQ(return_code_name(12345), "UNKNOWN_CODE");
}

TEST(NvmlErrorTest, ParsesNamesAndNumbers) {
    ReturnCode rc = 0;
    ASSERT_TRUE(parse_return_code("GPU_IS_LOST", rc));
    EXPECT_EQ(rc, kErrorGpuIsLost);
    ASSERT_TRUE(parse_return_code("NVML_ERROR_NO_PERMISSION", rc));
    EXPECT_EQ(rc, kErrorNoPermission);
    ASSERT_TRUE(parse_return_code("timeout", rc));
    EXPECT_EQ(rc, kErrorTimeout);
    ASSERT_TRUE(parse_return_code("999", rc));
    EXPECT_EQ(rc, kErrorUnknown);
    ASSERT_TRUE(parse_return_code("NVML_SUCCESS", rc));
    EXPECT_EQ(rc, kSuccess);
    EXPECT_FALSE(parse_return_code("NOT_A_CODE", rc));
    EXPECT_FALSE(parse_return_code("", rc));
}

}  // namespace
}  // namespace pals::power::nvml
