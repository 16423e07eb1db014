// OpenAI request bodies of pals sim-serve (/v1/completions and /v1/chat/completions).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_util.hpp"
#include "serve/openai_protocol.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view body(reinterpret_cast<const char*>(data), size);
    (void)pals::serve::parse_completion_request(body);
    (void)pals::serve::parse_chat_request(body);
    return 0;
}
