// config.json parsing: every supported variant and one broken config per rule, each with its message.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "model/config.h"
#include "support/fixtures.h"

namespace hr {
namespace {

using json = nlohmann::json;

json base_llama() {
    return json{{"architectures", {"LlamaForCausalLM"}}, {"vocab_size", 100},        {"hidden_size", 64},
                {"intermediate_size", 128},               {"num_hidden_layers", 2},  {"num_attention_heads", 4},
                {"num_key_value_heads", 2},               {"rope_theta", 10000.0},   {"rms_norm_eps", 1e-5},
                {"max_position_embeddings", 2048},        {"tie_word_embeddings", false}};
}

Result<ModelConfig> parse(const json& j) { return parse_model_config(j.dump(), "config.json"); }

std::string err(const json& j) {
    auto r = parse(j);
    return r.ok() ? std::string("<accepted>") : r.error().message;
}

TEST(Config, ParsesFixtureMixtral) {
    auto c = load_model_config(test::model_fixture("tiny-mixtral") + "/config.json");
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->arch, Architecture::mixtral);
    EXPECT_EQ(c->n_experts, 4);
    EXPECT_EQ(c->n_experts_active, 2);
    EXPECT_EQ(c->head_dim, 16);
    EXPECT_DOUBLE_EQ(c->rope_theta, 1e6);
    EXPECT_FALSE(c->tie_word_embeddings);
}

TEST(Config, ParsesRealMixtral8x7b) {
    auto c = load_model_config(test::fixtures_dir() + "/configs/mixtral-8x7b-instruct-v0.1.config.json");
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->dim, 4096);
    EXPECT_EQ(c->n_layers, 32);
    EXPECT_EQ(c->n_kv_heads, 8);
    EXPECT_EQ(c->head_dim, 128);
    EXPECT_EQ(c->ffn_dim, 14336);
    EXPECT_EQ(c->n_experts, 8);
}

TEST(Config, RopeThetaInsideRopeParameters) {
    json j = base_llama();
    j.erase("rope_theta");
    j["rope_parameters"] = {{"rope_theta", 500000.0}, {"rope_type", "default"}};
    auto c = parse(j);
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_DOUBLE_EQ(c->rope_theta, 500000.0);
}

TEST(Config, HeadDimPresentAbsentOrNull) {
    json j = base_llama();
    EXPECT_EQ(parse(j)->head_dim, 16);
    j["head_dim"] = nullptr;
    EXPECT_EQ(parse(j)->head_dim, 16);
    j["head_dim"] = 32;
    EXPECT_EQ(parse(j)->head_dim, 32);
}

TEST(Config, MissingKvHeadsMeansMultiHead) {
    json j = base_llama();
    j.erase("num_key_value_heads");
    EXPECT_EQ(parse(j)->n_kv_heads, 4);
}

TEST(Config, TiedEmbeddingsAndDtypeSpellings) {
    json j = base_llama();
    j["tie_word_embeddings"] = true;
    j["dtype"] = "float16";
    auto c = parse(j);
    ASSERT_TRUE(c.ok());
    EXPECT_TRUE(c->tie_word_embeddings);
    EXPECT_EQ(c->torch_dtype, DType::f16);
}

TEST(Config, SlidingWindowNullAccepted_SmallWindowRejectedForLongerContext) {
    json j = base_llama();
    j["architectures"] = {"MistralForCausalLM"};
    j["sliding_window"] = nullptr;
    auto c = parse(j);
    ASSERT_TRUE(c.ok());
    EXPECT_TRUE(check_context(*c, 2048).ok());
    j["sliding_window"] = 1024;
    c = parse(j);
    ASSERT_TRUE(c.ok());
    EXPECT_TRUE(check_context(*c, 1024).ok());
    Status st = check_context(*c, 2048);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().message.find("sliding_window 1024"), std::string::npos) << st.error().message;
}

TEST(Config, ContextAboveMaxPositionsRejected) {
    auto c = parse(base_llama());
    Status st = check_context(*c, 4096);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().message.find("exceeds the model's max_position_embeddings 2048"), std::string::npos);
}

TEST(Config, RopeScalingNotSupportedYet) {
    json j = base_llama();
    j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
    EXPECT_NE(err(j).find("rope_scaling"), std::string::npos);
    EXPECT_NE(err(j).find("not supported yet"), std::string::npos);
}

TEST(Config, UnknownArchitectureListsSupported) {
    json j = base_llama();
    j["architectures"] = {"GPT2LMHeadModel"};
    const std::string e = err(j);
    EXPECT_NE(e.find("unsupported architecture 'GPT2LMHeadModel'"), std::string::npos) << e;
    EXPECT_NE(e.find("LlamaForCausalLM, MistralForCausalLM, MixtralForCausalLM"), std::string::npos) << e;
}

TEST(Config, MissingFieldNamed) {
    json j = base_llama();
    j.erase("hidden_size");
    EXPECT_NE(err(j).find("missing required field 'hidden_size'"), std::string::npos);
}

TEST(Config, WrongTypeNamed) {
    json j = base_llama();
    j["hidden_size"] = "4096";
    EXPECT_NE(err(j).find("field 'hidden_size' must be an integer, found string"), std::string::npos) << err(j);
}

TEST(Config, NonPositiveSizesRejected) {
    json j = base_llama();
    j["num_hidden_layers"] = 0;
    EXPECT_NE(err(j).find("'num_hidden_layers' must be a positive integer, found 0"), std::string::npos);
}

TEST(Config, HeadsMustDivide) {
    json j = base_llama();
    j["num_key_value_heads"] = 3;
    EXPECT_NE(err(j).find("must be a multiple of num_key_value_heads (3)"), std::string::npos);
}

TEST(Config, MixtralNeedsExperts) {
    json j = base_llama();
    j["architectures"] = {"MixtralForCausalLM"};
    EXPECT_NE(err(j).find("missing required field 'num_local_experts'"), std::string::npos);
    j["num_local_experts"] = 2;
    j["num_experts_per_tok"] = 3;
    EXPECT_NE(err(j).find("num_experts_per_tok (3) exceeds num_local_experts (2)"), std::string::npos);
}

TEST(Config, NotJsonOrNotObject) {
    EXPECT_NE(parse_model_config("{", "c.json").error().message.find("not valid JSON"), std::string::npos);
    EXPECT_NE(parse_model_config("[1]", "c.json").error().message.find("expected a JSON object"), std::string::npos);
}

TEST(Config, UnknownDtypeAndSpecialIdsOutsideVocab) {
    json j = base_llama();
    j["torch_dtype"] = "float8";
    EXPECT_NE(err(j).find("unknown torch_dtype 'float8'"), std::string::npos);
    j = base_llama();
    j["eos_token_id"] = 100;
    EXPECT_NE(err(j).find("special token id 100 is outside the vocabulary"), std::string::npos);
}

}  // namespace
}  // namespace hr
