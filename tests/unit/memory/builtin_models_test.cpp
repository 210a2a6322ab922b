// Built-in model configs against published parameter counts, and the --model resolver.
#include <gtest/gtest.h>

#include "memory/plan.h"
#include "model/builtin_models.h"

namespace hr {
namespace {

int64_t params(std::string_view name) {
    const BuiltinModel* m = find_builtin_model(name);
    EXPECT_NE(m, nullptr) << name;
    return m ? plan_weights(m->config, DType::bf16).n_params : 0;
}

// The parameter counts the model cards and transformers' num_parameters() give.
TEST(BuiltinModels, ParameterCountsMatchPublishedModels) {
    EXPECT_EQ(params("mixtral-8x7b"), 46702792704);
    EXPECT_EQ(params("mistral-7b"), 7248023552);  // v0.3: 7241732096 of v0.1 + 768 new tokens x 4096 x 2
    EXPECT_EQ(params("llama-2-7b"), 6738415616);
    EXPECT_EQ(params("llama-2-13b"), 13015864320);
    EXPECT_EQ(params("llama-2-70b"), 68976648192);
    EXPECT_EQ(params("llama-3-8b"), 8030261248);
    EXPECT_EQ(params("llama-3-70b"), 70553706496);
    // transformers' Qwen3MoeForCausalLM(config of Qwen/Qwen3-30B-A3B) on the meta device: num of parameters
    EXPECT_EQ(params("qwen3-30b-a3b"), 30532122624);
    const int64_t m22 = params("mixtral-8x22b");  // the card says 141B
    EXPECT_GT(m22, 140'500'000'000);
    EXPECT_LT(m22, 141'500'000'000);
}

TEST(BuiltinModels, NamesAreCaseInsensitiveAndUnknownIsNull) {
    EXPECT_NE(find_builtin_model("Mixtral-8x7B"), nullptr);
    EXPECT_EQ(find_builtin_model("mixtral"), nullptr);
    EXPECT_EQ(builtin_models().size(), 9u);
}

TEST(BuiltinModels, MixtralMatchesTheRealConfig) {
    Result<ModelConfig> real = load_model_config(HR_FIXTURES_DIR "/configs/mixtral-8x7b-instruct-v0.1.config.json");
    ASSERT_TRUE(real.ok()) << real.error().message;
    const ModelConfig& b = find_builtin_model("mixtral-8x7b")->config;
    EXPECT_EQ(b.arch, real->arch);
    EXPECT_EQ(b.vocab_size, real->vocab_size);
    EXPECT_EQ(b.dim, real->dim);
    EXPECT_EQ(b.ffn_dim, real->ffn_dim);
    EXPECT_EQ(b.n_layers, real->n_layers);
    EXPECT_EQ(b.n_heads, real->n_heads);
    EXPECT_EQ(b.n_kv_heads, real->n_kv_heads);
    EXPECT_EQ(b.head_dim, real->head_dim);
    EXPECT_EQ(b.n_experts, real->n_experts);
    EXPECT_EQ(b.n_experts_active, real->n_experts_active);
    EXPECT_EQ(b.max_position_embeddings, real->max_position_embeddings);
    EXPECT_EQ(b.rope_theta, real->rope_theta);
    EXPECT_EQ(b.tie_word_embeddings, real->tie_word_embeddings);
    EXPECT_EQ(b.torch_dtype, real->torch_dtype);
}

TEST(BuiltinModels, ResolvesNamesFilesAndDirectories) {
    Result<ModelConfig> by_name = resolve_model_config("llama-3-8b");
    ASSERT_TRUE(by_name.ok());
    EXPECT_EQ(by_name->vocab_size, 128256);
    Result<ModelConfig> by_file = resolve_model_config(HR_FIXTURES_DIR "/configs/mixtral-8x7b-instruct-v0.1.config.json");
    ASSERT_TRUE(by_file.ok()) << by_file.error().message;
    EXPECT_EQ(by_file->n_experts, 8);
    Result<ModelConfig> by_dir = resolve_model_config(HR_FIXTURES_DIR "/models/tiny-llama");
    ASSERT_TRUE(by_dir.ok()) << by_dir.error().message;
    EXPECT_EQ(by_dir->dim, 48);
}

TEST(BuiltinModels, RefusesUnknownModelsWithTheList) {
    Result<ModelConfig> r = resolve_model_config("gpt-5");
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("gpt-5"), std::string::npos);
    EXPECT_NE(r.error().message.find("mixtral-8x7b"), std::string::npos);
    EXPECT_FALSE(resolve_model_config("").ok());
    Result<ModelConfig> no_cfg = resolve_model_config(HR_FIXTURES_DIR "/tokenizers");
    ASSERT_FALSE(no_cfg.ok());
    EXPECT_NE(no_cfg.error().message.find("config.json"), std::string::npos);
}

}  // namespace
}  // namespace hr
