#include "pals/common/status.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "status_assertions.hpp"

namespace pals {
namespace {

Result<int> parse_digit(char c) {
    if (c < '0' || c > '9') {
        return Status::invalid_argument(std::string("'") + c + "' is not a digit");
    }
    return c - '0';
}

Result<int> sum_of_digits(char a, char b) {
    PALS_ASSIGN_OR_RETURN(const int first, parse_digit(a));
    PALS_ASSIGN_OR_RETURN(auto second, parse_digit(b));
    return first + second;
}

Status store_digit(char c, int& out) {
    PALS_ASSIGN_OR_RETURN(out, parse_digit(c));  // an existing variable
    return Status::ok();
}

Result<std::unique_ptr<std::string>> boxed(bool ok) {
    if (!ok) {
        return Status::not_found("no box");
    }
    return std::make_unique<std::string>("box");
}

Result<std::size_t> boxed_length(bool ok) {
    PALS_ASSIGN_OR_RETURN(std::unique_ptr<std::string> box, boxed(ok));  // move-only values
    return box->size();
}

TEST(AssignOrReturnTest, DeclaresTheValueWhenOk) {
    Result<int> sum = sum_of_digits('3', '4');
    ASSERT_OK(sum);
    EXPECT_EQ(*sum, 7);
}

TEST(AssignOrReturnTest, ReturnsTheFirstErrorUnchanged) {
    EXPECT_STATUS(sum_of_digits('x', '4'), StatusCode::kInvalidArgument, "'x' is not a digit");
    EXPECT_EQ(sum_of_digits('3', 'y').status().message(), "'y' is not a digit");
}

TEST(AssignOrReturnTest, AssignsAnExistingVariableAndReturnsIntoStatus) {
    int out = -1;
    EXPECT_OK(store_digit('5', out));
    EXPECT_EQ(out, 5);
    EXPECT_STATUS(store_digit('z', out), StatusCode::kInvalidArgument, "not a digit");
    EXPECT_EQ(out, 5);  // left alone on error
}

TEST(AssignOrReturnTest, MovesMoveOnlyValues) {
    Result<std::size_t> n = boxed_length(true);
    ASSERT_OK(n);
    EXPECT_EQ(*n, 3u);
    EXPECT_STATUS(boxed_length(false), StatusCode::kNotFound, "no box");
}

}  // namespace
}  // namespace pals
