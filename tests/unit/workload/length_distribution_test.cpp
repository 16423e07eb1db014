#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "pals/workload/workload.hpp"

namespace pals::workload {
namespace {

const std::string kDistributions =
    std::string(PALS_SHARED_DIR) + "/calibration/mlenergy-v3/output_length_distributions.json";

std::string write_temp(const std::string& name, const std::string& content) {
    const std::string path = testing::TempDir() + "/" + name;
    std::ofstream(path, std::ios::binary) << content;
    return path;
}

double sample_mean(const LengthDistribution& d, int n, std::uint64_t seed = 7) {
    std::mt19937_64 rng(seed);
    double sum = 0.0;
    for (int i = 0; i < n; ++i) {
        sum += d.sample(rng);
    }
    return sum / n;
}

TEST(LengthDistributionTest, ParsesFixed) {
    auto d = LengthDistribution::parse("128");
    ASSERT_TRUE(d.is_ok()) << d.status().message();
    EXPECT_EQ(d->describe(), "fixed:128");
    EXPECT_DOUBLE_EQ(d->mean(), 128.0);
    std::mt19937_64 rng(1);
    EXPECT_EQ(d->sample(rng), 128);

    auto again = LengthDistribution::parse(d->describe());
    ASSERT_TRUE(again.is_ok()) << again.status().message();
    EXPECT_EQ(again->describe(), "fixed:128");
}

TEST(LengthDistributionTest, ParsesUniform) {
    auto d = LengthDistribution::parse("uniform:10:200");
    ASSERT_TRUE(d.is_ok()) << d.status().message();
    EXPECT_EQ(d->describe(), "uniform:10:200");
    EXPECT_DOUBLE_EQ(d->mean(), 105.0);
    std::mt19937_64 rng(3);
    int lo = 1000;
    int hi = 0;
    for (int i = 0; i < 20000; ++i) {
        const int x = d->sample(rng);
        lo = std::min(lo, x);
        hi = std::max(hi, x);
    }
    EXPECT_EQ(lo, 10);
    EXPECT_EQ(hi, 200);
    EXPECT_NEAR(sample_mean(*d, 20000), 105.0, 2.0);

    auto point = LengthDistribution::parse("uniform:5:5");
    ASSERT_TRUE(point.is_ok()) << point.status().message();
    EXPECT_DOUBLE_EQ(point->mean(), 5.0);
}

TEST(LengthDistributionTest, ParsesTruncatedLognormal) {
    // Long-context prompts: median 6000, sigma 0.9, 2k-128k tokens (mean ~9.9k).
    auto d = LengthDistribution::parse("lognormal:6000:0.9:2000:128000");
    ASSERT_TRUE(d.is_ok()) << d.status().message();
    EXPECT_EQ(d->describe(), "lognormal:6000:0.9:2000:128000");
    EXPECT_NEAR(d->mean(), 9889.0, 1.0);
    EXPECT_NEAR(sample_mean(*d, 200000), d->mean(), 0.01 * d->mean());
    std::mt19937_64 rng(3);
    for (int i = 0; i < 10000; ++i) {
        const int n = d->sample(rng);
        ASSERT_GE(n, 2000);
        ASSERT_LE(n, 128000);
    }
    EXPECT_EQ(LengthDistribution::parse(d->describe()).value().describe(), d->describe());
    for (const char* bad : {"lognormal:7000:0.9:2000", "lognormal:7000:0:2000:9000",
                            "lognormal:7000:x:2000:9000", "lognormal:100:1:2000:9000"}) {
        EXPECT_FALSE(LengthDistribution::parse(bad).is_ok()) << bad;
    }
}

TEST(LengthDistributionTest, RejectsBadText) {
    struct Case {
        const char* text;
        const char* substring;
    };
    const std::vector<Case> cases = {
        {"", "empty"},
        {"12x", "not an integer"},
        {"0", ">= 1"},
        {"-5", ">= 1"},
        {"uniform:10", "uniform:LO:HI"},
        {"uniform:a:20", "LO 'a' is not an integer"},
        {"uniform:10:2b", "HI '2b' is not an integer"},
        {"uniform:0:20", "LO must be >= 1"},
        {"uniform:30:20", "greater than HI"},
        {"99999999999", "not an integer"},
    };
    for (const Case& c : cases) {
        auto d = LengthDistribution::parse(c.text);
        ASSERT_FALSE(d.is_ok()) << c.text;
        EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument) << c.text;
        EXPECT_NE(d.status().message().find(c.substring), std::string::npos)
            << c.text << " -> " << d.status().message();
    }
}

TEST(LengthDistributionTest, FactoriesRejectProgrammerErrors) {
    EXPECT_THROW((void)LengthDistribution::fixed(0), std::invalid_argument);
    EXPECT_THROW((void)LengthDistribution::uniform(5, 4), std::invalid_argument);
    EXPECT_THROW((void)LengthDistribution::uniform(0, 4), std::invalid_argument);
}

TEST(LengthDistributionTest, HistogramSamplesWithinOccupiedBins) {
    auto d = LengthDistribution::histogram({0.0, 10.0, 20.0, 30.0}, {1.0, 0.0, 3.0});
    ASSERT_TRUE(d.is_ok()) << d.status().message();
    EXPECT_EQ(d->describe(), "histogram(3 bins)");
    // Midpoints 5 and 25 weighted 1:3.
    EXPECT_DOUBLE_EQ(d->mean(), 20.0);
    std::mt19937_64 rng(11);
    for (int i = 0; i < 5000; ++i) {
        const int x = d->sample(rng);
        EXPECT_GE(x, 1);
        EXPECT_LE(x, 30);
        EXPECT_TRUE(x <= 10 || x >= 20) << x << " lies in the empty bin";
    }
    EXPECT_NEAR(sample_mean(*d, 40000), 20.0, 0.5);
}

TEST(LengthDistributionTest, HistogramRejectsBadInput) {
    EXPECT_FALSE(LengthDistribution::histogram({0.0, 1.0}, {}).is_ok());
    EXPECT_FALSE(LengthDistribution::histogram({0.0, 1.0}, {1.0, 2.0}).is_ok());
    EXPECT_FALSE(LengthDistribution::histogram({0.0, 2.0, 1.0}, {1.0, 2.0}).is_ok());
    EXPECT_FALSE(LengthDistribution::histogram({0.0, 1.0, 2.0}, {1.0, -2.0}).is_ok());
    auto zero = LengthDistribution::histogram({0.0, 1.0, 2.0}, {0.0, 0.0});
    ASSERT_FALSE(zero.is_ok());
    EXPECT_NE(zero.status().message().find("all zero"), std::string::npos);
}

TEST(LengthDistributionTest, LoadsRealHistogramByModelKey) {
    auto d = LengthDistribution::parse(kDistributions + "#meta-llama/Llama-3.1-8B-Instruct");
    ASSERT_TRUE(d.is_ok()) << d.status().message();
    EXPECT_EQ(d->describe(), "histogram(50 bins)");
    // Bins span 2..4096; ML.ENERGY measured avg_out_len 389-405 for this model (lm-arena-chat).
    EXPECT_GT(d->mean(), 2.0);
    EXPECT_LT(d->mean(), 4096.0);
    EXPECT_NEAR(d->mean(), 400.0, 60.0);
    EXPECT_NEAR(sample_mean(*d, 50000), d->mean(), 15.0);
    std::mt19937_64 rng(5);
    for (int i = 0; i < 2000; ++i) {
        const int x = d->sample(rng);
        EXPECT_GE(x, 1);
        EXPECT_LE(x, 4096);
    }
}

TEST(LengthDistributionTest, MissingKeyListsAvailableKeys) {
    auto d = LengthDistribution::parse(kDistributions + "#no/such-model");
    ASSERT_FALSE(d.is_ok());
    EXPECT_NE(d.status().message().find("no/such-model"), std::string::npos);
    EXPECT_NE(d.status().message().find("meta-llama/Llama-3.1-8B-Instruct"), std::string::npos)
        << d.status().message();

    // Without a key the file holds several distributions: the message says how to pick one.
    auto no_key = LengthDistribution::parse(kDistributions);
    ASSERT_FALSE(no_key.is_ok());
    EXPECT_NE(no_key.status().message().find("#KEY"), std::string::npos);
}

TEST(LengthDistributionTest, MissingFileNamesIt) {
    auto d = LengthDistribution::parse("/nonexistent/dist.json");
    ASSERT_FALSE(d.is_ok());
    EXPECT_EQ(d.status().code(), StatusCode::kNotFound);
    EXPECT_NE(d.status().message().find("/nonexistent/dist.json"), std::string::npos);
}

/// ~200 KB of nested arrays in a histogram file overflowed the stack; now a bounded parse.
TEST(LengthDistributionTest, RefusesDeeplyNestedFile) {
    const std::string deep = std::string(100000, '[') + std::string(100000, ']');
    const auto path = write_temp("deep_hist.json", R"({"bins": )" + deep + R"(, "counts": [1]})");
    auto d = LengthDistribution::parse(path);
    ASSERT_FALSE(d.is_ok());
    EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(d.status().message().find(path), std::string::npos) << d.status().message();
    EXPECT_NE(d.status().message().find("nested deeper than"), std::string::npos)
        << d.status().message();
}

/// A histogram that is not a regular file is refused before it is read.
TEST(LengthDistributionTest, RefusesNonRegularFile) {
    const std::string link = testing::TempDir() + "/zero_hist.json";
    std::filesystem::remove(link);
    std::filesystem::create_symlink("/dev/zero", link);
    auto d = LengthDistribution::parse(link);
    ASSERT_FALSE(d.is_ok());
    EXPECT_NE(d.status().message().find("character device"), std::string::npos)
        << d.status().message();
    std::filesystem::remove(link);
}

TEST(LengthDistributionTest, TopLevelHistogramAndEqualLengthBins) {
    const auto edges = write_temp("edges.json", R"({"bins": [0, 10, 20], "counts": [1, 1]})");
    auto d = LengthDistribution::parse(edges);
    ASSERT_TRUE(d.is_ok()) << d.status().message();
    EXPECT_DOUBLE_EQ(d->mean(), 10.0);

    // As many bins as counts: left edges, the last width inferred (20..30).
    const auto left =
        write_temp("left.json", R"({"m": {"bins": [0, 10, 20], "counts": [0, 0, 2]}})");
    auto l = LengthDistribution::parse(left + "#m");
    ASSERT_TRUE(l.is_ok()) << l.status().message();
    EXPECT_DOUBLE_EQ(l->mean(), 25.0);

    const auto nested = write_temp(
        "nested.json",
        R"({"model": {"model_output_length_distribution": {"bins": [1, 3], "counts": [5]}}})");
    auto n = LengthDistribution::parse(nested + "#model");
    ASSERT_TRUE(n.is_ok()) << n.status().message();
    EXPECT_DOUBLE_EQ(n->mean(), 2.0);
}

TEST(LengthDistributionTest, HistogramFileErrors) {
    const auto mismatch =
        write_temp("mismatch.json", R"({"bins": [0, 1, 2, 3, 4], "counts": [1, 2]})");
    auto m = LengthDistribution::parse(mismatch);
    ASSERT_FALSE(m.is_ok());
    EXPECT_NE(m.status().message().find("mismatch.json"), std::string::npos);
    EXPECT_NE(m.status().message().find("\"bins\" has 5 entries"), std::string::npos)
        << m.status().message();

    const auto zero = write_temp("zero.json", R"({"bins": [0, 1, 2], "counts": [0, 0]})");
    auto z = LengthDistribution::parse(zero);
    ASSERT_FALSE(z.is_ok());
    EXPECT_NE(z.status().message().find("all zero"), std::string::npos);
    EXPECT_NE(z.status().message().find("zero.json"), std::string::npos);

    const auto bad = write_temp("bad.json", "{not json");
    auto b = LengthDistribution::parse(bad);
    ASSERT_FALSE(b.is_ok());
    EXPECT_NE(b.status().message().find("malformed JSON"), std::string::npos);

    const auto text = write_temp("text.json", R"({"bins": [0, "x"], "counts": [1]})");
    auto t = LengthDistribution::parse(text);
    ASSERT_FALSE(t.is_ok());
    EXPECT_NE(t.status().message().find("non-number"), std::string::npos);
}

}  // namespace
}  // namespace pals::workload
