// Hugging Face config.json (model::parse_model_spec), with and without a dtype override.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_util.hpp"
#include "pals/model/model_spec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto spec = pals::model::parse_model_spec(text, "fuzz.json");
    if (spec.is_ok()) {
        (void)spec.value().weight_bytes_total();
        (void)spec.value().kv_bytes_per_token();
    }
    auto fp8 = pals::model::parse_model_spec(text, "fuzz.json", pals::model::WeightDtype::kFp8);
    if (fp8.is_ok())
        (void)fp8.value().weight_bytes_total();
    return 0;
}
