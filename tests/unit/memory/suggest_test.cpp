// Alternatives to a plan that does not fit: each one is checked against its own re-plan, and the
// longest context / most sequences are the largest that fit.
#include <gtest/gtest.h>

#include "memory/suggest.h"
#include "model/builtin_models.h"

namespace hr {
namespace {

constexpr uint64_t kRtx4090 = 24564ull << 20;

const ModelConfig& model(const char* name) { return find_builtin_model(name)->config; }

PlanRequest request(uint64_t budget, std::optional<DType> wf, int64_t context, int64_t sequences) {
    PlanRequest r;
    r.budget_bytes = budget;
    r.weight_format = wf;
    r.context = context;
    r.sequences = sequences;
    r.device_name = "test";
    return r;
}

MemoryPlan plan_ok(const ModelConfig& c, const PlanRequest& r) {
    Result<MemoryPlan> p = plan_memory(c, r);
    EXPECT_TRUE(p.ok()) << p.error().message;
    return p.ok() ? *p : MemoryPlan{};
}

bool fits(const ModelConfig& c, PlanRequest r, DType wf, int64_t context, int64_t sequences) {
    r.weight_format = wf;
    r.context = context;
    r.sequences = sequences;
    r.suggest = false;
    Result<MemoryPlan> p = plan_memory(c, r);
    return p.ok() && p->fits;
}

// The origin story: Mixtral-8x7B in int8 on a 24 GB card.
TEST(Suggest, MixtralInt8On24GbDoesNotFitAndSaysWhatWould) {
    const PlanRequest r = request(kRtx4090, DType::q8, 4096, 1);
    const MemoryPlan p = plan_ok(model("mixtral-8x7b"), r);
    EXPECT_FALSE(p.fits);
    EXPECT_GT(p.region_bytes("weights"), 43ull << 30);  // about 44 GiB of weights alone
    EXPECT_LT(p.region_bytes("weights"), 44ull << 30);
    EXPECT_EQ(p.shortfall_bytes(), p.total_bytes - kRtx4090);
    ASSERT_FALSE(p.suggestions.empty());
    bool offload = false;
    for (const Suggestion& s : p.suggestions) {
        EXPECT_LE(s.total_bytes, s.budget_bytes) << s.text;
        EXPECT_EQ(s.budget_bytes, kRtx4090) << s.text;
        EXPECT_FALSE(s.text.empty());
        if (s.kind == SuggestionKind::host_experts) {
            offload = true;
            EXPECT_TRUE(s.implemented);
            EXPECT_GT(s.decode_tokens_per_s, 0.0);
            EXPECT_GT(s.host_bytes, 0u);
            EXPECT_LT(s.gpu_experts, 32 * 8);
        }
    }
    EXPECT_TRUE(offload);
}

TEST(Suggest, EverySingleCardSuggestionFitsWhenReplanned) {
    for (uint64_t budget : {kRtx4090, uint64_t{40960} << 20, uint64_t{81559} << 20}) {
        for (const char* name : {"mixtral-8x7b", "llama-2-70b", "llama-3-70b", "mixtral-8x22b"}) {
            const PlanRequest r = request(budget, DType::bf16, 4096, 4);
            const MemoryPlan p = plan_ok(model(name), r);
            for (const Suggestion& s : p.suggestions) {
                if (s.kind == SuggestionKind::more_gpus || s.kind == SuggestionKind::host_experts) continue;
                EXPECT_TRUE(fits(model(name), r, s.weight_format, s.context, s.sequences)) << name << ": " << s.text;
                const MemoryPlan again = plan_ok(model(name), [&] {
                    PlanRequest q = r;
                    q.weight_format = s.weight_format;
                    q.kv_dtype = s.kv_dtype;
                    q.context = s.context;
                    q.sequences = s.sequences;
                    return q;
                }());
                EXPECT_EQ(again.total_bytes, s.total_bytes) << s.text;
            }
        }
    }
}

TEST(Suggest, LongestContextIsTheLongestThatFits) {
    // Llama-2-70B in int4 is about 36 GiB: on a 40 GB card the KV cache of 4096 x 8 sequences does not fit.
    const PlanRequest r = request(40960ull << 20, DType::q4, 4096, 8);
    const MemoryPlan p = plan_ok(model("llama-2-70b"), r);
    ASSERT_FALSE(p.fits);
    bool saw_context = false, saw_sequences = false;
    for (const Suggestion& s : p.suggestions) {
        if (s.kind == SuggestionKind::context) {
            saw_context = true;
            EXPECT_EQ(s.context % 16, 0);
            EXPECT_TRUE(fits(model("llama-2-70b"), r, DType::q4, s.context, 8));
            EXPECT_FALSE(fits(model("llama-2-70b"), r, DType::q4, s.context + 16, 8)) << s.text;
        }
        if (s.kind == SuggestionKind::sequences) {
            saw_sequences = true;
            EXPECT_TRUE(fits(model("llama-2-70b"), r, DType::q4, 4096, s.sequences));
            EXPECT_FALSE(fits(model("llama-2-70b"), r, DType::q4, 4096, s.sequences + 1)) << s.text;
        }
    }
    EXPECT_TRUE(saw_context);
    EXPECT_TRUE(saw_sequences);
}

TEST(Suggest, SmallerFormatsComeFirstInQualityOrder) {
    // Mixtral bf16 on an H100: int8 fits the whole request, and so does int4; int8 is ranked first.
    const MemoryPlan p = plan_ok(model("mixtral-8x7b"), request(81559ull << 20, DType::bf16, 4096, 1));
    ASSERT_GE(p.suggestions.size(), 2u);
    EXPECT_EQ(p.suggestions[0].kind, SuggestionKind::weight_format);
    EXPECT_EQ(p.suggestions[0].weight_format, DType::q8);
    EXPECT_EQ(p.suggestions[1].kind, SuggestionKind::weight_format);
    EXPECT_EQ(p.suggestions[1].weight_format, DType::q4);
}

TEST(Suggest, Int8KvCacheFirstWhenItFitsTheWholeRequest) {
    // Llama-2-70B int4 on a 40 GB card, 4096 x 6: the f16 KV cache does not fit, an int8 one does.
    const PlanRequest r = request(40960ull << 20, DType::q4, 4096, 6);
    const MemoryPlan p = plan_ok(model("llama-2-70b"), r);
    ASSERT_FALSE(p.fits);
    ASSERT_FALSE(p.suggestions.empty());
    const Suggestion& s = p.suggestions[0];
    EXPECT_EQ(s.kind, SuggestionKind::kv_cache) << s.text;
    EXPECT_EQ(s.kv_dtype, DType::i8);
    EXPECT_EQ(s.weight_format, DType::q4);
    EXPECT_EQ(s.context, 4096);
    EXPECT_EQ(s.sequences, 6);
    EXPECT_TRUE(s.implemented);
    EXPECT_NE(s.text.find("--kv-cache int8"), std::string::npos) << s.text;
    PlanRequest q = r;
    q.kv_dtype = DType::i8;
    EXPECT_TRUE(plan_ok(model("llama-2-70b"), q).fits);
    for (size_t i = 1; i < p.suggestions.size(); ++i) EXPECT_EQ(p.suggestions[i].kv_dtype, DType::f16) << p.suggestions[i].text;
}

TEST(Suggest, Int8KvCacheLongestContextWhenTheWholeRequestDoesNotFit) {
    // Llama-2-70B int4 on a 40 GB card at 64 x 4096: neither cache fits; the int8 one holds a longer context.
    const PlanRequest r = request(40960ull << 20, DType::q4, 4096, 64);
    const MemoryPlan p = plan_ok(model("llama-2-70b"), r);
    ASSERT_FALSE(p.fits);
    int64_t f16_ctx = 0, int8_ctx = 0;
    for (const Suggestion& s : p.suggestions) {
        if (s.kind == SuggestionKind::context && s.weight_format == DType::q4) f16_ctx = s.context;
        if (s.kind == SuggestionKind::kv_cache) {
            int8_ctx = s.context;
            PlanRequest q = r;
            q.kv_dtype = DType::i8;
            EXPECT_TRUE(fits(model("llama-2-70b"), q, DType::q4, s.context, 64)) << s.text;
            EXPECT_FALSE(fits(model("llama-2-70b"), q, DType::q4, s.context + 16, 64)) << s.text;
        }
    }
    EXPECT_GT(f16_ctx, 0);
    EXPECT_GT(int8_ctx, f16_ctx);
}

TEST(Suggest, MoreGpusSplitTheMatrices) {
    const MemoryPlan p = plan_ok(model("llama-2-70b"), request(kRtx4090, DType::bf16, 4096, 1));
    bool saw = false;
    for (const Suggestion& s : p.suggestions) {
        if (s.kind != SuggestionKind::more_gpus) continue;
        saw = true;
        EXPECT_FALSE(s.implemented);
        EXPECT_GE(s.n_gpus, 2);
        EXPECT_LE(s.total_bytes, s.budget_bytes);
        // The matrices alone, split n ways, are part of the per-GPU total.
        EXPECT_GE(s.total_bytes * static_cast<uint64_t>(s.n_gpus), p.region_bytes("weights.attention") + p.region_bytes("weights.mlp"));
    }
    EXPECT_TRUE(saw);  // 8 x 24 GB hold the 129 GiB of bf16 weights
}

TEST(Suggest, NothingWhenNothingCanFit) {
    const MemoryPlan p = plan_ok(model("mixtral-8x22b"), request(1ull << 30, DType::q4, 4096, 1));
    EXPECT_FALSE(p.fits);
    EXPECT_TRUE(p.suggestions.empty());
}

TEST(Suggest, DenseModelsGetNoExpertOffload) {
    const MemoryPlan p = plan_ok(model("llama-2-70b"), request(kRtx4090, DType::q8, 4096, 1));
    for (const Suggestion& s : p.suggestions) EXPECT_NE(s.kind, SuggestionKind::host_experts) << s.text;
}


// Tensor parallel (model/shard.h): the per-GPU plan is the rank-local config's, and the more_gpus
// suggestion is exactly `plan --tensor-parallel n`.
TEST(TensorParallelPlan, PerGpuRegionsComeFromTheShard) {
    const ModelConfig c = model("mixtral-8x7b");
    PlanRequest r = request(80ull << 30, DType::bf16, 4096, 1);
    const MemoryPlan one = plan_ok(c, r);
    r.tensor_parallel = 2;
    const MemoryPlan two = plan_ok(c, r);
    EXPECT_EQ(two.tensor_parallel, 2);
    EXPECT_EQ(two.n_params, one.n_params);  // the model's parameters, not one shard's
    // Attention and experts halve exactly (heads and expert columns split evenly), the KV cache too
    // (8 kv heads); embedding, router, norms and head are whole on each GPU.
    EXPECT_EQ(two.region_bytes("weights.attention") * 2, one.region_bytes("weights.attention"));
    EXPECT_EQ(two.region_bytes("weights.experts") * 2, one.region_bytes("weights.experts"));
    EXPECT_EQ(two.region_bytes("kv_cache") * 2, one.region_bytes("kv_cache"));
    EXPECT_EQ(two.region_bytes("weights.embedding"), one.region_bytes("weights.embedding"));
    EXPECT_EQ(two.region_bytes("weights.output_head"), one.region_bytes("weights.output_head"));
    EXPECT_EQ(two.region_bytes("weights.router"), one.region_bytes("weights.router"));
    EXPECT_LT(two.region_bytes("activations"), one.region_bytes("activations"));
    EXPECT_FALSE(one.fits);  // 87 GiB of bf16 weights
    EXPECT_TRUE(two.fits);
}

TEST(TensorParallelPlan, SuggestionEqualsTheTensorParallelPlan) {
    const ModelConfig c = model("mixtral-8x7b");
    const PlanRequest r = request(80ull << 30, DType::bf16, 4096, 1);
    const MemoryPlan p = plan_ok(c, r);
    const Suggestion* s = nullptr;
    for (const Suggestion& x : p.suggestions)
        if (x.kind == SuggestionKind::more_gpus) s = &x;
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->n_gpus, 2);
    EXPECT_FALSE(s->implemented);
    PlanRequest q = r;
    q.tensor_parallel = 2;
    EXPECT_EQ(s->total_bytes, plan_ok(c, q).total_bytes);
    EXPECT_NE(s->text.find("--tensor-parallel 2"), std::string::npos) << s->text;
}

TEST(TensorParallelPlan, Errors) {
    PlanRequest r = request(80ull << 30, DType::bf16, 4096, 1);
    r.tensor_parallel = 3;  // 32 heads
    auto p = plan_memory(model("mixtral-8x7b"), r);
    ASSERT_FALSE(p.ok());
    EXPECT_NE(p.error().message.find("num_attention_heads 32"), std::string::npos) << p.error().message;
    r.tensor_parallel = 2;
    r.offload = OffloadRequest{.automatic = true, .experts = 0};
    p = plan_memory(model("mixtral-8x7b"), r);
    ASSERT_FALSE(p.ok());
    EXPECT_NE(p.error().message.find("--offload-experts"), std::string::npos) << p.error().message;
}

}  // namespace
}  // namespace hr
