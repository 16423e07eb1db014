// Azure LLM inference trace CSV (workload::load_azure_trace takes a path: written to a scratch
// file).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_util.hpp"
#include "pals/workload/workload.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto path = pals::fuzz::write_scratch("trace.csv", data, size);
    auto result = pals::workload::load_azure_trace(path);
    if (result.is_ok()) {
        double sum = 0.0;
        for (const auto& r : result.value()) sum += r.arrival_s + r.input_tokens + r.output_tokens;
        (void)sum;
    }
    return 0;
}
