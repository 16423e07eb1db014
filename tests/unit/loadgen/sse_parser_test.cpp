#include "pals/loadgen/sse_parser.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pals::loadgen {
namespace {

using Payloads = std::vector<std::string>;

/// Feeds `stream` in pieces of `piece` bytes and collects every payload.
Payloads feed_in_pieces(std::string_view stream, std::size_t piece) {
    SseParser parser;
    Payloads all;
    for (std::size_t i = 0; i < stream.size(); i += piece) {
        for (std::string& p : parser.feed(stream.substr(i, piece))) {
            all.push_back(std::move(p));
        }
    }
    for (std::string& p : parser.finish()) {
        all.push_back(std::move(p));
    }
    return all;
}

constexpr std::string_view kStream =
    ": keep-alive comment\n\n"
    "data: {\"choices\":[{\"text\":\"a\\n\\nb\"}]}\n\n"
    "event: message\nid: 7\ndata: {\"choices\":[{\"text\":\"c\"}]}\n\n"
    "data:{\"choices\":[],\"usage\":{\"completion_tokens\":2}}\n\n"
    "data: [DONE]\n\n"
    "data: {\"after\":\"done\"}\n\n";

Payloads expected_payloads() {
    return {
        "{\"choices\":[{\"text\":\"a\\n\\nb\"}]}",
        "{\"choices\":[{\"text\":\"c\"}]}",
        "{\"choices\":[],\"usage\":{\"completion_tokens\":2}}",
    };
}

TEST(SseParserTest, ParsesDataEventsSkipsCommentsAndStopsAtDone) {
    SseParser parser;
    EXPECT_EQ(parser.feed(kStream), expected_payloads());
    EXPECT_TRUE(parser.done());
    EXPECT_TRUE(parser.feed("data: {\"more\":1}\n\n").empty());
}

TEST(SseParserTest, SameEventsForEverySplitPoint) {
    for (std::size_t cut = 0; cut <= kStream.size(); ++cut) {
        SseParser parser;
        Payloads got = parser.feed(kStream.substr(0, cut));
        for (std::string& p : parser.feed(kStream.substr(cut))) {
            got.push_back(std::move(p));
        }
        EXPECT_EQ(got, expected_payloads()) << "cut at byte " << cut;
        EXPECT_TRUE(parser.done());
    }
}

TEST(SseParserTest, ByteByByteAndOddPieceSizes) {
    for (const std::size_t piece : {1U, 2U, 3U, 7U, 64U}) {
        EXPECT_EQ(feed_in_pieces(kStream, piece), expected_payloads()) << "piece " << piece;
    }
}

TEST(SseParserTest, CrLfLineEndingsSplitBetweenCrAndLf) {
    const std::string crlf = "data: {\"x\":1}\r\n\r\ndata: [DONE]\r\n\r\n";
    for (std::size_t cut = 0; cut <= crlf.size(); ++cut) {
        SseParser parser;
        Payloads got = parser.feed(std::string_view(crlf).substr(0, cut));
        for (std::string& p : parser.feed(std::string_view(crlf).substr(cut))) {
            got.push_back(std::move(p));
        }
        ASSERT_EQ(got, Payloads{"{\"x\":1}"}) << "cut at byte " << cut;
        EXPECT_TRUE(parser.done());
    }
}

TEST(SseParserTest, JoinsMultipleDataLinesAndIgnoresOtherFields) {
    SseParser parser;
    EXPECT_EQ(parser.feed("retry: 10\ndata: line1\ndata: line2\n\nid: 3\n\n"),
              Payloads{"line1\nline2"});
    EXPECT_FALSE(parser.done());
}

TEST(SseParserTest, KeepsAnIncompleteEventUntilItsEnd) {
    SseParser parser;
    EXPECT_TRUE(parser.feed("data: {\"a\":").empty());
    EXPECT_GT(parser.pending_bytes(), 0U);
    EXPECT_TRUE(parser.feed("1}\n").empty());
    EXPECT_EQ(parser.feed("\n"), Payloads{"{\"a\":1}"});
    EXPECT_EQ(parser.pending_bytes(), 0U);
}

TEST(SseParserTest, FinishFlushesAnEventWithoutItsBlankLine) {
    SseParser parser;
    EXPECT_EQ(parser.feed("data: {\"a\":1}\n\ndata: [DONE]"), Payloads{"{\"a\":1}"});
    EXPECT_FALSE(parser.done());
    EXPECT_TRUE(parser.finish().empty());
    EXPECT_TRUE(parser.done());
}

/// A server that never sends the blank line made the buffer grow without bound (1.9 GB in
/// 15 s); now an incomplete event over the bound fails the stream and frees the buffer.
TEST(SseParserTest, BoundsAnIncompleteEvent) {
    SseParser parser(64);
    EXPECT_TRUE(parser.feed("data: " + std::string(50, 'a')).empty());
    EXPECT_TRUE(parser.error().empty());
    EXPECT_TRUE(parser.feed(std::string(20, 'a')).empty());
    EXPECT_NE(parser.error().find("exceeds 64 bytes"), std::string::npos) << parser.error();
    EXPECT_EQ(parser.pending_bytes(), 0U);
    // Once failed, nothing more is buffered or returned.
    EXPECT_TRUE(parser.feed("\n\ndata: {}\n\n").empty());
    EXPECT_EQ(parser.pending_bytes(), 0U);
    EXPECT_TRUE(parser.finish().empty());

    // Complete events longer in total than the bound are fine: the bound is per event.
    SseParser many(64);
    std::string stream;
    for (int i = 0; i < 20; ++i) {
        stream += "data: {\"i\":" + std::to_string(i) + "}\n\n";
    }
    EXPECT_EQ(many.feed(stream).size(), 20U);
    EXPECT_TRUE(many.error().empty());

    // The default bound, 1 MiB.
    SseParser standard;
    const std::string mib(SseParser::kDefaultMaxEventBytes, 'a');
    EXPECT_TRUE(standard.feed(mib).empty());
    EXPECT_TRUE(standard.error().empty());
    EXPECT_TRUE(standard.feed("a").empty());
    EXPECT_FALSE(standard.error().empty());
}

/// A 200,000-deep error value overflowed the stack when its message was extracted (dump()).
TEST(StreamChunkTest, RefusesDeepNesting) {
    const std::string deep = std::string(200000, '[') + std::string(200000, ']');
    auto chunk = parse_stream_chunk(R"({"error": )" + deep + "}");
    ASSERT_FALSE(chunk.is_ok());
    EXPECT_NE(chunk.status().message().find("nested deeper than"), std::string::npos)
        << chunk.status().message().substr(0, 200);
    const std::string shown =
        extract_error_message(R"({"object": "error", "message": )" + deep + "}");
    EXPECT_LE(shown.size(), 303U);
}

TEST(StreamChunkTest, ChoicesUsageAndErrors) {
    Result<StreamChunk> text = parse_stream_chunk(R"({"choices":[{"index":0,"text":""}]})");
    ASSERT_TRUE(text.is_ok());
    EXPECT_TRUE(text->has_choices);
    EXPECT_FALSE(text->completion_tokens);
    EXPECT_FALSE(text->error);

    Result<StreamChunk> usage = parse_stream_chunk(
        R"({"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":34,"total_tokens":46}})");
    ASSERT_TRUE(usage.is_ok());
    EXPECT_FALSE(usage->has_choices);
    EXPECT_EQ(usage->completion_tokens, 34);
    EXPECT_EQ(usage->prompt_tokens, 12);

    Result<StreamChunk> null_usage =
        parse_stream_chunk(R"({"choices":[{"delta":{}}],"usage":null})");
    ASSERT_TRUE(null_usage.is_ok());
    EXPECT_TRUE(null_usage->has_choices);
    EXPECT_FALSE(null_usage->completion_tokens);

    Result<StreamChunk> error =
        parse_stream_chunk(R"({"error":{"message":"out of KV cache","code":500}})");
    ASSERT_TRUE(error.is_ok());
    EXPECT_EQ(error->error, "out of KV cache");

    Result<StreamChunk> old_style =
        parse_stream_chunk(R"({"object":"error","message":"bad","code":400})");
    ASSERT_TRUE(old_style.is_ok());
    EXPECT_EQ(old_style->error, "bad");

    EXPECT_FALSE(parse_stream_chunk("{not json").is_ok());
    EXPECT_FALSE(parse_stream_chunk("[1,2]").is_ok());
}

TEST(StreamChunkTest, ErrorMessageFromBodies) {
    EXPECT_EQ(extract_error_message(R"({"error":{"message":"too long","type":"BadRequestError"}})"),
              "too long");
    EXPECT_EQ(extract_error_message(R"({"object":"error","message":"model not found"})"),
              "model not found");
    EXPECT_EQ(extract_error_message(R"({"detail":"Not Found"})"), "Not Found");
    EXPECT_EQ(extract_error_message(R"({"error":"unauthorized"})"), "unauthorized");
    EXPECT_EQ(extract_error_message("  plain text\n"), "plain text");
    EXPECT_EQ(extract_error_message(std::string(1000, 'x')).size(), 303U);
}

}  // namespace
}  // namespace pals::loadgen
