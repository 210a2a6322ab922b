// The server's structured-output pieces (ConstraintProcessor, constraint_spec, request parsing of
// response_format / choice / classify) and Engine::submit_score with the fake runner.
#include <gtest/gtest.h>

#include <cmath>
#include <thread>

#include "runtime/engine.h"
#include "server/openai_types.h"
#include "server/structured_output.h"
#include "unit/runtime/fake_runner.h"

namespace hr::server {
namespace {

using nlohmann::json;

// ids: 0 <s>, 1 </s> (EOS), 2 "yes", 3 "no", 4 "y", 5 "es", 6 "n", 7 "o"
TokenVocab small_vocab() {
    auto v = TokenVocab::create({"<s>", "</s>", "yes", "no", "y", "es", "n", "o"},
                                {true, true, false, false, false, false, false, false}, 1);
    EXPECT_TRUE(v.ok());
    return std::move(*v);
}

std::vector<int> allowed(ConstraintProcessor& p, const std::vector<int32_t>& generated, size_t width = 10) {
    std::vector<float> logits(width, 0.0f);
    p.apply(logits, generated);
    std::vector<int> out;
    for (size_t i = 0; i < logits.size(); ++i) {
        if (logits[i] != -INFINITY) out.push_back(static_cast<int>(i));
    }
    return out;
}

TEST(ConstraintProcessor, MasksTokensAndAllowsEosOnlyWhenComplete) {
    auto vocab = std::make_shared<const TokenVocab>(small_vocab());
    ApiRequest r;
    r.constraint = OutputConstraint::choice;
    r.choices = {"yes", "no"};
    ConstraintCache cache;
    auto c = cache.get(constraint_spec(r, nullptr));
    ASSERT_TRUE(c.ok());
    ConstraintProcessor p(*c, vocab);
    // ids 8, 9 are past the vocabulary (a padded head): always masked.
    EXPECT_EQ(allowed(p, {}), (std::vector<int>{2, 3, 4, 6}));
    EXPECT_EQ(allowed(p, {4}), (std::vector<int>{5}));
    EXPECT_EQ(allowed(p, {4, 5}), (std::vector<int>{1}));
    EXPECT_FALSE(p.failed());
    EXPECT_EQ(p.state().text(), "yes");
}

TEST(ConstraintProcessor, TokenOutsideTheConstraintMasksEverything) {
    auto vocab = std::make_shared<const TokenVocab>(small_vocab());
    ConstraintProcessor p(*compile_choice({"yes"}), vocab);
    EXPECT_EQ(allowed(p, {}), (std::vector<int>{2, 4}));
    EXPECT_TRUE(allowed(p, {3}).empty());  // "no" was never allowed
    EXPECT_TRUE(p.failed());
}

TEST(ConstraintSpec, KeepsTheClientsKeyOrderWhenGiven) {
    ApiRequest r;
    r.constraint = OutputConstraint::json_schema;
    r.schema = json{{"type", "object"}, {"properties", {{"b", {{"type", "integer"}}}, {"a", {{"type", "integer"}}}}}};
    nlohmann::ordered_json ordered = nlohmann::ordered_json::parse(
        R"({"type": "object", "properties": {"b": {"type": "integer"}, "a": {"type": "integer"}}})");
    EXPECT_EQ(constraint_spec(r, &ordered).schema.dump(), ordered.dump());
    // Without it the sorted copy is used: "a" before "b".
    EXPECT_LT(constraint_spec(r, nullptr).schema.dump().find("\"a\""), constraint_spec(r, nullptr).schema.dump().find("\"b\""));
    r.constraint = OutputConstraint::choice;
    r.choices = {"x", "y"};
    EXPECT_EQ(constraint_spec(r, nullptr).kind, ConstraintKind::choice);
    EXPECT_EQ(constraint_spec(r, nullptr).choices, r.choices);
}

TEST(OpenAiTypes, ParsesConstraintFields) {
    json body = {{"model", "m"},
                 {"messages", json::array({{{"role", "user"}, {"content", "hi"}}})},
                 {"response_format",
                  {{"type", "json_schema"}, {"json_schema", {{"name", "x"}, {"schema", {{"type", "object"}}}}}}}};
    auto p = parse_request(body, Endpoint::chat, 256);
    ASSERT_TRUE(std::holds_alternative<ApiRequest>(p));
    EXPECT_EQ(std::get<ApiRequest>(p).constraint, OutputConstraint::json_schema);
    body.erase("response_format");
    body["choice"] = {"a", "b"};
    p = parse_request(body, Endpoint::chat, 256);
    ASSERT_TRUE(std::holds_alternative<ApiRequest>(p));
    EXPECT_EQ(std::get<ApiRequest>(p).choices, (std::vector<std::string>{"a", "b"}));
    for (json bad : {json::array(), json::array({"a", "a"}), json::array({""}), json("a"), json::array({1})}) {
        body["choice"] = bad;
        p = parse_request(body, Endpoint::chat, 256);
        ASSERT_TRUE(std::holds_alternative<ApiError>(p)) << bad.dump();
        EXPECT_EQ(std::get<ApiError>(p).param.rfind("choice", 0), 0u);
    }
}

TEST(OpenAiTypes, ParsesClassifyRequests) {
    json body = {{"model", "m"},
                 {"messages", json::array({{{"role", "user"}, {"content", "a"}}, {{"role", "user"}, {"content", "b"}}})},
                 {"labels", {"x", "y"}},
                 {"truncate", true}};
    auto p = parse_classify_request(body);
    ASSERT_TRUE(std::holds_alternative<ClassifyApiRequest>(p));
    EXPECT_EQ(std::get<ClassifyApiRequest>(p).document, "a\nb");
    EXPECT_TRUE(std::get<ClassifyApiRequest>(p).truncate);
    body["document"] = "both";
    EXPECT_TRUE(std::holds_alternative<ApiError>(parse_classify_request(body)));
    body.erase("messages");
    body["labels"] = "x";
    EXPECT_EQ(std::get<ApiError>(parse_classify_request(body)).param, "labels");
}

TEST(Engine, SubmitScoreRunsBesideGenerationAndIsRefusedWhenStopped) {
    hr::testing::FakeRunner runner(64, 16, 16);
    EngineConfig c;
    c.limits = {.max_tokens_per_step = 32, .max_seqs = 4, .max_blocks_per_seq = 8};
    c.n_kv_blocks = 16;
    c.block_size = 16;
    c.context = 64;
    c.log_interval_s = 0;
    Engine e(c, runner);
    ASSERT_TRUE(e.start().ok());
    auto f = e.submit_score({{1, 2, 3}, {{4}, {5, 6}}});
    ASSERT_TRUE(std::holds_alternative<std::future<ScoreOutcome>>(f));
    ScoreOutcome o = std::get<std::future<ScoreOutcome>>(f).get();
    EXPECT_TRUE(o.error.empty()) << o.error;
    EXPECT_EQ(o.logprob.size(), 2u);
    e.stop();
    auto refused = e.submit_score({{1, 2, 3}, {{4}}});
    ASSERT_TRUE(std::holds_alternative<SubmitError>(refused));
    EXPECT_EQ(std::get<SubmitError>(refused).kind, SubmitErrorKind::unavailable);
}

}  // namespace
}  // namespace hr::server
