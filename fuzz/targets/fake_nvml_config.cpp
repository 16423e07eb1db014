// The fake NVML library's configuration JSON (power::fake_nvml::parse_config).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fake_nvml/fake_driver.hpp"
#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    std::string error;
    (void)pals::power::fake_nvml::parse_config(text, error);
    return 0;
}
