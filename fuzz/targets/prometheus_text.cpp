// Prometheus text exposition of vLLM (parse_prometheus_text, snapshot_from_text).
#include "pals/engine/vllm/prometheus_text.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_util.hpp"
#include "pals/engine/vllm/vllm_metrics.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace v = pals::engine::vllm;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    (void)v::parse_prometheus_text(text);
    (void)v::snapshot_from_text(text, v::VllmSeriesFilter{}, pals::Seconds(1.0));
    if (size < 64)
        (void)v::parse_prometheus_float(text);
    return 0;
}
