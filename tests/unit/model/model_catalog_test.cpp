// Models by name: a path, a file name, a Hugging Face id or the name alone, in models/.
#include "pals/model/model_catalog.hpp"

#include <gtest/gtest.h>

#include "status_assertions.hpp"

namespace pals::model {
namespace {

const std::filesystem::path kModels = std::filesystem::path(PALS_SHARED_DIR) / "models";
const std::filesystem::path kMixtral = kModels / "mistralai__Mixtral-8x7B-Instruct-v0.1.json";

TEST(ModelCatalogTest, FindsAModelByPathFileIdOrName) {
    for (const char* name :
         {"mistralai__Mixtral-8x7B-Instruct-v0.1.json", "mistralai__Mixtral-8x7B-Instruct-v0.1",
          "mistralai/Mixtral-8x7B-Instruct-v0.1", "Mixtral-8x7B-Instruct-v0.1",
          "mixtral-8x7b-instruct-v0.1"}) {
        auto found = find_model_config(name, kModels);
        ASSERT_TRUE(found.is_ok()) << name << ": " << found.status().message();
        EXPECT_EQ(found.value(), kMixtral) << name;
    }
    EXPECT_EQ(find_model_config(kMixtral.string(), "/nonexistent").value(), kMixtral);
}

TEST(ModelCatalogTest, AnUnknownNameListsWhatThereIs) {
    EXPECT_STATUS(find_model_config("Mixtral-8x7B-Instruct-v0.2", kModels), StatusCode::kNotFound,
                  "unknown model 'Mixtral-8x7B-Instruct-v0.2' (did you mean "
                  "'Mixtral-8x7B-Instruct-v0.1'?)");
    EXPECT_STATUS(find_model_config("llama", kModels), StatusCode::kNotFound,
                  "known: Qwen/Qwen1.5-MoE-A2.7B");
    EXPECT_STATUS(find_model_config("x", "/nonexistent"), StatusCode::kNotFound,
                  "(no models there)");
}

TEST(ModelCatalogTest, ListsConfigsWithTheirIds) {
    const std::vector<std::filesystem::path> configs = model_configs(kModels);
    ASSERT_GE(configs.size(), 5U);
    EXPECT_TRUE(std::is_sorted(configs.begin(), configs.end()));
    for (const auto& c : configs) {
        EXPECT_EQ(c.extension(), ".json");  // README.md is not a model
    }
    EXPECT_EQ(model_id(kMixtral), "mistralai/Mixtral-8x7B-Instruct-v0.1");
    EXPECT_EQ(model_id("plain.json"), "plain");
}

}  // namespace
}  // namespace pals::model
