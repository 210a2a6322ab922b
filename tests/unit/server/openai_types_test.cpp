// Request validation: every RELIABILITY §3.4-3.5 case the parser owns returns a 400 naming the field.
#include <gtest/gtest.h>

#include "server/json_body.h"
#include "server/openai_types.h"
#include "server/stop.h"

namespace hr::server {
namespace {

using nlohmann::json;

std::variant<ApiRequest, ApiError> parse_text(const std::string& body, Endpoint ep = Endpoint::completions) {
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

}  // namespace

TEST(JsonBody, RejectsInvalidUtf8) {
    EXPECT_TRUE(is_valid_utf8("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"));
    EXPECT_FALSE(is_valid_utf8("\xc3"));              // truncated
    EXPECT_FALSE(is_valid_utf8("\xc0\xaf"));          // overlong
    EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));      // surrogate
    EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));  // > U+10FFFF
    EXPECT_FALSE(is_valid_utf8("\xff"));
    auto r = parse_json_body("{\"prompt\": \"\xb9\xfe\"}");  // GBK bytes
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("UTF-8"), std::string::npos);
}

TEST(JsonBody, DepthLimitAndBadNumbers) {
    std::string deep(3000, '[');
    auto r = parse_json_body(deep);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("nests"), std::string::npos);
    EXPECT_EQ(json_nesting_depth("{\"a\": \"[[[[\"}", 10), 1);  // brackets in strings do not count
    EXPECT_FALSE(parse_json_body("{\"temperature\": 1e400}").ok());
    EXPECT_FALSE(parse_json_body("{\"temperature\": NaN}").ok());
    EXPECT_FALSE(parse_json_body("{\"temperature\": Infinity}").ok());
    EXPECT_FALSE(parse_json_body("").ok());
    EXPECT_FALSE(parse_json_body("{\"a\": 1").ok());
    auto e = parse_json_body("{\"secret-content\": }");
    ASSERT_FALSE(e.ok());
    EXPECT_EQ(e.error().message.find("secret"), std::string::npos);  // never echoes the body
}

TEST(OpenAiTypes, ParsesAFullCompletionRequest) {
    ApiRequest r = must_parse(R"({"model": "m", "prompt": "hi", "max_tokens": 5, "temperature": 0.5, "top_p": 0.9,
        "top_k": 40, "seed": 7, "stop": ["\n", "END"], "stream": true, "stream_options": {"include_usage": true},
        "timeout": 2.5, "n": 1, "user": "u", "presence_penalty": 0, "logprobs": null, "echo": false,
        "ignore_eos": true})");
    EXPECT_TRUE(r.ignore_eos);
    EXPECT_EQ(r.model, "m");
    EXPECT_EQ(*r.prompt_text, "hi");
    EXPECT_EQ(*r.max_tokens, 5);
    EXPECT_FLOAT_EQ(r.sampling.temperature, 0.5f);
    EXPECT_FLOAT_EQ(r.sampling.top_p, 0.9f);
    EXPECT_EQ(r.sampling.top_k, 40);
    EXPECT_TRUE(r.sampling.has_seed);
    EXPECT_EQ(r.sampling.seed, 7u);
    EXPECT_EQ(r.stop.size(), 2u);
    EXPECT_TRUE(r.stream);
    EXPECT_TRUE(r.include_usage);
    EXPECT_DOUBLE_EQ(*r.timeout_s, 2.5);
}

TEST(OpenAiTypes, PromptForms) {
    EXPECT_EQ(*must_parse(R"({"model": "m", "prompt": ["one"]})").prompt_text, "one");
    EXPECT_EQ(*must_parse(R"({"model": "m", "prompt": [1, 2, 3]})").prompt_ids, (std::vector<int32_t>{1, 2, 3}));
    EXPECT_EQ(*must_parse(R"({"model": "m", "prompt": [[4, 5]]})").prompt_ids, (std::vector<int32_t>{4, 5}));
    EXPECT_EQ(must_fail(R"({"model": "m", "prompt": ""})").param, "prompt");
    EXPECT_EQ(must_fail(R"({"model": "m", "prompt": []})").param, "prompt");
    EXPECT_EQ(must_fail(R"({"model": "m", "prompt": ["a", "b"]})").param, "prompt");
    EXPECT_EQ(must_fail(R"({"model": "m", "prompt": [1, -1]})").param, "prompt");
    EXPECT_EQ(must_fail(R"({"model": "m", "prompt": [1, 5000000000]})").param, "prompt");
    EXPECT_EQ(must_fail(R"({"model": "m", "prompt": [1.5]})").param, "prompt");
    EXPECT_EQ(must_fail(R"({"model": "m"})").param, "prompt");
    EXPECT_EQ(must_fail(R"({"model": "m", "prompt": 5})").param, "prompt");
}

TEST(OpenAiTypes, WrongTypesNameTheField) {
    struct Case {
        const char* body;
        const char* param;
    } cases[] = {
        {R"({"model": 3, "prompt": "x"})", "model"},
        {R"({"model": "m", "prompt": "x", "max_tokens": "5"})", "max_tokens"},
        {R"({"model": "m", "prompt": "x", "max_tokens": 5.0})", "max_tokens"},
        {R"({"model": "m", "prompt": "x", "max_tokens": true})", "max_tokens"},
        {R"({"model": "m", "prompt": "x", "n": "2"})", "n"},
        {R"({"model": "m", "prompt": "x", "n": 2.0})", "n"},
        {R"({"model": "m", "prompt": "x", "temperature": "hot"})", "temperature"},
        {R"({"model": "m", "prompt": "x", "stream": 1})", "stream"},
        {R"({"model": "m", "prompt": "x", "ignore_eos": "yes"})", "ignore_eos"},
        {R"({"model": "m", "prompt": "x", "stop": 5})", "stop"},
        {R"({"model": "m", "prompt": "x", "seed": 1.5})", "seed"},
        {R"({"model": "m", "prompt": "x", "top_k": 2.5})", "top_k"},
        {R"({"model": "m", "prompt": "x", "timeout": "soon"})", "timeout"},
        {R"({"model": "m", "prompt": "x", "stream_options": 1, "stream": true})", "stream_options"},
    };
    for (const Case& c : cases) {
        ApiError e = must_fail(c.body);
        EXPECT_EQ(e.status, 400) << c.body;
        EXPECT_EQ(e.param, c.param) << c.body;
        EXPECT_NE(e.message.find(c.param), std::string::npos) << c.body;
    }
}

TEST(OpenAiTypes, RangesAreChecked) {
    const char* bad[] = {
        R"({"model": "m", "prompt": "x", "temperature": -0.1})",
        R"({"model": "m", "prompt": "x", "temperature": 2.5})",
        R"({"model": "m", "prompt": "x", "top_p": 0})",
        R"({"model": "m", "prompt": "x", "top_p": 1.01})",
        R"({"model": "m", "prompt": "x", "top_k": -2})",
        R"({"model": "m", "prompt": "x", "max_tokens": 0})",
        R"({"model": "m", "prompt": "x", "max_tokens": -3})",
        R"({"model": "m", "prompt": "x", "max_tokens": 1000000000})",
        R"({"model": "m", "prompt": "x", "max_tokens": 18446744073709551615})",
        R"({"model": "m", "prompt": "x", "n": 2})",
        R"({"model": "m", "prompt": "x", "best_of": 3})",
        R"({"model": "m", "prompt": "x", "stop": ""})",
        R"({"model": "m", "prompt": "x", "stop": ["a", "b", "c", "d", "e"]})",
        R"({"model": "m", "prompt": "x", "timeout": 0})",
        R"({"model": "m", "prompt": "x", "timeout": -1})",
        R"({"model": "m", "prompt": "x", "frequency_penalty": 0.5})",
        R"({"model": "m", "prompt": "x", "logit_bias": {"1": 5}})",
        R"({"model": "m", "prompt": "x", "logprobs": 5})",
        R"({"model": "m", "prompt": "x", "echo": true})",
        R"({"model": "m", "prompt": "x", "stream_options": {"include_usage": true}})",
        R"({"model": "m", "prompt": "x", "n_discard": 4})",
        R"({"model": "m", "prompt": "x", "chat_template_kwargs": {}})",
    };
    for (const char* b : bad) EXPECT_EQ(must_fail(b).status, 400) << b;
    EXPECT_EQ(must_parse(R"({"model": "m", "prompt": "x", "top_k": -1})").sampling.top_k, 0);
    EXPECT_FLOAT_EQ(must_parse(R"({"model": "m", "prompt": "x", "temperature": 0})").sampling.temperature, 0.0f);
    // Reported ranges include the context bound.
    EXPECT_NE(must_fail(R"({"model": "m", "prompt": "x", "max_tokens": 129})").message.find("128"), std::string::npos);
    // stop string too long
    std::string long_stop = R"({"model": "m", "prompt": "x", "stop": ")" + std::string(300, 'a') + "\"}";
    EXPECT_EQ(must_fail(long_stop).param, "stop");
}

TEST(OpenAiTypes, NonObjectBodiesAndUnknownFields) {
    EXPECT_EQ(must_fail("[1, 2]").status, 400);
    EXPECT_EQ(must_fail("\"text\"").status, 400);
    EXPECT_EQ(must_fail("null").status, 400);
    ApiError e = must_fail(R"({"model": "m", "prompt": "x", "tokenize": true})");
    EXPECT_EQ(e.param, "tokenize");
    ApiError weird = must_fail(R"({"model": "m", "prompt": "x", "../../etc/passwd": 1})");
    EXPECT_EQ(weird.message.find("passwd"), std::string::npos);  // odd names are not echoed
}

TEST(OpenAiTypes, ChatMessages) {
    ApiRequest r = must_parse(R"({"model": "m", "messages": [{"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}],
        "max_completion_tokens": 9})",
                              Endpoint::chat);
    ASSERT_EQ(r.messages.size(), 2u);
    EXPECT_EQ(r.messages[1]["content"], "ab");
    EXPECT_EQ(*r.max_tokens, 9);
    EXPECT_EQ(must_fail(R"({"model": "m", "messages": []})", Endpoint::chat).param, "messages");
    EXPECT_EQ(must_fail(R"({"model": "m", "messages": {}})", Endpoint::chat).param, "messages");
    EXPECT_EQ(must_fail(R"({"model": "m", "messages": [{"role": "tool", "content": "x"}]})", Endpoint::chat).param,
              "messages[0].role");
    EXPECT_EQ(must_fail(R"({"model": "m", "messages": [{"role": "user"}]})", Endpoint::chat).param,
              "messages[0].content");
    EXPECT_EQ(must_fail(R"({"model": "m", "messages": [{"role": "user", "content": 3}]})", Endpoint::chat).param,
              "messages[0].content");
    EXPECT_EQ(must_fail(R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "prompt": "y"})",
                        Endpoint::chat)
                  .param,
              "prompt");
}

TEST(OpenAiTypes, ErrorBodyHasOpenAiShape) {
    ApiError e = bad_request("'top_p' must be in (0, 1]", "top_p");
    nlohmann::json j = error_body(e);
    EXPECT_EQ(j["error"]["type"], "invalid_request_error");
    EXPECT_EQ(j["error"]["param"], "top_p");
    EXPECT_TRUE(j["error"]["code"].is_null());
    EXPECT_TRUE(j["error"]["message"].is_string());
}

TEST(OpenAiTypes, TimeoutHeader) {
    EXPECT_DOUBLE_EQ(*parse_timeout_header("2.5"), 2.5);
    EXPECT_FALSE(parse_timeout_header("").has_value());
    EXPECT_FALSE(parse_timeout_header("abc").has_value());
    EXPECT_FALSE(parse_timeout_header("5s").has_value());
    EXPECT_FALSE(parse_timeout_header("-1").has_value());
    EXPECT_FALSE(parse_timeout_header("nan").has_value());
    EXPECT_FALSE(parse_timeout_header("inf").has_value());
}

TEST(StopMatcher, HoldsPossiblePrefixesAndCutsAtStop) {
    StopMatcher m({"END", "\n\n"});
    EXPECT_EQ(m.push("hello E"), "hello ");
    EXPECT_EQ(m.push("N"), "");
    EXPECT_EQ(m.push("Dless"), "");
    EXPECT_TRUE(m.stopped());
    EXPECT_EQ(m.flush(), "");
    StopMatcher n({"END"});
    EXPECT_EQ(n.push("abc EN"), "abc ");
    EXPECT_EQ(n.push("X"), "ENX");
    EXPECT_EQ(n.push(" tail E"), " tail ");
    EXPECT_EQ(n.flush(), "E");
    EXPECT_FALSE(n.stopped());
}

TEST(StopMatcher, NeverSplitsUtf8) {
    StopMatcher m({"\xe2\x82\xac!"});  // "€!"
    // "a€" where the euro sign could start the stop: held whole, not split mid-character.
    EXPECT_EQ(m.push("a\xe2\x82\xac"), "a");
    EXPECT_EQ(m.push("b"), "\xe2\x82\xac" "b");
    StopMatcher none({});
    EXPECT_EQ(none.push("x\xe2\x82"), "x\xe2\x82");
}

}  // namespace hr::server
