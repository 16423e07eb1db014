// Fitted power model MODEL.json (profile::PowerModel::parse), then a few queries.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_util.hpp"
#include "pals/profile/power_model.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace p = pals::profile;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto model = p::PowerModel::parse(text, "fuzz.json");
    if (model.is_ok()) {
        (void)model.value().workloads();
        (void)model.value().shape();
        const auto& m = model.value();
        const double mid_w = 0.5 * (m.cap_min_w() + m.cap_max_w());
        for (int batch : m.batch_caps()) (void)m.predict(mid_w, batch);
        (void)m.gpus_per_group();
    }
    return 0;
}
