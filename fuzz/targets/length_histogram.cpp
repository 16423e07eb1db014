// Length histogram JSON (LengthDistribution::parse takes "FILE" or "FILE#KEY"): the input is
// written to a scratch file and parsed as a whole and under the keys ML.ENERGY's file uses.
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>

#include "fuzz_util.hpp"
#include "pals/workload/workload.hpp"

namespace {
void use(const pals::Result<pals::workload::LengthDistribution>& d) {
    if (!d.is_ok())
        return;
    std::mt19937_64 rng(1);
    for (int i = 0; i < 4; ++i) (void)d.value().sample(rng);
    (void)d.value().mean();
    (void)d.value().describe();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto path = pals::fuzz::write_scratch("lengths.json", data, size);
    use(pals::workload::LengthDistribution::parse(path.string()));
    use(pals::workload::LengthDistribution::parse(path.string() + "#a"));
    // The text forms ("N", "uniform:LO:HI", "fixed:N") when the input is short and has no '/'.
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    if (size < 64 && text.find('/') == std::string_view::npos &&
        text.find('.') == std::string_view::npos) {
        use(pals::workload::LengthDistribution::parse(text));
    }
    return 0;
}
