#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "pals/engine/vllm/prometheus_text.hpp"

namespace pals::engine::vllm {
namespace {

ParsedMetrics parse_ok(std::string_view text) {
    auto parsed = parse_prometheus_text(text);
    EXPECT_TRUE(parsed.is_ok()) << parsed.status().message();
    return parsed.is_ok() ? std::move(parsed).value() : ParsedMetrics{};
}

/// Expects kInvalidArgument whose message starts "line N:" and contains `what`.
void expect_error(std::string_view text, int line, std::string_view what) {
    auto parsed = parse_prometheus_text(text);
    ASSERT_FALSE(parsed.is_ok()) << "accepted: " << text;
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
    const std::string& m = parsed.status().message();
    EXPECT_EQ(m.rfind("line " + std::to_string(line) + ": ", 0), 0U) << m;
    EXPECT_NE(m.find(what), std::string::npos) << m;
}

TEST(PrometheusFloatTest, ParsesEverySpellingPrometheusClientWrites) {
    EXPECT_DOUBLE_EQ(*parse_prometheus_float("3.0"), 3.0);
    EXPECT_DOUBLE_EQ(*parse_prometheus_float("0.42"), 0.42);
    EXPECT_DOUBLE_EQ(*parse_prometheus_float("1.5e-05"), 1.5e-05);
    EXPECT_DOUBLE_EQ(*parse_prometheus_float("8.4716752896e+10"), 8.4716752896e+10);
    EXPECT_DOUBLE_EQ(*parse_prometheus_float("-2"), -2.0);
    EXPECT_DOUBLE_EQ(*parse_prometheus_float("+7"), 7.0);
    EXPECT_DOUBLE_EQ(*parse_prometheus_float("1E3"), 1000.0);
    EXPECT_TRUE(std::isnan(*parse_prometheus_float("NaN")));
    EXPECT_TRUE(std::isnan(*parse_prometheus_float("nan")));
    EXPECT_EQ(*parse_prometheus_float("+Inf"), std::numeric_limits<double>::infinity());
    EXPECT_EQ(*parse_prometheus_float("Inf"), std::numeric_limits<double>::infinity());
    EXPECT_EQ(*parse_prometheus_float("-Inf"), -std::numeric_limits<double>::infinity());
    EXPECT_EQ(*parse_prometheus_float("1e999"), std::numeric_limits<double>::infinity());
    EXPECT_EQ(*parse_prometheus_float("1e-999"), 0.0);
    for (const char* bad :
         {"", "+", "-", "abc", "1.0x", "--1", "+-1", "0x10", "1e", "Infinit", " 1"}) {
        EXPECT_FALSE(parse_prometheus_float(bad).is_ok()) << bad;
    }
}

TEST(PrometheusTextTest, ParsesHelpTypeLabelsAndValues) {
    const auto m = parse_ok(
        "# HELP vllm:num_requests_running Number of requests\\nin the batch \\\\ now.\n"
        "# TYPE vllm:num_requests_running gauge\n"
        "vllm:num_requests_running{engine=\"0\",model_name=\"meta-llama/Llama-3.1-8B-Instruct\"} "
        "7.0\n"
        "\n"
        "# a plain comment is ignored\n"
        "#\n"
        "   \t\n"
        "# TYPE h histogram\n"
        "h_bucket{le=\"+Inf\"} 3\n"
        "up 1\n");
    ASSERT_EQ(m.samples.size(), 3U);
    const Sample& s = m.samples[0];
    EXPECT_EQ(s.name, "vllm:num_requests_running");
    ASSERT_EQ(s.labels.size(), 2U);
    EXPECT_EQ(s.labels[0], (Label{"engine", "0"}));
    EXPECT_EQ(*s.label("model_name"), "meta-llama/Llama-3.1-8B-Instruct");
    EXPECT_EQ(s.label("le"), nullptr);
    EXPECT_DOUBLE_EQ(s.value, 7.0);
    EXPECT_FALSE(s.timestamp_ms.has_value());
    EXPECT_EQ(m.type_of("vllm:num_requests_running"), MetricType::kGauge);
    EXPECT_EQ(m.type_of("h"), MetricType::kHistogram);
    EXPECT_EQ(m.type_of("up"), MetricType::kUntyped);
    EXPECT_EQ(m.help.at("vllm:num_requests_running"), "Number of requests\nin the batch \\ now.");
    EXPECT_EQ(*m.samples[1].label("le"), "+Inf");
    EXPECT_TRUE(m.samples[2].labels.empty());
}

TEST(PrometheusTextTest, UnescapesLabelValuesAndToleratesSpacingAndTrailingComma) {
    const auto m = parse_ok(
        "m{a=\"x\\\\y\",b=\"say \\\"hi\\\"\",c=\"two\\nlines\",d=\"{},= #\",} -1.5e-3 "
        "1764300000123\r\n"
        "m { a = \"1\" , b=\"\" }   +Inf   -5\n"
        "m{} NaN\n");
    ASSERT_EQ(m.samples.size(), 3U);
    EXPECT_EQ(*m.samples[0].label("a"), "x\\y");
    EXPECT_EQ(*m.samples[0].label("b"), "say \"hi\"");
    EXPECT_EQ(*m.samples[0].label("c"), "two\nlines");
    EXPECT_EQ(*m.samples[0].label("d"), "{},= #");
    EXPECT_DOUBLE_EQ(m.samples[0].value, -1.5e-3);
    EXPECT_EQ(m.samples[0].timestamp_ms, 1764300000123);
    EXPECT_EQ(*m.samples[1].label("b"), "");
    EXPECT_EQ(m.samples[1].value, std::numeric_limits<double>::infinity());
    EXPECT_EQ(m.samples[1].timestamp_ms, -5);
    EXPECT_TRUE(std::isnan(m.samples[2].value));
    EXPECT_TRUE(m.samples[2].labels.empty());
}

TEST(PrometheusTextTest, EmptyAndCommentOnlyTextHasNoSamples) {
    EXPECT_TRUE(parse_ok("").samples.empty());
    EXPECT_TRUE(parse_ok("\n\n# just a comment\n").samples.empty());
    EXPECT_EQ(parse_ok("x 1").samples.size(), 1U);  // no final newline
}

TEST(PrometheusTextTest, ErrorsNameTheLineAndTheProblem) {
    expect_error("ok 1\nbad\n", 2, "missing value");
    expect_error("ok 1\n\nm{a=\"1\"}\n", 3, "missing value");
    expect_error("m abc\n", 1, "invalid value 'abc'");
    expect_error("m 1 2 3\n", 1, "unexpected text after the timestamp");
    expect_error("m 1 1.5\n", 1, "invalid timestamp '1.5'");
    expect_error("m{a=\"1\" 2\n", 1, "expected ',' or '}'");
    expect_error("m{a=\"1\",\n", 1, "unterminated label set");
    expect_error("m{a=\"1\n", 1, "unterminated value of label \"a\"");
    expect_error("m{a=1} 2\n", 1, "expected '\"'");
    expect_error("m{a} 2\n", 1, "expected '=' after label name \"a\"");
    expect_error("m{1a=\"x\"} 2\n", 1, "invalid label name");
    expect_error("m{a=\"x\",a=\"y\"} 2\n", 1, "duplicate label \"a\"");
    expect_error("m{a=\"\\t\"} 2\n", 1, "invalid escape sequence");
    expect_error("1m 2\n", 1, "expected a metric name");
    expect_error("m-x 2\n", 1, "invalid character '-' in metric name");
    expect_error("# TYPE m\n", 1, "expected exactly one type");
    expect_error("# TYPE m gauge extra\n", 1, "expected exactly one type");
    expect_error("# TYPE m meter\n", 1, "unknown metric type \"meter\"");
    expect_error("# TYPE m gauge\n# TYPE m counter\n", 2, "second TYPE line");
    expect_error("# HELP m a\n# HELP m b\n", 2, "second HELP line");
    expect_error("# HELP\n", 1, "expected a metric name after # HELP");
    expect_error("x 1\r\ny 2\r\nz\r\n", 3, "missing value");
}

}  // namespace
}  // namespace pals::engine::vllm
