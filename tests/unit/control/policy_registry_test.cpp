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
    std::set<std::string_view> names;
    for (const PolicyInfo& info : policy_registry()) {
        EXPECT_TRUE(names.insert(info.name).second) << info.name << " listed twice";
        EXPECT_FALSE(info.summary.empty()) << info.name;
        if (info.evaluation_only) {
            EXPECT_FALSE(info.make) << info.name;  // the evaluation runs oracles itself
            continue;
        }
        ASSERT_TRUE(info.make) << info.name;
        const std::unique_ptr<Policy> policy = info.make(context);
        ASSERT_NE(policy, nullptr) << info.name;
        EXPECT_EQ(policy->name(), info.name);
        EXPECT_EQ(policy->honours_budget(), info.honours_budget) << info.name;
    }
    EXPECT_EQ(find_policy("pals")->needs_model, true);
    EXPECT_EQ(find_policy("clock-only")->locks_clocks, true);
    EXPECT_EQ(find_policy("cap-only")->locks_clocks, false);
    EXPECT_EQ(find_policy("nope"), nullptr);
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
