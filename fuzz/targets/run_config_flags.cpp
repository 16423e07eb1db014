// Run configuration from flags, environment and --group values (run::load_run_config).
// One item per line: "PALS_NAME=value" is an environment variable, "group:SPEC" a --group value,
// "key=value" a flag. Each group spec also goes through parse_group_spec alone.
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz_util.hpp"
#include "pals/run/run_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace c = pals::run;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    std::map<std::string, std::string> env;
    c::RunConfigSources sources;
    for (std::string_view line : pals::fuzz::split_lines(text)) {
        if (line.substr(0, 6) == "group:") {
            sources.group_flags.emplace_back(line.substr(6));
            (void)c::parse_group_spec(line.substr(6), "--group #1");
            continue;
        }
        const std::size_t eq = line.find('=');
        if (eq == std::string_view::npos)
            continue;
        std::string key(line.substr(0, eq));
        std::string value(line.substr(eq + 1));
        if (key.rfind("PALS_", 0) == 0) {
            env[key] = value;
        } else {
            sources.flags.emplace_back(std::move(key), std::move(value));
        }
    }
    sources.env = [&env](const std::string& name) -> std::optional<std::string> {
        auto it = env.find(name);
        if (it == env.end())
            return std::nullopt;
        return it->second;
    };
    (void)c::load_run_config(sources);
    return 0;
}
