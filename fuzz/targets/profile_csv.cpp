// Profile CSV (profile::parse_profile_csv); a table that parses is formatted and parsed again.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_util.hpp"
#include "pals/profile/profile_store.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace p = pals::profile;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto table = p::parse_profile_csv(text, "fuzz.csv");
    if (table.is_ok()) {
        const std::string again = p::format_profile_csv(table.value());
        (void)p::parse_profile_csv(again, "fuzz-again.csv");
    }
    return 0;
}
