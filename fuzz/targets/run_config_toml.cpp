// Run configuration file (run::load_run_config with a TOML file: written to a scratch file).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_util.hpp"
#include "pals/run/run_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto path = pals::fuzz::write_scratch("run.toml", data, size);
    pals::run::RunConfigSources sources;
    sources.file = path.string();
    (void)pals::run::load_run_config(sources);
    return 0;
}
