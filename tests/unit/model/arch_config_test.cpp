// The Qwen units' config.json keys: both rope styles, num_experts / num_local_experts, norm_topk_prob,
// decoder_sparse_step and mlp_only_layers (which layers are MoE), use_sliding_window, and the errors.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "model/arch/registry.h"
#include "model/builtin_models.h"
#include "model/config.h"
#include "model/tensor_names.h"
#include "support/fixtures.h"

namespace hr {
namespace {

using json = nlohmann::json;

json base_qwen3_moe() {
    return json{{"architectures", {"Qwen3MoeForCausalLM"}},
                {"vocab_size", 100},
                {"hidden_size", 64},
                {"intermediate_size", 96},
                {"moe_intermediate_size", 48},
                {"num_hidden_layers", 4},
                {"num_attention_heads", 4},
                {"num_key_value_heads", 2},
                {"head_dim", 32},
                {"num_experts", 8},
                {"num_experts_per_tok", 2},
                {"norm_topk_prob", true},
                {"decoder_sparse_step", 1},
                {"mlp_only_layers", json::array()},
                {"rope_theta", 1e6},
                {"sliding_window", nullptr},
                {"use_sliding_window", false}};
}

Result<ModelConfig> parse(const json& j) { return parse_model_config(j.dump(), "config.json"); }
std::string err(const json& j) {
    auto r = parse(j);
    return r.ok() ? std::string("<accepted>") : r.error().message;
}

TEST(ArchConfig, EveryUnitIsFoundByItsNames) {
    for (const ArchUnit* u : arch_units()) {
        EXPECT_EQ(find_arch_by_hf_class(u->hf_class), u);
        EXPECT_EQ(find_arch_by_model_type(u->model_type), u);
        EXPECT_EQ(&arch_unit(u->arch), u);
        EXPECT_EQ(architecture_name(u->arch), u->hf_class);
        if (!u->gguf_arch.empty()) {
            EXPECT_EQ(find_arch_by_gguf(u->gguf_arch), u);
        }
    }
    EXPECT_EQ(find_arch_by_gguf("qwen3moe")->arch, Architecture::qwen3_moe);
    EXPECT_EQ(find_arch_by_gguf("gpt2"), nullptr);
}

TEST(ArchConfig, Qwen3MoeHubStyle) {
    auto c = parse(base_qwen3_moe());
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->arch, Architecture::qwen3_moe);
    EXPECT_EQ(c->n_experts, 8);
    EXPECT_EQ(c->n_experts_active, 2);
    EXPECT_EQ(c->expert_ffn_dim(), 48);
    EXPECT_EQ(c->ffn_dim, 96);
    EXPECT_EQ(c->max_ffn_dim(), 48);  // every layer is MoE: the dense width is never used
    EXPECT_EQ(c->head_dim, 32);
    EXPECT_EQ(c->q_dim(), 128);
    EXPECT_TRUE(c->qk_norm);
    EXPECT_FALSE(c->qkv_bias);
    EXPECT_EQ(c->routing, MoeRouting::softmax_topk_renorm);
    EXPECT_EQ(c->n_moe_layers(), 4);
    EXPECT_EQ(c->rope_theta, 1e6);
}

TEST(ArchConfig, Qwen3MoeTransformers5Style) {
    json j = base_qwen3_moe();
    j.erase("num_experts");
    j["num_local_experts"] = 8;
    j.erase("rope_theta");
    j["rope_parameters"] = {{"rope_theta", 5e5}, {"rope_type", "default"}};
    j["norm_topk_prob"] = false;
    j["dtype"] = "float32";
    auto c = parse(j);
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->n_experts, 8);
    EXPECT_EQ(c->rope_theta, 5e5);
    EXPECT_EQ(c->routing, MoeRouting::softmax_topk);
    EXPECT_EQ(c->torch_dtype, DType::f32);
}

TEST(ArchConfig, NormTopkProbDefaultsToFalseAsInTransformers) {
    json j = base_qwen3_moe();
    j.erase("norm_topk_prob");
    EXPECT_EQ(parse(j)->routing, MoeRouting::softmax_topk);
}

TEST(ArchConfig, SparseStepAndMlpOnlyLayersPickTheMoeLayers) {
    json j = base_qwen3_moe();
    j["decoder_sparse_step"] = 2;
    auto c = parse(j);
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c->layer(0).ffn, FfnKind::dense);
    EXPECT_EQ(c->layer(1).ffn, FfnKind::moe);
    EXPECT_EQ(c->layer(2).ffn, FfnKind::dense);
    EXPECT_EQ(c->layer(3).ffn, FfnKind::moe);
    EXPECT_EQ(c->max_ffn_dim(), 96);
    j["decoder_sparse_step"] = 1;
    j["mlp_only_layers"] = {0, 2};
    c = parse(j);
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c->n_moe_layers(), 2);
    EXPECT_FALSE(c->layer_is_moe(0));
    EXPECT_TRUE(c->layer_is_moe(1));
    // The tensor table follows: dense layers have mlp.gate_proj, MoE layers mlp.gate and experts.
    int dense = 0, routers = 0;
    for (const TensorSpec& t : expected_tensors(*c)) {
        if (t.slot == Slot::mlp_gate) {
            ++dense;
            EXPECT_EQ(t.shape, (std::vector<int64_t>{96, 64})) << t.hf_name;
        }
        if (t.slot == Slot::router) {
            ++routers;
            EXPECT_EQ(t.hf_name.find("mlp.gate.weight") != std::string::npos, true) << t.hf_name;
        }
        if (t.slot == Slot::expert_down) {
            EXPECT_EQ(t.shape, (std::vector<int64_t>{64, 48})) << t.hf_name;
        }
    }
    EXPECT_EQ(dense, 2);
    EXPECT_EQ(routers, 2);
}

TEST(ArchConfig, Qwen3MoeErrorsNameTheKey) {
    json j = base_qwen3_moe();
    j.erase("num_experts");
    EXPECT_NE(err(j).find("missing required field 'num_experts'"), std::string::npos) << err(j);
    j = base_qwen3_moe();
    j.erase("moe_intermediate_size");
    EXPECT_NE(err(j).find("'moe_intermediate_size'"), std::string::npos);
    j = base_qwen3_moe();
    j["mlp_only_layers"] = {7};
    EXPECT_NE(err(j).find("mlp_only_layers entry 7 is not a layer index in [0, 4)"), std::string::npos) << err(j);
    j = base_qwen3_moe();
    j["mlp_only_layers"] = "all";
    EXPECT_NE(err(j).find("'mlp_only_layers' must be an array"), std::string::npos);
    j = base_qwen3_moe();
    j["decoder_sparse_step"] = 0;
    EXPECT_NE(err(j).find("'decoder_sparse_step' must be a positive integer"), std::string::npos);
    j = base_qwen3_moe();
    j["mlp_only_layers"] = {0, 1, 2, 3};
    EXPECT_NE(err(j).find("no layer is a MoE layer"), std::string::npos);
    j = base_qwen3_moe();
    j["attention_bias"] = true;
    EXPECT_NE(err(j).find("attention_bias = true is not supported for Qwen3MoeForCausalLM"), std::string::npos);
    j = base_qwen3_moe();
    j["norm_topk_prob"] = 1;
    EXPECT_NE(err(j).find("'norm_topk_prob' must be a boolean"), std::string::npos);
}

TEST(ArchConfig, Qwen2HasQkvBiasAndIgnoresAnUnusedSlidingWindow) {
    json j = base_qwen3_moe();
    for (const char* k : {"num_experts", "num_experts_per_tok", "moe_intermediate_size", "norm_topk_prob",
                          "decoder_sparse_step", "mlp_only_layers", "head_dim"})
        j.erase(k);
    j["architectures"] = {"Qwen2ForCausalLM"};
    j["sliding_window"] = 131072;  // as Qwen2 checkpoints write it, with use_sliding_window false
    auto c = parse(j);
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->arch, Architecture::qwen2);
    EXPECT_TRUE(c->qkv_bias);
    EXPECT_FALSE(c->qk_norm);
    EXPECT_FALSE(c->is_moe());
    EXPECT_EQ(c->sliding_window, 0);
    EXPECT_TRUE(check_context(*c, 2048).ok());
    int biases = 0;
    for (const TensorSpec& t : expected_tensors(*c)) biases += t.hf_name.ends_with(".bias") ? 1 : 0;
    EXPECT_EQ(biases, 3 * 4);  // q, k, v in each of 4 layers
    j["use_sliding_window"] = true;
    j["sliding_window"] = 1024;
    EXPECT_FALSE(check_context(*parse(j), 2048).ok());
}

TEST(ArchConfig, Qwen3HasPerHeadNormsOfHeadDim) {
    json j = base_qwen3_moe();
    for (const char* k : {"num_experts", "num_experts_per_tok", "moe_intermediate_size", "norm_topk_prob",
                          "decoder_sparse_step", "mlp_only_layers"})
        j.erase(k);
    j["architectures"] = {"Qwen3ForCausalLM"};
    auto c = parse(j);
    ASSERT_TRUE(c.ok()) << c.error().message;
    int norms = 0;
    for (const TensorSpec& t : expected_tensors(*c)) {
        if (t.slot == Slot::q_norm || t.slot == Slot::k_norm) {
            ++norms;
            EXPECT_EQ(t.shape, std::vector<int64_t>{32}) << t.hf_name;
        }
    }
    EXPECT_EQ(norms, 2 * 4);
}

// The fixtures' configs, one per style, parse to what the script made them with.
TEST(ArchConfig, QwenFixtureConfigs) {
    auto moe = load_model_config(test::model_fixture("tiny-qwen3-moe") + "/config.json");
    ASSERT_TRUE(moe.ok()) << moe.error().message;
    EXPECT_EQ(moe->routing, MoeRouting::softmax_topk);
    EXPECT_FALSE(moe->layer_is_moe(0));
    EXPECT_TRUE(moe->layer_is_moe(1));
    auto renorm = load_model_config(test::model_fixture("tiny-qwen3-moe-renorm") + "/config.json");
    ASSERT_TRUE(renorm.ok()) << renorm.error().message;
    EXPECT_EQ(renorm->routing, MoeRouting::softmax_topk_renorm);
    EXPECT_EQ(renorm->n_moe_layers(), 2);
    auto q2 = load_model_config(test::model_fixture("tiny-qwen2") + "/config.json");
    ASSERT_TRUE(q2.ok()) << q2.error().message;
    EXPECT_TRUE(q2->qkv_bias && q2->tie_word_embeddings);
}

// The built-in qwen3-30b-a3b is the real model's config.json (a copy in tests/fixtures/configs).
TEST(ArchConfig, BuiltinQwen3MoeMatchesTheRealConfig) {
    auto real = load_model_config(HR_FIXTURES_DIR "/configs/qwen3-30b-a3b.config.json");
    ASSERT_TRUE(real.ok()) << real.error().message;
    const BuiltinModel* b = find_builtin_model("qwen3-30b-a3b");
    ASSERT_NE(b, nullptr);
    const ModelConfig& c = b->config;
    EXPECT_EQ(c.arch, real->arch);
    EXPECT_EQ(c.vocab_size, real->vocab_size);
    EXPECT_EQ(c.dim, real->dim);
    EXPECT_EQ(c.ffn_dim, real->ffn_dim);
    EXPECT_EQ(c.expert_ffn_dim(), real->expert_ffn_dim());
    EXPECT_EQ(c.n_layers, real->n_layers);
    EXPECT_EQ(c.n_heads, real->n_heads);
    EXPECT_EQ(c.n_kv_heads, real->n_kv_heads);
    EXPECT_EQ(c.head_dim, real->head_dim);
    EXPECT_EQ(c.n_experts, real->n_experts);
    EXPECT_EQ(c.n_experts_active, real->n_experts_active);
    EXPECT_EQ(c.n_moe_layers(), real->n_moe_layers());
    EXPECT_EQ(c.routing, real->routing);
    EXPECT_EQ(c.qk_norm, real->qk_norm);
    EXPECT_EQ(c.max_position_embeddings, real->max_position_embeddings);
    EXPECT_EQ(c.rope_theta, real->rope_theta);
    EXPECT_EQ(c.norm_eps, real->norm_eps);
    EXPECT_EQ(c.tie_word_embeddings, real->tie_word_embeddings);
    EXPECT_EQ(c.bos_token_id, real->bos_token_id);
    EXPECT_EQ(c.eos_token_id, real->eos_token_id);
    EXPECT_EQ(c.torch_dtype, real->torch_dtype);
}

}  // namespace
}  // namespace hr
