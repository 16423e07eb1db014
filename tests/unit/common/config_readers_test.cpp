#include <gtest/gtest.h>

#include <string>

#include "pals/common/config_keys.hpp"
#include "pals/common/toml_values.hpp"
#include "status_assertions.hpp"

namespace pals {
namespace {

TEST(ConfigKeysTest, EveryKeyIsAFlagAndAVariable) {
    EXPECT_EQ(config_env_name("period_s"), "PALS_PERIOD_S");
    EXPECT_EQ(config_flag_name("period_s"), "--period-s");
    EXPECT_EQ(config_env_name("slo_tpot_s"), "PALS_SLO_TPOT_S");
}

TEST(ConfigKeysTest, SuggestsTheClosestKnownName) {
    const std::vector<std::string_view> known = {"budget_w", "period_s", "policy"};
    EXPECT_EQ(did_you_mean("perod_s", known), " (did you mean 'period_s'?)");
    EXPECT_EQ(did_you_mean("budget_watts", known), " (did you mean 'budget_w'?)");  // a prefix
    EXPECT_EQ(did_you_mean("completely_else", known), "");
}

toml::table parse(const std::string& text) {
    return toml::parse(std::string_view(text), std::string_view("test.toml"));
}

TEST(TomlValuesTest, ReadsEachTypeAndNamesWhatWasFound) {
    const toml::table t = parse("s = \"x\"\ni = 3\nf = 2.5\nb = true\nbig = 9999999999\n");
    EXPECT_EQ(toml_value<std::string>(*t.get("s")).value(), "x");
    EXPECT_EQ(toml_value<int>(*t.get("i")).value(), 3);
    EXPECT_DOUBLE_EQ(toml_value<double>(*t.get("i")).value(), 3.0);  // integers are numbers
    EXPECT_DOUBLE_EQ(toml_value<double>(*t.get("f")).value(), 2.5);
    EXPECT_STATUS(toml_value<std::string>(*t.get("i")), StatusCode::kInvalidArgument,
                  "must be a string, not an integer");
    EXPECT_STATUS(toml_value<double>(*t.get("b")), StatusCode::kInvalidArgument,
                  "must be a number, not a boolean");
    EXPECT_STATUS(toml_value<int>(*t.get("f")), StatusCode::kInvalidArgument,
                  "must be an integer, not a number");
    EXPECT_STATUS(toml_value<int>(*t.get("big")), StatusCode::kInvalidArgument, "out of range");
    EXPECT_EQ(toml_value<std::int64_t>(*t.get("big")).value(), 9999999999);
}

TEST(TomlValuesTest, RefusesNonFiniteNumbersAndLocatesKeys) {
    const toml::table t = parse("a = 1\nx = inf\n");
    EXPECT_STATUS(toml_value<double>(*t.get("x")), StatusCode::kInvalidArgument,
                  "must be a finite number");
    EXPECT_EQ(toml_location("test.toml", t.get("x")->source()), "test.toml:2:5");
}

}  // namespace
}  // namespace pals
