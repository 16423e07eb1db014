#include "pals/common/json.hpp"

#include <gtest/gtest.h>

#include <string>

namespace pals {
namespace {

TEST(ParseJson, ParsesAnOrdinaryValue) {
    auto j = parse_json(R"({"a": [1, 2, {"b": "x[y{"}]})", "body");
    ASSERT_TRUE(j.is_ok()) << j.status().message();
    EXPECT_EQ(j.value()["a"][2]["b"], "x[y{");
}

TEST(ParseJson, RefusesDeepNestingWithoutRecursing) {
    const std::string deep(200000, '[');
    auto j = parse_json(deep, "trace.jsonl:3");
    ASSERT_FALSE(j.is_ok());
    EXPECT_EQ(j.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(j.status().message().find("trace.jsonl:3"), std::string::npos);
    EXPECT_NE(j.status().message().find("deeper than 64"), std::string::npos);
}

TEST(ParseJson, BracketsInsideStringsDoNotCount) {
    const std::string text = "{\"s\": \"" + std::string(1000, '[') + "\\\"\"}";
    auto j = parse_json(text, "body");
    ASSERT_TRUE(j.is_ok()) << j.status().message();
}

TEST(ParseJson, DepthAtTheLimitIsAccepted) {
    const std::string text = std::string(64, '[') + std::string(64, ']');
    EXPECT_TRUE(parse_json(text, "body").is_ok());
    const std::string over = std::string(65, '[') + std::string(65, ']');
    EXPECT_FALSE(parse_json(over, "body").is_ok());
}

TEST(ParseJson, NumberOverflowIsAnErrorNotAnException) {
    auto j = parse_json(R"({"watts": 1e400})", "body");
    ASSERT_FALSE(j.is_ok());
    EXPECT_EQ(j.status().code(), StatusCode::kInvalidArgument);
}

TEST(ParseJson, MalformedAndOversizedTextAreErrors) {
    EXPECT_FALSE(parse_json("{\"a\":", "body").is_ok());
    EXPECT_FALSE(parse_json("", "body").is_ok());
    auto big = parse_json("[1,2,3]", "body", JsonLimits{.max_depth = 64, .max_bytes = 4});
    ASSERT_FALSE(big.is_ok());
    EXPECT_NE(big.status().message().find("exceeds the limit"), std::string::npos);
}

}  // namespace
}  // namespace pals
