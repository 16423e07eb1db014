// Scenario TOML (control::load_scenario takes a path: written to a scratch file; relative paths
// it names resolve in the scratch folder, where nothing else is).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_util.hpp"
#include "pals/control/scenario.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto path = pals::fuzz::write_scratch("scenario.toml", data, size);
    (void)pals::control::load_scenario(path, pals::fuzz::scratch_dir());
    return 0;
}
