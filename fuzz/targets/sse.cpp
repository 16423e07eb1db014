// Server-sent events (loadgen::SseParser) fed in pieces, and each payload through
// parse_stream_chunk and extract_error_message. The first byte picks the piece size.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_util.hpp"
#include "pals/loadgen/sse_parser.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace l = pals::loadgen;
    if (size == 0)
        return 0;
    const std::size_t piece = static_cast<std::size_t>(data[0] % 32) + 1;
    const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
    l::SseParser parser;
    std::vector<std::string> payloads;
    for (std::size_t at = 0; at < text.size(); at += piece) {
        auto got = parser.feed(text.substr(at, std::min(piece, text.size() - at)));
        payloads.insert(payloads.end(), got.begin(), got.end());
    }
    auto rest = parser.finish();
    payloads.insert(payloads.end(), rest.begin(), rest.end());
    for (const auto& p : payloads) {
        (void)l::parse_stream_chunk(p);
        (void)l::extract_error_message(p);
    }
    (void)l::extract_error_message(text);
    return 0;
}
