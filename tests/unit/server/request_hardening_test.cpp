// Issue 17 rows 8, 11 and 14 (request side): float-underflowing sampling values, max_tokens vs
// max_completion_tokens, duplicate JSON keys, whitespace-only classify documents, API key files.
#include <limits>
#include <string>

#include <gtest/gtest.h>

#include "server/api_key.h"
#include "server/json_body.h"
#include "server/openai_types.h"

namespace hr::server {
namespace {

std::variant<ApiRequest, ApiError> parse_text(const std::string& body, Endpoint ep) {
    auto j = parse_json_body(body);
    if (!j.ok()) return bad_request(j.error().message);
    return parse_request(*j, ep, 128);
}

ApiError must_fail(const std::string& body, Endpoint ep = Endpoint::completions) {
    auto r = parse_text(body, ep);
    EXPECT_TRUE(std::holds_alternative<ApiError>(r)) << body;
    if (!std::holds_alternative<ApiError>(r)) return {};
    return std::get<ApiError>(r);
}

ApiRequest must_parse(const std::string& body, Endpoint ep = Endpoint::completions) {
    auto r = parse_text(body, ep);
    if (auto* e = std::get_if<ApiError>(&r)) {
        ADD_FAILURE() << body << " -> " << e->message;
        return {};
    }
    return std::get<ApiRequest>(r);
}

bool has(const std::string& s, const std::string& sub) { return s.find(sub) != std::string::npos; }

// Row 8: top_p 1e-300 passed validation, became 0 as a float and ended as 500 generation_failed.
TEST(RequestHardening, SamplingValuesThatUnderflowAFloatAreRefused) {
    for (const char* v : {"1e-300", "1e-39", "5e-324"}) {
        ApiError e = must_fail(std::string(R"({"model": "m", "prompt": "x", "top_p": )") + v + "}");
        EXPECT_EQ(e.status, 400);
        EXPECT_EQ(e.param, "top_p");
        EXPECT_TRUE(has(e.message, "1.17549e-38")) << e.message;  // the accepted range
        ApiError t = must_fail(std::string(R"({"model": "m", "prompt": "x", "temperature": )") + v + "}");
        EXPECT_EQ(t.param, "temperature");
        EXPECT_TRUE(has(t.message, "0 (greedy)")) << t.message;
    }
    // the smallest normal float and ordinary values pass; each becomes a positive normal float
    ApiRequest r = must_parse(R"({"model": "m", "prompt": "x", "top_p": 1.2e-38, "temperature": 1.2e-38})");
    EXPECT_GT(r.sampling.top_p, 0.0f);
    EXPECT_GT(r.sampling.temperature, 0.0f);
    EXPECT_EQ(must_parse(R"({"model": "m", "prompt": "x", "temperature": 0})").sampling.temperature, 0.0f);
    EXPECT_EQ(must_fail(R"({"model": "m", "prompt": "x", "top_p": 0})").param, "top_p");
    EXPECT_EQ(must_fail(R"({"model": "m", "prompt": "x", "top_p": 1e308})").param, "top_p");
    EXPECT_EQ(must_fail(R"({"model": "m", "prompt": "x", "temperature": 1e308})").param, "temperature");
}

// Row 11: with both fields, the newer one was ignored even when invalid.
TEST(RequestHardening, MaxTokensAndMaxCompletionTokens) {
    const auto chat = [](const std::string& fields) {
        return std::string(R"({"model": "m", "messages": [{"role": "user", "content": "hi"}], )") + fields + "}";
    };
    EXPECT_EQ(*must_parse(chat(R"("max_tokens": 7)"), Endpoint::chat).max_tokens, 7);
    EXPECT_EQ(*must_parse(chat(R"("max_completion_tokens": 9)"), Endpoint::chat).max_tokens, 9);
    EXPECT_EQ(*must_parse(chat(R"("max_tokens": 9, "max_completion_tokens": 9)"), Endpoint::chat).max_tokens, 9);
    // each is validated even when the other is valid
    EXPECT_EQ(must_fail(chat(R"("max_tokens": 5, "max_completion_tokens": 0)"), Endpoint::chat).param,
              "max_completion_tokens");
    EXPECT_EQ(must_fail(chat(R"("max_tokens": 5, "max_completion_tokens": "x")"), Endpoint::chat).param,
              "max_completion_tokens");
    EXPECT_EQ(must_fail(chat(R"("max_tokens": -1, "max_completion_tokens": 5)"), Endpoint::chat).param, "max_tokens");
    EXPECT_EQ(must_fail(chat(R"("max_tokens": 5, "max_completion_tokens": 129)"), Endpoint::chat).param,
              "max_completion_tokens");
    // both valid but different: refused, naming both values
    ApiError e = must_fail(chat(R"("max_tokens": 5, "max_completion_tokens": 9)"), Endpoint::chat);
    EXPECT_EQ(e.param, "max_completion_tokens");
    EXPECT_TRUE(has(e.message, "disagree")) << e.message;
    // completions has no max_completion_tokens
    EXPECT_EQ(must_fail(R"({"model": "m", "prompt": "x", "max_completion_tokens": 5})").status, 400);
}

// Row 14: duplicate keys were accepted (the last one silently won).
TEST(RequestHardening, DuplicateJsonKeysAreRefusedNamingTheKey) {
    auto r = parse_json_body(R"({"model": "m", "prompt": "x", "max_tokens": 1, "max_tokens": 100})");
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(has(r.error().message, "\"max_tokens\"")) << r.error().message;
    auto nested = parse_json_body(R"({"model": "m", "messages": [{"role": "user", "role": "system", "content": "x"}]})");
    ASSERT_FALSE(nested.ok());
    EXPECT_TRUE(has(nested.error().message, "\"role\"")) << nested.error().message;
    // equal keys in different objects are fine
    EXPECT_TRUE(parse_json_body(R"({"a": {"k": 1}, "b": {"k": 2}, "c": [{"k": 1}, {"k": 2}]})").ok());
    // a key that is not an identifier is not echoed (error messages never quote request content)
    auto long_key = parse_json_body("{\"" + std::string(300, 'k') + "\": 1, \"" + std::string(300, 'k') + "\": 2}");
    ASSERT_FALSE(long_key.ok());
    EXPECT_LT(long_key.error().message.size(), 200u);
    auto odd = parse_json_body(R"({"../etc": 1, "../etc": 2})");
    ASSERT_FALSE(odd.ok());
    EXPECT_FALSE(has(odd.error().message, "etc")) << odd.error().message;
}

// Row 14: a whitespace-only document was accepted.
TEST(RequestHardening, WhitespaceOnlyClassifyDocumentIsRefused) {
    const auto classify = [](const std::string& doc_fields) {
        auto j = parse_json_body(R"({"model": "m", "labels": ["a", "b"], )" + doc_fields + "}");
        EXPECT_TRUE(j.ok());
        return parse_classify_request(*j);
    };
    for (const char* doc : {R"("document": "   ")", R"("document": "\n\t \r")", R"("document": "")",
                            R"("messages": [{"role": "user", "content": "  "}])"}) {
        auto r = classify(doc);
        ASSERT_TRUE(std::holds_alternative<ApiError>(r)) << doc;
        const ApiError& e = std::get<ApiError>(r);
        EXPECT_EQ(e.status, 400);
        EXPECT_FALSE(e.param.empty()) << doc;
        EXPECT_TRUE(has(e.message, "whitespace")) << e.message;
    }
    EXPECT_TRUE(std::holds_alternative<ClassifyApiRequest>(classify(R"("document": " x ")")));
}

// Row 14: a key file "  secret \n" made a key with spaces that no client could send.
TEST(RequestHardening, ApiKeyIsTrimmedAndAnEmptyKeyRefused) {
    EXPECT_EQ(*normalize_api_key("secret\n", "--api-key-file"), "secret");
    EXPECT_EQ(*normalize_api_key("  secret \r\n\n", "--api-key-file"), "secret");
    EXPECT_EQ(*normalize_api_key("\n\nsecret", "--api-key-file"), "secret");
    auto empty = normalize_api_key(" \n\t", "--api-key-file");
    ASSERT_FALSE(empty.ok());
    EXPECT_TRUE(has(empty.error().message, "--api-key-file: the key is empty")) << empty.error().message;
    EXPECT_FALSE(normalize_api_key("", "--api-key").ok());
    auto two = normalize_api_key("first\nsecond\n", "--api-key-file");
    ASSERT_FALSE(two.ok());
    EXPECT_TRUE(has(two.error().message, "whitespace")) << two.error().message;
    EXPECT_FALSE(normalize_api_key("se cret", "--api-key").ok());
    EXPECT_FALSE(normalize_api_key(std::string("se\0cret", 7), "--api-key").ok());
}

}  // namespace
}  // namespace hr::server
