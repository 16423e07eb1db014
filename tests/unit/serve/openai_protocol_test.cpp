// The OpenAI wire format of sim-serve: request parsing, token counting, chunks and errors.
#include "serve/openai_protocol.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "serve_test_helpers.hpp"

namespace pals::serve {
namespace {

using nlohmann::json;

TEST(OpenAiProtocolTest, CountsAboutFourBytesPerToken) {
    EXPECT_EQ(count_text_tokens(""), 0);
    EXPECT_EQ(count_text_tokens("a"), 1);
    EXPECT_EQ(count_text_tokens("abcd"), 1);
    EXPECT_EQ(count_text_tokens("abcde"), 2);
    EXPECT_EQ(count_text_tokens(std::string(4000, 'x')), 1000);
}

TEST(OpenAiProtocolTest, ParsesEveryPromptShape) {
    auto tokens = [](const std::string& body) {
        auto r = parse_completion_request(body);
        EXPECT_TRUE(r.is_ok()) << body << ": " << r.status().message();
        return r.is_ok() ? r->prompt_tokens : -1;
    };
    EXPECT_EQ(tokens(R"({"prompt": "hello world!"})"), 3);
    EXPECT_EQ(tokens(R"({"prompt": [1, 2, 3, 4, 5]})"), 5);
    EXPECT_EQ(tokens(R"({"prompt": [7]})"), 1);
    EXPECT_EQ(tokens(R"({"prompt": [[1, 2, 3]]})"), 3);
    EXPECT_EQ(tokens(R"({"prompt": ["abcdefgh"]})"), 2);
}

TEST(OpenAiProtocolTest, ReadsTheGenerationFields) {
    auto r = parse_completion_request(
        R"({"model": "m", "prompt": "x", "max_tokens": 42, "stream": true, "n": 1,
            "stream_options": {"include_usage": true, "continuous_usage_stats": true},
            "temperature": 0.7, "ignore_eos": true, "top_p": 1, "seed": 3})");
    ASSERT_TRUE(r.is_ok()) << r.status().message();
    EXPECT_EQ(r->endpoint, Endpoint::kCompletions);
    EXPECT_EQ(r->model, "m");
    EXPECT_EQ(r->max_tokens, 42);
    EXPECT_TRUE(r->stream);
    EXPECT_TRUE(r->include_usage);
    EXPECT_TRUE(r->continuous_usage);
    auto bare = parse_completion_request(R"({"prompt": "x", "max_tokens": null})");
    ASSERT_TRUE(bare.is_ok());
    EXPECT_FALSE(bare->model.has_value());
    EXPECT_FALSE(bare->max_tokens.has_value());
    EXPECT_FALSE(bare->stream);
}

TEST(OpenAiProtocolTest, RejectsMalformedCompletionRequests) {
    for (const char* body :
         {"{not json", "[1, 2]", "{}", R"({"prompt": 5})", R"({"prompt": ""})", R"({"prompt": []})",
          R"({"prompt": ["a", "b"]})", R"({"prompt": [[1], [2]]})", R"({"prompt": [1, -2]})",
          R"({"prompt": [1.5]})", R"({"prompt": "x", "n": 2})",
          R"({"prompt": "x", "max_tokens": 0})", R"({"prompt": "x", "max_tokens": "ten"})",
          R"({"prompt": "x", "max_tokens": 1.5})", R"({"prompt": "x", "stream": "yes"})",
          R"({"prompt": "x", "model": 3})", R"({"prompt": "x", "max_tokens": 99999999999})",
          R"({"prompt": "x", "stream_options": {"include_usage": true}})",
          R"({"prompt": "x", "stream": true, "stream_options": {"include_usage": 1}})"}) {
        auto r = parse_completion_request(body);
        EXPECT_FALSE(r.is_ok()) << body;
        EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << body;
        EXPECT_FALSE(r.status().message().empty());
    }
}

TEST(OpenAiProtocolTest, CountsChatMessagesWithTheTemplate) {
    auto r = parse_chat_request(
        R"({"messages": [{"role": "system", "content": "abcdefgh"},
                         {"role": "user", "content": [{"type": "text", "text": "abcd"},
                                                      {"type": "text", "text": "e"}]},
                         {"role": "assistant", "content": null}],
            "max_tokens": 5, "max_completion_tokens": 9})");
    ASSERT_TRUE(r.is_ok()) << r.status().message();
    EXPECT_EQ(r->endpoint, Endpoint::kChatCompletions);
    EXPECT_EQ(r->prompt_tokens,
              (2 + 2 + 0) + 3 * kChatTokensPerMessage + kChatGenerationPromptTokens);
    EXPECT_EQ(r->max_tokens, 9);  // max_completion_tokens wins
}

TEST(OpenAiProtocolTest, RejectsMalformedChatRequests) {
    for (const char* body :
         {R"({"messages": []})", R"({"messages": "hi"})", R"({"prompt": "x"})",
          R"({"messages": [{"content": "no role"}]})", R"({"messages": [3]})",
          R"({"messages": [{"role": "user", "content": 7}]})",
          R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})",
          R"({"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": -1})"}) {
        EXPECT_FALSE(parse_chat_request(body).is_ok()) << body;
    }
}

TEST(OpenAiProtocolTest, GeneratesDeterministicWords) {
    EXPECT_EQ(token_text(0), " The");
    EXPECT_EQ(generated_text(3), " The quick brown");
    EXPECT_EQ(generated_text(40), generated_text(40));
    EXPECT_EQ(generated_text(0), "");
}

TEST(OpenAiProtocolTest, ErrorsHaveOpenAisShape) {
    const json e = json::parse(error_body(bad_request("bad", "prompt")));
    EXPECT_EQ(e["error"]["message"], "bad");
    EXPECT_EQ(e["error"]["type"], "BadRequestError");
    EXPECT_EQ(e["error"]["param"], "prompt");
    EXPECT_EQ(e["error"]["code"], 400);
    const json nf = json::parse(error_body(model_not_found("gpt-x")));
    EXPECT_EQ(nf["error"]["message"], "The model `gpt-x` does not exist.");
    EXPECT_EQ(nf["error"]["type"], "NotFoundError");
    EXPECT_EQ(nf["error"]["code"], 404);
    EXPECT_TRUE(json::parse(error_body(bad_request("x")))["error"]["param"].is_null());
}

TEST(OpenAiProtocolTest, StreamsCompletionsAsVllm) {
    const StreamEncoder enc({Endpoint::kCompletions, "cmpl-1", 100, "m", 7}, true, false);
    EXPECT_EQ(enc.begin(), "");
    std::string body;
    for (int i = 1; i <= 3; ++i) {
        body += enc.token(i, i == 3);
    }
    body += enc.end(3);
    const auto events = testing::sse_payloads(body);
    ASSERT_EQ(events.size(), 5U);
    for (int i = 0; i < 3; ++i) {
        const json c = json::parse(events[static_cast<std::size_t>(i)]);
        EXPECT_EQ(c["object"], "text_completion");
        EXPECT_EQ(c["id"], "cmpl-1");
        EXPECT_EQ(c["choices"][0]["text"], token_text(i));
        EXPECT_EQ(c["choices"][0]["finish_reason"], i == 2 ? json("length") : json(nullptr));
        EXPECT_TRUE(c["usage"].is_null());
    }
    const json usage = json::parse(events[3]);
    EXPECT_TRUE(usage["choices"].empty());
    EXPECT_EQ(usage["usage"]["prompt_tokens"], 7);
    EXPECT_EQ(usage["usage"]["completion_tokens"], 3);
    EXPECT_EQ(usage["usage"]["total_tokens"], 10);
    EXPECT_EQ(events[4], "[DONE]");
}

TEST(OpenAiProtocolTest, StreamsChatWithTheRoleFirstAndContinuousUsage) {
    const StreamEncoder enc({Endpoint::kChatCompletions, "chatcmpl-1", 100, "m", 5}, true, true);
    const auto first = testing::sse_payloads(enc.begin());
    ASSERT_EQ(first.size(), 1U);
    const json role = json::parse(first[0]);
    EXPECT_EQ(role["object"], "chat.completion.chunk");
    EXPECT_EQ(role["choices"][0]["delta"], (json{{"role", "assistant"}, {"content", ""}}));
    EXPECT_EQ(role["usage"]["completion_tokens"], 0);
    const json last = json::parse(testing::sse_payloads(enc.token(2, true))[0]);
    EXPECT_EQ(last["choices"][0]["delta"]["content"], token_text(1));
    EXPECT_EQ(last["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(last["usage"]["completion_tokens"], 2);
    // Without include_usage: no usage chunk, only [DONE].
    const StreamEncoder plain({Endpoint::kChatCompletions, "c", 1, "m", 5}, false, true);
    EXPECT_EQ(plain.end(2), "data: [DONE]\n\n");
    EXPECT_FALSE(json::parse(testing::sse_payloads(plain.token(1, false))[0]).contains("usage"));
}

TEST(OpenAiProtocolTest, FullResponsesCarryTextAndUsage) {
    const json c = json::parse(full_response({Endpoint::kCompletions, "cmpl-2", 5, "m", 4}, 3));
    EXPECT_EQ(c["object"], "text_completion");
    EXPECT_EQ(c["choices"][0]["text"], generated_text(3));
    EXPECT_EQ(c["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(c["usage"]["total_tokens"], 7);
    const json chat = json::parse(full_response({Endpoint::kChatCompletions, "c", 5, "m", 4}, 2));
    EXPECT_EQ(chat["object"], "chat.completion");
    EXPECT_EQ(chat["choices"][0]["message"]["role"], "assistant");
    EXPECT_EQ(chat["choices"][0]["message"]["content"], generated_text(2));
}

TEST(OpenAiProtocolTest, ListsTheServedModel) {
    const json m = json::parse(models_response("org/model", 4096, 7));
    EXPECT_EQ(m["object"], "list");
    ASSERT_EQ(m["data"].size(), 1U);
    EXPECT_EQ(m["data"][0]["id"], "org/model");
    EXPECT_EQ(m["data"][0]["object"], "model");
    EXPECT_EQ(m["data"][0]["max_model_len"], 4096);
}

}  // namespace
}  // namespace pals::serve
