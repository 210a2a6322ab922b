// SmolLM2-135M-Instruct Q4_1 GGUF (a trained model) loaded by headroom from the GGUF file, against
// Hugging Face transformers loading the same file (it dequantizes every tensor to f32).
// Reference values: computed ONCE by tests/fixtures/smollm2/make_reference.py and committed as
// tests/fixtures/smollm2/reference.safetensors (top-32 logits and max|logit| of every prompt position, the
// whole logit row at two positions per prompt, 24-token greedy continuations); CI needs no torch.
// Tolerance: |headroom - transformers| <= 1e-3 x max|reference logit| of that position, for --weights auto
// (every tensor as stored: Q4_1 matrices, Q8_0 embedding and head) and --weights f32 (dequantized).
// Skips with a message when the model file is absent (scripts/test.sh fetches it).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "loader/load.h"
#include "loader/session.h"
#include "model/builtin_models.h"
#include "support/smollm2.h"

namespace hr {
namespace {

constexpr double kRelTol = 1e-3;  // of max|reference logit| at the position
constexpr int kPrompts = 4;
constexpr int kGreedy = 24;

class SmolLM2Model : public ::testing::TestWithParam<const char*> {
protected:
    void SetUp() override {
        if (!test::have_smollm2()) GTEST_SKIP() << test::smollm2_skip_message();
        auto ref = io::SafetensorsFile::open(test::smollm2_reference_path());
        ASSERT_TRUE(ref.ok()) << ref.error().message;
        ref_ = *ref;
        const std::string w = GetParam();
        std::optional<DType> weights;
        if (w == "f32") weights = DType::f32;
        auto m = load_model(test::smollm2_path(), be_, {.weights = weights});
        ASSERT_TRUE(m.ok()) << m.error().message;
        model_ = std::make_unique<LoadedModel>(std::move(*m));
    }
    cpu::CpuBackend be_;
    std::shared_ptr<io::SafetensorsFile> ref_;
    std::unique_ptr<LoadedModel> model_;
};

TEST(SmolLM2Config, FromMetadata) {
    if (!test::have_smollm2()) GTEST_SKIP() << test::smollm2_skip_message();
    auto c = resolve_model_config(test::smollm2_path());
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->arch, Architecture::llama);
    EXPECT_EQ(c->n_layers, 30);
    EXPECT_EQ(c->dim, 576);
    EXPECT_EQ(c->ffn_dim, 1536);
    EXPECT_EQ(c->n_heads, 9);
    EXPECT_EQ(c->n_kv_heads, 3);
    EXPECT_EQ(c->head_dim, 64);
    EXPECT_EQ(c->vocab_size, 49152);
    EXPECT_EQ(c->max_position_embeddings, 8192);
    EXPECT_DOUBLE_EQ(c->rope_theta, 100000.0);
    EXPECT_NEAR(c->norm_eps, 1e-5, 1e-12);
    EXPECT_TRUE(c->tie_word_embeddings);  // no output.weight
    EXPECT_EQ(c->bos_token_id, 1);
    EXPECT_EQ(c->eos_token_id, 2);
    ASSERT_TRUE(c->tensor_dtypes);
    EXPECT_EQ(c->tensor_dtypes->native, DType::gg_q4_1);
    EXPECT_EQ(c->tensor_dtypes->by_name.at("model.embed_tokens.weight"), DType::gg_q8_0);
    EXPECT_EQ(c->tensor_dtypes->by_name.at("model.layers.0.self_attn.q_proj.weight"), DType::gg_q4_1);
    EXPECT_EQ(c->tensor_dtypes->by_name.at("model.norm.weight"), DType::f32);
}

TEST_P(SmolLM2Model, LogitsMatchTransformers) {
    const int64_t vocab = model_->cfg.vocab_size;
    double worst = 0;  // worst |diff| / max|ref| over everything compared
    for (int i = 0; i < kPrompts; ++i) {
        const std::string s = std::to_string(i);
        const auto tokens = test::reference_tensor<int32_t>(*ref_, "tokens_" + s);
        const auto topk_ids = test::reference_tensor<int32_t>(*ref_, "topk_ids_" + s);
        const auto topk_vals = test::reference_tensor<float>(*ref_, "topk_vals_" + s);
        const auto maxabs = test::reference_tensor<float>(*ref_, "maxabs_" + s);
        const auto full_pos = test::reference_tensor<int32_t>(*ref_, "full_pos_" + s);
        const auto full = test::reference_tensor<float>(*ref_, "full_" + s);
        ASSERT_FALSE(tokens.empty()) << "prompt " << i << " missing from the reference";
        const size_t T = tokens.size(), K = topk_ids.size() / T;
        ASSERT_EQ(maxabs.size(), T);
        auto sess = Session::create(be_, *model_, {.context = static_cast<int64_t>(T), .chunk = 64, .all_logits = true});
        ASSERT_TRUE(sess.ok()) << sess.error().message;
        std::vector<float> last, all;
        Status st = (*sess)->append(tokens, last, &all);
        ASSERT_TRUE(st.ok()) << st.error().message;
        ASSERT_EQ(all.size(), T * static_cast<size_t>(vocab));
        for (size_t t = 0; t < T; ++t) {
            const float* row = all.data() + t * static_cast<size_t>(vocab);
            const double tol = kRelTol * maxabs[t];
            float got_max = 0;
            for (int64_t v = 0; v < vocab; ++v) got_max = std::max(got_max, std::fabs(row[v]));
            EXPECT_NEAR(got_max, maxabs[t], tol) << "prompt " << i << " position " << t << ": max|logit|";
            for (size_t k = 0; k < K; ++k) {
                const float ref = topk_vals[t * K + k], got = row[topk_ids[t * K + k]];
                worst = std::max(worst, static_cast<double>(std::fabs(got - ref) / maxabs[t]));
                ASSERT_NEAR(got, ref, tol) << "prompt " << i << " position " << t << " token " << topk_ids[t * K + k];
            }
        }
        for (size_t j = 0; j < full_pos.size(); ++j) {
            const size_t t = static_cast<size_t>(full_pos[j]);
            const double tol = kRelTol * maxabs[t];
            for (int64_t v = 0; v < vocab; ++v) {
                const float ref = full[j * static_cast<size_t>(vocab) + static_cast<size_t>(v)];
                const float got = all[t * static_cast<size_t>(vocab) + static_cast<size_t>(v)];
                worst = std::max(worst, static_cast<double>(std::fabs(got - ref) / maxabs[t]));
                ASSERT_NEAR(got, ref, tol) << "prompt " << i << " position " << t << " token " << v << " (whole row)";
            }
        }
    }
    std::printf("[smollm2] --weights %s (%s): worst |logit - transformers| = %.2e x max|logit|\n", GetParam(),
                std::string(dtype_name(model_->weight_format)).c_str(), worst);
}

TEST_P(SmolLM2Model, GreedyMatchesTransformers) {
    for (int i = 0; i < kPrompts; ++i) {
        const std::string s = std::to_string(i);
        const auto tokens = test::reference_tensor<int32_t>(*ref_, "tokens_" + s);
        const auto greedy = test::reference_tensor<int32_t>(*ref_, "greedy_" + s);
        ASSERT_EQ(greedy.size(), static_cast<size_t>(kGreedy));
        auto sess = Session::create(be_, *model_, {.context = static_cast<int64_t>(tokens.size()) + kGreedy});
        ASSERT_TRUE(sess.ok()) << sess.error().message;
        std::vector<float> logits;
        {
            Status st = (*sess)->append(tokens, logits, nullptr);
            ASSERT_TRUE(st.ok()) << st.error().message;
        }
        std::vector<int32_t> got;
        for (int k = 0; k < kGreedy; ++k) {
            const int32_t next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
            got.push_back(next);
            if (k + 1 < kGreedy) {
                Status st = (*sess)->append(std::span(&next, 1), logits, nullptr);
                ASSERT_TRUE(st.ok()) << st.error().message;
            }
        }
        EXPECT_EQ(got, greedy) << "prompt " << i;
    }
}

INSTANTIATE_TEST_SUITE_P(Weights, SmolLM2Model, ::testing::Values("auto", "f32"),
                         [](const auto& info) { return std::string(info.param); });

}  // namespace
}  // namespace hr
