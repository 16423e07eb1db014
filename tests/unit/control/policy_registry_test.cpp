// The one list of policies: each entry builds what it declares.
#include "pals/control/policy_registry.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "pals/profile/model_fit.hpp"
#include "status_assertions.hpp"
#include "unit/profile/profile_test_helpers.hpp"

namespace pals::control {
namespace {

TEST(PolicyRegistryTest, EveryEntryBuildsThePolicyItDeclares) {
    auto fit = profile::fit_profile(profile::testing::small_sim_profile());
    ASSERT_OK(fit);
    auto model = profile::PowerModel::parse(profile::model_json(fit.value()), "small");
    ASSERT_OK(model);
    PolicyContext context;
    context.model = std::make_shared<const profile::PowerModel>(std::move(model).value());
    sim::NodeConfig twin;  // for the digital-twin policy
    twin.model = model::load_model_spec(std::string(PALS_SHARED_DIR) +
                                        "/models/meta-llama__Llama-3.1-8B-Instruct.json")
                     .value();
    twin.gpu = sim::find_gpu_spec("H100-SXM").value();
    context.twin_node = twin;
    std::set<std::string_view> names;
    for (const PolicyInfo& info : policy_registry()) {
        EXPECT_TRUE(names.insert(info.name).second) << info.name << " listed twice";
        EXPECT_FALSE(info.summary.empty()) << info.name;
        if (!info.make) {
            EXPECT_TRUE(info.evaluation_only) << info.name;  // the evaluation runs oracles itself
            continue;
        }
        const std::unique_ptr<Policy> policy = info.make(context);
        ASSERT_NE(policy, nullptr) << info.name;
        EXPECT_EQ(policy->name(), info.name);
        EXPECT_EQ(policy->honours_budget(), info.honours_budget) << info.name;
    }
    EXPECT_EQ(find_policy("pals")->needs_model, true);
    EXPECT_EQ(find_policy("clock-only")->locks_clocks, true);
    EXPECT_EQ(find_policy("cap-only")->locks_clocks, false);
    EXPECT_EQ(find_policy("nope"), nullptr);
    EXPECT_TRUE(find_policy("pals-mpc")->evaluation_only);  // needs a twin of the node
}

TEST(PolicyRegistryTest, NamesAndErrors) {
    const std::vector<std::string_view> live = policy_names(true);
    EXPECT_EQ(std::find(live.begin(), live.end(), "static-oracle"), live.end());
    EXPECT_NE(std::find(live.begin(), live.end(), "pals"), live.end());
    EXPECT_EQ(policy_names().size(), policy_registry().size());
    EXPECT_STATUS(unknown_policy("cap-onyl", true), StatusCode::kInvalidArgument,
                  "unknown policy 'cap-onyl' (did you mean 'cap-only'?) (known: default, cap-only");
}

}  // namespace
}  // namespace pals::control
