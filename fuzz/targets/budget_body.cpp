// PUT /v1/budget bodies of the daemon's HTTP API (api::parse_budget_request).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_util.hpp"
#include "pals/api/http_server.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string body(reinterpret_cast<const char*>(data), size);
    (void)pals::api::parse_budget_request(body);
    return 0;
}
