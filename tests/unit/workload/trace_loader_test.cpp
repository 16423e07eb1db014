#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "pals/workload/workload.hpp"

namespace pals::workload {
namespace {

const std::string kTraces = std::string(PALS_SHARED_DIR) + "/traces";
const std::string kConv = kTraces + "/AzureLLMInferenceTrace_conv.csv";
const std::string kCode = kTraces + "/AzureLLMInferenceTrace_code.csv";
constexpr const char* kHeader = "TIMESTAMP,ContextTokens,GeneratedTokens\n";

std::string write_temp(const std::string& name, const std::string& content) {
    const std::string path = testing::TempDir() + "/" + name;
    std::ofstream(path, std::ios::binary) << content;
    return path;
}

double mean_input(const std::vector<Request>& rs) {
    double sum = 0.0;
    for (const Request& r : rs) {
        sum += r.input_tokens;
    }
    return sum / static_cast<double>(rs.size());
}

double mean_output(const std::vector<Request>& rs) {
    double sum = 0.0;
    for (const Request& r : rs) {
        sum += r.output_tokens;
    }
    return sum / static_cast<double>(rs.size());
}

/// Expects `r` to fail with a message holding every substring.
template <class T>
void expect_error(const Result<T>& r, const std::vector<std::string>& substrings) {
    ASSERT_FALSE(r.is_ok());
    for (const std::string& s : substrings) {
        EXPECT_NE(r.status().message().find(s), std::string::npos)
            << "'" << s << "' not in: " << r.status().message();
    }
}

TEST(WorkloadTest, LoadsRealConversationTrace) {
    auto rs = load_azure_trace(kConv);
    ASSERT_TRUE(rs.is_ok()) << rs.status().message();
    ASSERT_EQ(rs->size(), 19366u);
    EXPECT_EQ(rs->front().arrival_s, 0.0);
    EXPECT_NEAR(rs->back().arrival_s, 3502.0, 5.0);
    EXPECT_NEAR(mean_input(*rs), 1155.0, 3.0);
    EXPECT_NEAR(mean_output(*rs), 211.0, 2.0);
    // The first rows: 18:15:46.6805900 (374, 44), then 18:15:50.9951690 (396, 109).
    EXPECT_EQ((*rs)[0].input_tokens, 374);
    EXPECT_EQ((*rs)[0].output_tokens, 44);
    EXPECT_NEAR((*rs)[1].arrival_s, 4.314579, 1e-9);
    for (std::size_t i = 0; i < rs->size(); ++i) {
        ASSERT_EQ((*rs)[i].id, i);
        ASSERT_GE((*rs)[i].input_tokens, 1);
        ASSERT_GE((*rs)[i].output_tokens, 1);
        if (i > 0) {
            ASSERT_GE((*rs)[i].arrival_s, (*rs)[i - 1].arrival_s);
        }
    }
}

TEST(WorkloadTest, LoadsRealCodeTrace) {
    auto rs = load_azure_trace(kCode);
    ASSERT_TRUE(rs.is_ok()) << rs.status().message();
    ASSERT_EQ(rs->size(), 8819u);
    EXPECT_NEAR(rs->back().arrival_s, 3436.0, 5.0);
    EXPECT_NEAR(mean_input(*rs), 2048.0, 3.0);
    EXPECT_NEAR(mean_output(*rs), 28.0, 1.0);
}

TEST(WorkloadTest, AzureHandlesLineEndingsAndDayRollover) {
    const auto lf = write_temp("rollover.csv", std::string(kHeader) +
                                                   "2023-12-31 23:59:59.5000000,10,20\n"
                                                   "2024-01-01 00:00:00.2500000,11,21\n"
                                                   "2024-01-01 00:00:01,12,22\n");
    auto rs = load_azure_trace(lf);
    ASSERT_TRUE(rs.is_ok()) << rs.status().message();
    ASSERT_EQ(rs->size(), 3u);
    EXPECT_NEAR((*rs)[1].arrival_s, 0.75, 1e-12);
    EXPECT_NEAR((*rs)[2].arrival_s, 1.5, 1e-12);

    const auto crlf = write_temp("crlf.csv",
                                 "TIMESTAMP,ContextTokens,GeneratedTokens\r\n"
                                 "2024-02-28 23:00:00.0000000,1,2\r\n"
                                 "2024-02-29 01:00:00.0000001,3,4");
    auto rc = load_azure_trace(crlf);
    ASSERT_TRUE(rc.is_ok()) << rc.status().message();
    ASSERT_EQ(rc->size(), 2u);
    EXPECT_NEAR((*rc)[1].arrival_s, 7200.0000001, 1e-9);
    EXPECT_EQ((*rc)[1].output_tokens, 4);
}

TEST(WorkloadTest, AzureClampsZeroLengthsToOne) {
    const auto path = write_temp("zeros.csv", std::string(kHeader) +
                                                  "2023-11-16 18:00:00.0000000,0,5\n"
                                                  "2023-11-16 18:00:01.0000000,7,0\n");
    auto rs = load_azure_trace(path);
    ASSERT_TRUE(rs.is_ok()) << rs.status().message();
    EXPECT_EQ((*rs)[0].input_tokens, 1);
    EXPECT_EQ((*rs)[1].output_tokens, 1);
}

TEST(WorkloadTest, AzureRejectsMalformedRows) {
    struct Case {
        const char* name;
        std::string content;
        std::string line;
        std::string what;
    };
    const std::string ok_row = "2023-11-16 18:00:00.0000000,10,20\n";
    const std::vector<Case> cases = {
        {"header.csv", "TIME,ContextTokens,GeneratedTokens\n" + ok_row, ":1:", "header"},
        {"fields.csv", kHeader + ok_row + "2023-11-16 18:00:01.0000000,10\n",
         ":3:", "expected 3 fields"},
        {"extra.csv", kHeader + ok_row + "2023-11-16 18:00:01.0000000,10,2,3\n", ":3:", "got 4"},
        {"nan.csv", kHeader + ok_row + "2023-11-16 18:00:01.0000000,abc,20\n",
         ":3:29:", "ContextTokens 'abc' is not an integer"},
        {"neg.csv", kHeader + ok_row + ok_row + "2023-11-16 18:00:01.0000000,10,-4\n",
         ":4:", "GeneratedTokens is negative"},
        {"ts.csv", kHeader + std::string("2023-11-16 18:0:00.0000000,10,20\n"),
         ":2:", "bad TIMESTAMP"},
        {"month.csv", kHeader + std::string("2023-13-16 18:00:00.0000000,10,20\n"),
         ":2:", "bad TIMESTAMP"},
        {"feb.csv", kHeader + std::string("2023-02-29 18:00:00.0000000,10,20\n"),
         ":2:", "bad TIMESTAMP"},
        {"back.csv", kHeader + ok_row + "2023-11-16 17:59:59.9999999,10,20\n",
         ":3:1:", "earlier than the previous row's (line 2)"},
        {"empty.csv", "", "empty.csv", "empty file"},
        {"only_header.csv", kHeader, "only_header.csv", "no requests"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.name);
        const auto path = write_temp(c.name, c.content);
        auto rs = load_azure_trace(path);
        ASSERT_FALSE(rs.is_ok());
        EXPECT_EQ(rs.status().code(), StatusCode::kInvalidArgument);
        // "<path>:<line>: <what>"
        expect_error(rs, {path, c.line, c.what});
    }
    auto missing = load_azure_trace(testing::TempDir() + "/no_such_trace.csv");
    ASSERT_FALSE(missing.is_ok());
    EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

TEST(WorkloadTest, LoadsJsonl) {
    const auto path =
        write_temp("trace.jsonl",
                   "{\"timestamp\": 1000, \"input_length\": 100, \"output_length\": 10, "
                   "\"hash_ids\": [1, 2]}\n"
                   "\n"
                   "{\"timestamp\": 1500, \"input_length\": 200, \"output_length\": 0}\r\n"
                   "{\"timestamp\": 4000.5, \"input_length\": 0, \"output_length\": 30}");
    auto rs = load_jsonl_trace(path);
    ASSERT_TRUE(rs.is_ok()) << rs.status().message();
    ASSERT_EQ(rs->size(), 3u);
    EXPECT_EQ((*rs)[0].arrival_s, 0.0);
    EXPECT_DOUBLE_EQ((*rs)[1].arrival_s, 0.5);
    EXPECT_DOUBLE_EQ((*rs)[2].arrival_s, 3.0005);
    EXPECT_EQ((*rs)[0].input_tokens, 100);
    EXPECT_EQ((*rs)[1].output_tokens, 1);
    EXPECT_EQ((*rs)[2].input_tokens, 1);
    EXPECT_EQ((*rs)[2].id, 2u);
}

TEST(WorkloadTest, JsonlRejectsBadRows) {
    struct Case {
        const char* name;
        std::string content;
        std::string line;
        std::string what;
    };
    const std::string ok = R"({"timestamp": 0, "input_length": 1, "output_length": 1})"
                           "\n";
    const std::vector<Case> cases = {
        {"syntax.jsonl", ok + "{\"timestamp\": 1,\n", ":2:", "malformed JSON"},
        {"array.jsonl", ok + "[1, 2]\n", ":2:", "expected a JSON object"},
        {"no_ts.jsonl", ok + "\n" + R"({"input_length": 1, "output_length": 1})",
         ":3:", "missing \"timestamp\""},
        {"no_in.jsonl", R"({"timestamp": 0, "output_length": 1})",
         ":1:", "missing \"input_length\""},
        {"no_out.jsonl", R"({"timestamp": 0, "input_length": 1})",
         ":1:", "missing \"output_length\""},
        {"str_ts.jsonl", R"({"timestamp": "x", "input_length": 1, "output_length": 1})",
         ":1:", "\"timestamp\" is not a number"},
        {"neg.jsonl", R"({"timestamp": 0, "input_length": -3, "output_length": 1})",
         ":1:", "\"input_length\" is negative"},
        {"frac.jsonl", R"({"timestamp": 0, "input_length": 3, "output_length": 1.5})",
         ":1:", "\"output_length\" is not an integer"},
        {"blank.jsonl", "\n\n", "blank.jsonl", "no requests"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.name);
        const auto path = write_temp(c.name, c.content);
        expect_error(load_jsonl_trace(path), {path, c.line, c.what});
    }
}

/// Years after 2262 overflowed int64 nanoseconds, and differences between rows overflowed too:
/// arrivals came out silently wrong (or negative) with exit 0. Now every TIMESTAMP outside the
/// documented range is refused at file:line:column.
TEST(WorkloadTest, AzureRefusesTimestampsOutsideTheInt64NanosecondRange) {
    const std::string ok_row = "2023-11-16 18:15:46.6805900,374,44\n";
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"after_2262.csv", kHeader + ok_row + "2800-01-01 00:00:00.0000000,10,10\n"},
        {"late_2262.csv", kHeader + ok_row + "2262-04-11 23:47:17,10,10\n"},
        {"year_9999.csv", kHeader + ok_row + "9999-12-31 23:59:59.9999999,10,10\n"},
        {"before_1970.csv", kHeader + std::string("1700-01-01 00:00:00,1,1\n") + ok_row},
    };
    for (const auto& [name, content] : cases) {
        SCOPED_TRACE(name);
        const auto path = write_temp(name, content);
        auto rs = load_azure_trace(path);
        ASSERT_FALSE(rs.is_ok());
        EXPECT_EQ(rs.status().code(), StatusCode::kInvalidArgument);
        const std::string line = name == "before_1970.csv" ? ":2:1:" : ":3:1:";
        expect_error(rs,
                     {path + line, "outside the accepted range", "2262-04-11 23:47:16.854775807"});
    }
    // The last representable instant is accepted, and its arrival is exact.
    const auto edge = write_temp("edge.csv", kHeader + std::string("2262-04-11 23:47:16,1,1\n") +
                                                 "2262-04-11 23:47:16.854775807,1,1\n");
    auto rs = load_azure_trace(edge);
    ASSERT_TRUE(rs.is_ok()) << rs.status().message();
    EXPECT_NEAR((*rs)[1].arrival_s, 0.854775807, 1e-9);
    // A decreasing row (here one year earlier) is refused, not given a negative arrival.
    const auto back =
        write_temp("back_year.csv", kHeader + std::string("2024-11-16 18:15:46,1,1\n") +
                                        "2023-11-16 18:15:50.995169,0,3\n");
    expect_error(load_azure_trace(back), {back + ":3:1:", "earlier than the previous"});
}

/// The fuzzer's and the probe's inputs, when the shared folder holds them.
TEST(WorkloadTest, AzureReproducersFailCleanly) {
    const std::string repro = std::string(PALS_SHARED_DIR) + "/repro/";
    for (const char* name :
         {"csv_timestamp_int64_overflow.csv", "csv_timestamp_difference_overflow.csv",
          "csv_negative_arrival_fuzz.csv"}) {
        SCOPED_TRACE(name);
        if (!std::filesystem::exists(repro + name)) {
            continue;
        }
        auto rs = load_azure_trace(repro + name);
        ASSERT_FALSE(rs.is_ok());
        expect_error(rs, {"outside the accepted range"});
    }
}

/// ~200 KB of nested arrays overflowed the stack (dump() recursion); now a bounded parse.
TEST(WorkloadTest, JsonlRefusesDeepNesting) {
    const std::string deep = std::string(100000, '[') + std::string(100000, ']');
    const auto path =
        write_temp("deep.jsonl", R"({"timestamp": 0, "input_length": 1, "output_length": 1})"
                                 "\n"
                                 R"({"timestamp": )" +
                                     deep + R"(, "input_length": 1, "output_length": 1})");
    expect_error(load_jsonl_trace(path), {path + ":2:", "nested deeper than"});
}

/// +-1e308 ms gave an infinite arrival (the request was never served, exit 0).
TEST(WorkloadTest, JsonlRefusesTimestampsOutOfRange) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"inf.jsonl",
         "{\"timestamp\": -1e308, \"input_length\": 10, \"output_length\": 5}\n"
         "{\"timestamp\": 1e308, \"input_length\": 10, \"output_length\": 5}\n"},
        {"big.jsonl",
         "{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 5}\n"
         "{\"timestamp\": 2e15, \"input_length\": 10, \"output_length\": 5}\n"},
        {"e400.jsonl", "{\"timestamp\": 1e400, \"input_length\": 10, \"output_length\": 5}\n"},
    };
    for (const auto& [name, content] : cases) {
        SCOPED_TRACE(name);
        const auto path = write_temp(name, content);
        auto rs = load_jsonl_trace(path);
        ASSERT_FALSE(rs.is_ok());
        EXPECT_EQ(rs.status().code(), StatusCode::kInvalidArgument);
        expect_error(rs, {path + (name == "big.jsonl" ? ":2:" : ":1:")});
        if (name != "e400.jsonl") {
            expect_error(rs, {"\"timestamp\"", "outside the accepted range"});
        }
    }
    // Within the range, arrivals stay finite.
    const auto ok =
        write_temp("wide.jsonl",
                   "{\"timestamp\": -1e15, \"input_length\": 1, \"output_length\": 1}\n"
                   "{\"timestamp\": 1e15, \"input_length\": 1, \"output_length\": 1}\n");
    auto rs = load_jsonl_trace(ok);
    ASSERT_TRUE(rs.is_ok()) << rs.status().message();
    EXPECT_TRUE(std::isfinite((*rs)[1].arrival_s));
    EXPECT_DOUBLE_EQ((*rs)[1].arrival_s, 2e12);
}

/// A trace that is a link to /dev/zero was read whole (bad_alloc); a FIFO hung the reader.
TEST(WorkloadTest, TraceMustBeARegularFile) {
    const std::filesystem::path dir = testing::TempDir() + "/trace_kinds";
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    const auto zero = dir / "zero.csv";
    std::filesystem::create_symlink("/dev/zero", zero);
    expect_error(load_azure_trace(zero), {zero.string(), "character device", "regular file"});
    const auto fifo = dir / "fifo.jsonl";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    expect_error(load_jsonl_trace(fifo), {fifo.string(), "FIFO"});
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace pals::workload
