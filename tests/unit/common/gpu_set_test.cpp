#include "pals/common/gpu_set.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "status_assertions.hpp"

namespace pals {
namespace {

using Gpus = std::vector<int>;

TEST(GpuSetTest, OneSyntaxForEveryCommand) {
    EXPECT_EQ(parse_gpu_set("0,1").value(), (Gpus{0, 1}));  // pals power, pals profile
    EXPECT_EQ(parse_gpu_set("0+1").value(), (Gpus{0, 1}));  // --group url=...,gpus=0+1
    EXPECT_EQ(parse_gpu_set("0-3").value(), (Gpus{0, 1, 2, 3}));
    EXPECT_EQ(parse_gpu_set("0-1+4, 6").value(), (Gpus{0, 1, 4, 6}));
    EXPECT_EQ(parse_gpu_set(" 2 ").value(), (Gpus{2}));
    EXPECT_EQ(parse_gpu_set("1,1").value(), (Gpus{1, 1}));  // repeats kept for the caller
}

TEST(GpuSetTest, AllNeedsAKnownCount) {
    EXPECT_EQ(parse_gpu_set("all", 3).value(), (Gpus{0, 1, 2}));
    EXPECT_STATUS(parse_gpu_set("all"), StatusCode::kInvalidArgument, "'all'");
}

TEST(GpuSetTest, IndicesStayInsideTheMachine) {
    EXPECT_STATUS(parse_gpu_set("0,4", 4), StatusCode::kInvalidArgument,
                  "GPU 4 does not exist (this machine has 4 GPUs: 0-3)");
    EXPECT_STATUS(parse_gpu_set("2-5", 4), StatusCode::kInvalidArgument, "GPU 5 does not exist");
    EXPECT_STATUS(parse_gpu_set("1024"), StatusCode::kOutOfRange, "outside 0-1023");
    EXPECT_STATUS(parse_gpu_set("0-2000000000"), StatusCode::kOutOfRange, "GPU indices are 0-1023");
    EXPECT_STATUS(parse_gpu_set("-1"), StatusCode::kOutOfRange, "outside");
}

TEST(GpuSetTest, ErrorsNameTheItem) {
    EXPECT_STATUS(parse_gpu_set("x"), StatusCode::kInvalidArgument,
                  "'x' is not a GPU index (give e.g. 0+1 or 0-3)");
    EXPECT_STATUS(parse_gpu_set("3-1"), StatusCode::kInvalidArgument,
                  "'3-1' is not a GPU range (give e.g. 0-3)");
    EXPECT_STATUS(parse_gpu_set("0,,1"), StatusCode::kInvalidArgument, "'' is not a GPU index");
    EXPECT_STATUS(parse_gpu_set(""), StatusCode::kInvalidArgument, "is not a GPU index");
}

}  // namespace
}  // namespace pals
