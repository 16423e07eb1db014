#include "pals/profile/profile_store.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>

#include "pals/common/file_util.hpp"
#include "profile_test_helpers.hpp"

namespace pals::profile {
namespace {

using testing::synthetic_profile;
using testing::synthetic_row;

/// Replaces the `column`-th field of data line `line` (1-based, header = 1) of CSV text.
std::string replace_field(const std::string& csv, int line, const std::string& column,
                          const std::string& value) {
    std::vector<std::string> lines;
    std::size_t pos = 0;
    while (pos < csv.size()) {
        const std::size_t end = csv.find('\n', pos);
        lines.push_back(csv.substr(pos, end - pos));
        pos = end + 1;
    }
    const auto& cols = profile_columns();
    const auto index =
        static_cast<std::size_t>(std::find(cols.begin(), cols.end(), column) - cols.begin());
    std::string& l = lines[static_cast<std::size_t>(line - 1)];
    std::vector<std::string> fields;
    std::size_t p = 0;
    while (true) {
        const std::size_t c = l.find(',', p);
        fields.push_back(l.substr(p, c == std::string::npos ? std::string::npos : c - p));
        if (c == std::string::npos) {
            break;
        }
        p = c + 1;
    }
    fields[index] = value;
    l.clear();
    for (std::size_t i = 0; i < fields.size(); ++i) {
        if (i > 0) {
            l += ',';
        }
        l += fields[i];
    }
    std::string out;
    for (const auto& x : lines) {
        out += x + "\n";
    }
    return out;
}

TEST(ProfileStoreTest, CsvRoundTripIsExact) {
    ProfileTable t = synthetic_profile({200, 450.5, 700}, {1, 8});
    t.rows[0].itl_p99_s = std::nan("");  // a window without observations
    t.rows[1].shape.model = "has,comma \"quoted\"";
    t.rows[1].saturated = false;
    const std::string csv = format_profile_csv(t);
    auto back = parse_profile_csv(csv, "p.csv");
    ASSERT_OK(back);
    ASSERT_EQ(back->rows.size(), t.rows.size());
    EXPECT_EQ(format_profile_csv(back.value()), csv);
    EXPECT_EQ(back->rows[1].shape.model, "has,comma \"quoted\"");
    EXPECT_FALSE(back->rows[1].saturated);
    EXPECT_TRUE(std::isnan(back->rows[0].itl_p99_s));
    EXPECT_DOUBLE_EQ(back->rows[1].power_cap_w, 450.5);
    EXPECT_DOUBLE_EQ(back->rows[2].throughput_tok_s, t.rows[2].throughput_tok_s);
    EXPECT_EQ(back->lines[0], 2);
    EXPECT_EQ(back->where(2), "p.csv:4");
}

TEST(ProfileStoreTest, HeaderNamesEveryColumnOnce) {
    const auto& cols = profile_columns();
    std::set<std::string> unique(cols.begin(), cols.end());
    EXPECT_EQ(unique.size(), cols.size());
    for (const char* needed :
         {"workload", "power_cap_w", "batch_cap", "throughput_tok_s", "power_w", "j_per_token",
          "itl_p90_s", "ttft_p99_s", "avg_batch", "sm_clock_mhz", "num_experts",
          "experts_per_token", "active_params_b", "total_params_b"}) {
        EXPECT_TRUE(unique.count(needed)) << needed;
    }
}

TEST(ProfileStoreTest, ColumnsInAnyOrderAndExtraColumnsAreAccepted) {
    const std::string csv = format_profile_csv(synthetic_profile({200, 300}, {1}));
    // Move the first column to the end and add an unknown one.
    std::string reordered;
    std::size_t pos = 0;
    while (pos < csv.size()) {
        const std::size_t end = csv.find('\n', pos);
        const std::string line = csv.substr(pos, end - pos);
        const std::size_t comma = line.find(',');
        reordered += line.substr(comma + 1) + "," + line.substr(0, comma) +
                     (pos == 0 ? ",note" : ",x") + "\n";
        pos = end + 1;
    }
    auto back = parse_profile_csv(reordered, "r.csv");
    ASSERT_OK(back);
    EXPECT_EQ(back->rows[1].workload, "default");
    EXPECT_DOUBLE_EQ(back->rows[1].power_cap_w, 300.0);
}

TEST(ProfileStoreTest, MissingColumnNamesFileLineAndColumn) {
    std::string csv = format_profile_csv(synthetic_profile({200, 300}, {1}));
    csv.replace(csv.find("itl_p90_s"), 9, "itl_p91_s");
    EXPECT_STATUS(parse_profile_csv(csv, "bad.csv"), StatusCode::kInvalidArgument,
                  "bad.csv:1: header lacks column(s) itl_p90_s");
}

TEST(ProfileStoreTest, BadValueNamesFileLineAndColumn) {
    const std::string csv = format_profile_csv(synthetic_profile({200, 300}, {1}));
    EXPECT_STATUS(parse_profile_csv(replace_field(csv, 3, "power_w", "abc"), "bad.csv"),
                  StatusCode::kInvalidArgument,
                  "bad.csv:3: column 'power_w': 'abc' is not a number");
    EXPECT_STATUS(parse_profile_csv(replace_field(csv, 2, "batch_cap", "1.5"), "bad.csv"),
                  StatusCode::kInvalidArgument, "bad.csv:2: column 'batch_cap'");
    EXPECT_STATUS(parse_profile_csv(replace_field(csv, 2, "power_cap_w", "nan"), "bad.csv"),
                  StatusCode::kInvalidArgument, "bad.csv:2: column 'power_cap_w'");
}

TEST(ProfileStoreTest, WrongFieldCountIsAnError) {
    std::string csv = format_profile_csv(synthetic_profile({200, 300}, {1}));
    csv += "default,250\n";
    EXPECT_STATUS(parse_profile_csv(csv, "short.csv"), StatusCode::kInvalidArgument,
                  "short.csv:4: 2 fields");
}

TEST(ProfileStoreTest, DuplicatePointNamesBothLines) {
    ProfileTable t = synthetic_profile({200, 300}, {1});
    t.append(synthetic_row("default", 300, 1));
    EXPECT_STATUS(parse_profile_csv(format_profile_csv(t), "dup.csv"), StatusCode::kInvalidArgument,
                  "dup.csv:4: duplicate point workload=default power_cap_w=300 batch_cap=1 "
                  "(first at line 3)");
}

TEST(ProfileStoreTest, EmptyFileIsAnErrorButAHeaderAloneIsAnEmptyTable) {
    EXPECT_STATUS(parse_profile_csv("", "empty.csv"), StatusCode::kInvalidArgument,
                  "empty.csv: empty file");
    auto header_only = parse_profile_csv(profile_csv_header() + "\n", "h.csv");
    ASSERT_OK(header_only);
    EXPECT_TRUE(header_only->rows.empty());
}

TEST(ProfileStoreTest, WriteIsAtomicAndReadBack) {
    const auto dir = testing::temp_dir("store");
    const auto path = dir / "p.csv";
    const ProfileTable t = synthetic_profile({200, 300}, {1, 2});
    ASSERT_OK(write_profile(path, t));
    auto back = read_profile(path);
    ASSERT_OK(back);
    EXPECT_EQ(back->rows.size(), 4u);
    // No temporary file is left next to it.
    int files = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        (void)e;
        ++files;
    }
    EXPECT_EQ(files, 1);
    EXPECT_STATUS(read_profile(dir / "missing.csv"), StatusCode::kNotFound, "missing.csv");
    std::filesystem::remove_all(dir);
}

TEST(ProfileStoreTest, FindMatchesWorkloadCapAndBatch) {
    const ProfileTable t = synthetic_profile({200, 300}, {1, 2}, {"a", "b"});
    EXPECT_EQ(t.find("b", 300.0, 2), 7u);
    EXPECT_EQ(t.find("b", 300.0 + 1e-9, 2), 7u);
    EXPECT_EQ(t.find("c", 300.0, 2), static_cast<std::size_t>(-1));
    EXPECT_EQ(t.find("a", 250.0, 2), static_cast<std::size_t>(-1));
}

TEST(ModelShapeTest, CarriesTheMoeShape) {
    const ModelShape moe = model_shape_of(testing::qwen3_moe(), "H100-SXM", 1, 1);
    EXPECT_TRUE(moe.is_moe());
    EXPECT_EQ(moe.num_experts, 128);
    EXPECT_EQ(moe.experts_per_token, 8);
    EXPECT_GT(moe.total_params_b, 25.0);
    EXPECT_LT(moe.active_params_b, 5.0);
    EXPECT_NE(moe.describe().find("MoE: 128 experts, top-8"), std::string::npos);
    const ModelShape dense = model_shape_of(testing::llama8b(), "H100-SXM", 1, 1);
    EXPECT_FALSE(dense.is_moe());
    EXPECT_NEAR(dense.active_params_b, dense.total_params_b, 1.0);
    EXPECT_FALSE(dense.same_setup(moe));
}

TEST(ModelShapeTest, ExpectedDistinctExpertsFollowsTheUniformRoutingFormula) {
    EXPECT_DOUBLE_EQ(expected_distinct_experts(128, 8, 1), 8.0);
    EXPECT_NEAR(expected_distinct_experts(8, 2, 2), 8.0 * (1.0 - 0.75 * 0.75), 1e-12);
    EXPECT_NEAR(expected_distinct_experts(128, 8, 1024), 128.0, 1e-9);
    EXPECT_EQ(expected_distinct_experts(0, 0, 64), 0.0);
}

}  // namespace
}  // namespace pals::profile
