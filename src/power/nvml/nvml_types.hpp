#pragma once
/// @file nvml_types.hpp
/// @brief The part of NVML's C ABI that PALS uses, declared without NVIDIA's headers
/// (docs/research/integration.md section 5, from nvml.h of CUDA 13.x, NVML_API_VERSION 13).
///
/// Shared by NvmlBackend (which resolves these functions with dlsym) and by the fake
/// libnvidia-ml.so.1 (src/fake_nvml/, which defines them with C linkage and checks each
/// definition against the function-pointer types below, so both sides agree on the ABI).
/// Units are NVML's: mW, mJ, MHz.

#include <cstdint>

namespace pals::power::nvml {

/// nvmlReturn_t: a C enum, passed as a 32-bit integer.
using ReturnCode = int;

/// The nvmlReturn_t values.
inline constexpr ReturnCode kSuccess = 0;
inline constexpr ReturnCode kErrorUninitialized = 1;
inline constexpr ReturnCode kErrorInvalidArgument = 2;
inline constexpr ReturnCode kErrorNotSupported = 3;
inline constexpr ReturnCode kErrorNoPermission = 4;
inline constexpr ReturnCode kErrorAlreadyInitialized = 5;
inline constexpr ReturnCode kErrorNotFound = 6;
inline constexpr ReturnCode kErrorInsufficientSize = 7;
inline constexpr ReturnCode kErrorInsufficientPower = 8;
inline constexpr ReturnCode kErrorDriverNotLoaded = 9;
inline constexpr ReturnCode kErrorTimeout = 10;
inline constexpr ReturnCode kErrorIrqIssue = 11;
inline constexpr ReturnCode kErrorLibraryNotFound = 12;
inline constexpr ReturnCode kErrorFunctionNotFound = 13;
inline constexpr ReturnCode kErrorCorruptedInforom = 14;
inline constexpr ReturnCode kErrorGpuIsLost = 15;
inline constexpr ReturnCode kErrorResetRequired = 16;
inline constexpr ReturnCode kErrorOperatingSystem = 17;
inline constexpr ReturnCode kErrorLibRmVersionMismatch = 18;
inline constexpr ReturnCode kErrorInUse = 19;
inline constexpr ReturnCode kErrorMemory = 20;
inline constexpr ReturnCode kErrorNoData = 21;
inline constexpr ReturnCode kErrorVgpuEccNotSupported = 22;
inline constexpr ReturnCode kErrorInsufficientResources = 23;
inline constexpr ReturnCode kErrorFreqNotSupported = 24;
inline constexpr ReturnCode kErrorArgumentVersionMismatch = 25;
inline constexpr ReturnCode kErrorDeprecated = 26;
inline constexpr ReturnCode kErrorNotReady = 27;
inline constexpr ReturnCode kErrorGpuNotFound = 28;
inline constexpr ReturnCode kErrorInvalidState = 29;
inline constexpr ReturnCode kErrorResetTypeNotSupported = 30;
inline constexpr ReturnCode kErrorUnknown = 999;

/// struct nvmlDevice_st: opaque to callers; the fake library defines it.
struct DeviceOpaque;
/// nvmlDevice_t.
using Device = DeviceOpaque*;

/// nvmlClockType_t (a C enum).
using ClockType = int;
inline constexpr ClockType kClockGraphics = 0;
inline constexpr ClockType kClockSm = 1;
inline constexpr ClockType kClockMem = 2;
inline constexpr ClockType kClockVideo = 3;

/// NVML_DEVICE_NAME_V2_BUFFER_SIZE and NVML_DEVICE_UUID_V2_BUFFER_SIZE.
inline constexpr unsigned int kDeviceNameBufferSize = 96;
inline constexpr unsigned int kDeviceUuidBufferSize = 96;
/// NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE.
inline constexpr unsigned int kDriverVersionBufferSize = 80;

/// Function-pointer types, one per NVML function PALS calls. The comment names the symbols,
/// newest first: the backend resolves the first one present.
using InitFn = ReturnCode (*)();                                       // nvmlInit_v2, nvmlInit
using ShutdownFn = ReturnCode (*)();                                   // nvmlShutdown
using ErrorStringFn = const char* (*)(ReturnCode);                     // nvmlErrorString
using SystemGetDriverVersionFn = ReturnCode (*)(char*, unsigned int);  // nvmlSystemGetDriverVersion
using DeviceGetCountFn =
    ReturnCode (*)(unsigned int*);  // nvmlDeviceGetCount_v2, nvmlDeviceGetCount
using DeviceGetHandleByIndexFn = ReturnCode (*)(unsigned int, Device*);  // ..._v2, ...ByIndex
using DeviceGetNameFn = ReturnCode (*)(Device, char*, unsigned int);     // nvmlDeviceGetName
using DeviceGetUuidFn = ReturnCode (*)(Device, char*, unsigned int);     // nvmlDeviceGetUUID
using DeviceGetUintFn = ReturnCode (*)(Device, unsigned int*);
// ^ nvmlDeviceGetPowerUsage (mW), nvmlDeviceGetPowerManagementLimit (mW),
//   nvmlDeviceGetPowerManagementDefaultLimit (mW), nvmlDeviceGetEnforcedPowerLimit (mW)
using DeviceGetTotalEnergyFn = ReturnCode (*)(Device, unsigned long long*);                // mJ
using DeviceGetLimitConstraintsFn = ReturnCode (*)(Device, unsigned int*, unsigned int*);  // mW
using DeviceSetPowerLimitFn = ReturnCode (*)(Device, unsigned int);                        // mW
using DeviceGetClockInfoFn = ReturnCode (*)(Device, ClockType, unsigned int*);
// ^ nvmlDeviceGetClockInfo, nvmlDeviceGetMaxClockInfo (MHz)
using DeviceGetClocksEventReasonsFn = ReturnCode (*)(Device, unsigned long long*);
// ^ nvmlDeviceGetCurrentClocksEventReasons, nvmlDeviceGetCurrentClocksThrottleReasons
using DeviceSetGpuLockedClocksFn = ReturnCode (*)(Device, unsigned int, unsigned int);  // MHz
using DeviceResetGpuLockedClocksFn = ReturnCode (*)(Device);

}  // namespace pals::power::nvml
