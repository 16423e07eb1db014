// The one typed reader of JSON object fields (model configs, MODEL.json).
#include "pals/common/json_fields.hpp"

#include <gtest/gtest.h>

#include "status_assertions.hpp"

namespace pals {
namespace {

TEST(JsonFieldsTest, ReadsTypedFieldsAndTheFirstErrorSticks) {
    const auto j = nlohmann::json::parse(
        R"({"n": 4, "x": 2.5, "s": "a", "b": true, "null": null, "list": [1, 2]})");
    JsonFields r(j, "m.json", "model.");
    EXPECT_EQ(r.require_int("n"), 4);
    EXPECT_DOUBLE_EQ(r.require_number("x"), 2.5);
    EXPECT_EQ(r.require_string("s"), "a");
    EXPECT_TRUE(r.optional_bool("b", false));
    EXPECT_EQ(r.optional_int("null", 7), 7);  // null is absent
    EXPECT_EQ(r.optional_ints("list"), (std::vector<int>{1, 2}));
    EXPECT_TRUE(r.ok());
    EXPECT_DOUBLE_EQ(r.require_number("s"), 0.0);
    r.require_int("missing");
    EXPECT_STATUS(r.status(), StatusCode::kInvalidArgument,
                  "m.json: field 'model.s' must be a finite number");
}

TEST(JsonFieldsTest, MissingAndMistypedFieldsAreNamed) {
    const auto j = nlohmann::json::parse(R"({"n": -1, "s": 3})");
    JsonFields a(j, "f.json", "");
    a.require_string("name");
    EXPECT_STATUS(a.status(), StatusCode::kInvalidArgument, "f.json: missing field 'name'");
    JsonFields b(j, "f.json", "");
    b.require_int("n", 0);
    EXPECT_STATUS(b.status(), StatusCode::kInvalidArgument,
                  "field 'n' must be a non-negative integer");
    JsonFields c(j, "f.json", "");
    c.require_string("s");
    EXPECT_STATUS(c.status(), StatusCode::kInvalidArgument, "field 's' must be a string");
}

}  // namespace
}  // namespace pals
