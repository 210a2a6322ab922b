// The planner on Mixtral-8x7B against numbers computed by hand, the rules of auto, KV and step limits,
// region lookup, and refusal of bad inputs.
#include <gtest/gtest.h>

#include <limits>

#include "memory/plan.h"
#include "model/builtin_models.h"
#include "model/forward.h"

namespace hr {
namespace {

ModelConfig mixtral() {
    Result<ModelConfig> c = load_model_config(HR_FIXTURES_DIR "/configs/mixtral-8x7b-instruct-v0.1.config.json");
    EXPECT_TRUE(c.ok()) << c.error().message;
    return c.ok() ? *c : find_builtin_model("mixtral-8x7b")->config;
}

PlanRequest on(uint64_t budget, std::optional<DType> wf) {
    PlanRequest r;
    r.budget_bytes = budget;
    r.weight_format = wf;
    r.device_name = "test";
    return r;
}

constexpr uint64_t kH100 = 81559ull << 20;
constexpr uint64_t kRtx4090 = 24564ull << 20;

MemoryPlan plan_ok(const ModelConfig& c, const PlanRequest& r) {
    Result<MemoryPlan> p = plan_memory(c, r);
    EXPECT_TRUE(p.ok()) << p.error().message;
    return p.ok() ? *p : MemoryPlan{};
}

// Mixtral-8x7B by hand: 32 layers, dim 4096, 32 heads / 8 KV heads of 128, 8 experts of ffn 14336, vocab 32000.
constexpr uint64_t kL = 32, kDim = 4096, kKv = 1024, kFfn = 14336, kVocab = 32000, kE = 8;
constexpr uint64_t kAttnParamsPerLayer = kDim * kDim * 2 + kKv * kDim * 2;  // q, o + k, v
constexpr uint64_t kExpertParams = 3 * kFfn * kDim;                          // w1, w3, w2

TEST(Plan, MixtralHasTheRightParameterCount) {
    const MemoryPlan p = plan_ok(mixtral(), on(kH100, DType::bf16));
    const uint64_t hand = kVocab * kDim * 2 + kL * (kAttnParamsPerLayer + kE * kExpertParams + kE * kDim + 2 * kDim) + kDim;
    EXPECT_EQ(static_cast<uint64_t>(p.n_params), hand);
    EXPECT_EQ(fmt::format("{:.2f}", static_cast<double>(p.n_params) / 1e9), "46.70");
}

TEST(Plan, MixtralBf16RegionsByHand) {
    const MemoryPlan p = plan_ok(mixtral(), on(kH100, DType::bf16));
    EXPECT_EQ(p.region_bytes("weights.embedding"), kVocab * kDim * 2);
    EXPECT_EQ(p.region_bytes("weights.attention"), kL * kAttnParamsPerLayer * 2);
    EXPECT_EQ(p.region_bytes("weights.experts"), kL * kE * kExpertParams * 2);
    EXPECT_EQ(p.region_bytes("weights.router"), kL * kE * kDim * 2);
    EXPECT_EQ(p.region_bytes("weights.norms"), (2 * kL + 1) * kDim * 2);
    EXPECT_EQ(p.region_bytes("weights.output_head"), kVocab * kDim * 2);
    EXPECT_EQ(p.region_bytes("weights.scales"), 0u);
    EXPECT_EQ(p.region_bytes("weights"), static_cast<uint64_t>(p.n_params) * 2);
    EXPECT_FALSE(p.fits);  // 87 GiB of bf16 weights on an 80 GB card
}

TEST(Plan, MixtralInt8RegionsByHand) {
    const MemoryPlan p = plan_ok(mixtral(), on(kH100, DType::q8));
    EXPECT_EQ(p.region_bytes("weights.embedding"), kVocab * kDim * 2);  // stays bf16
    EXPECT_EQ(p.region_bytes("weights.attention"), kL * kAttnParamsPerLayer);
    EXPECT_EQ(p.region_bytes("weights.experts"), kL * kE * kExpertParams);
    EXPECT_EQ(p.region_bytes("weights.router"), kL * kE * kDim * 2);    // stays bf16
    EXPECT_EQ(p.region_bytes("weights.output_head"), kVocab * kDim);
    // One f32 scale per output row: q, k, v, o rows; w1, w3, w2 rows; head rows.
    const uint64_t rows = kL * (kDim + kKv + kKv + kDim) + kL * kE * (kFfn + kFfn + kDim) + kVocab;
    EXPECT_EQ(p.region_bytes("weights.scales"), rows * 4);
    EXPECT_TRUE(p.fits);
}

TEST(Plan, MixtralInt4RegionsByHandWithAnInt8Head) {
    const MemoryPlan p = plan_ok(mixtral(), on(kH100, DType::q4));
    EXPECT_EQ(p.region_bytes("weights.attention"), kL * kAttnParamsPerLayer / 2);
    EXPECT_EQ(p.region_bytes("weights.experts"), kL * kE * kExpertParams / 2);
    EXPECT_EQ(p.region_bytes("weights.output_head"), kVocab * kDim);  // int8 head
    // f16 scale per 128 inputs: q, o: dim/128 groups; k, v: dim/128; w1, w3: dim/128; w2: ffn/128; head: f32 per row.
    const uint64_t attn = (kDim + kKv + kKv + kDim) * (kDim / 128) * 2;
    const uint64_t expert = (2 * kFfn * (kDim / 128) + kDim * (kFfn / 128)) * 2;
    EXPECT_EQ(p.region_bytes("weights.scales"), kL * attn + kL * kE * expert + kVocab * 4);
}

TEST(Plan, KvCacheIsTwoLayersHeadsHeadDimBytesPerToken) {
    PlanRequest r = on(kH100, DType::q8);
    r.context = 4096;
    r.sequences = 2;
    for (DType kv : {DType::f16, DType::bf16, DType::f32}) {
        r.kv_dtype = kv;
        const MemoryPlan p = plan_ok(mixtral(), r);
        const uint64_t per_token = 2 * kL * 8 * 128 * dtype_size(kv);
        EXPECT_EQ(p.region_bytes("kv_cache"), per_token * 4096 * 2) << dtype_name(kv);
        EXPECT_EQ(p.kv_blocks, 2 * 4096 / 16);
        EXPECT_EQ(p.region_bytes("kv_cache"), kv_cache_bytes(mixtral(), p.kv_blocks, 16, kv));
        EXPECT_EQ(p.kv_bytes_per_token, per_token);
    }
}

TEST(Plan, QuantizedKvCacheCountsItsScales) {
    // int8 / fp8: one byte per element plus an f32 scale per (token, kv head), for k and v of every layer:
    // 2 x 32 x (8 x 128 + 8 x 4) = 67584 bytes per token, 51.6% of f16's 131072.
    PlanRequest r = on(kH100, DType::q8);
    r.context = 4096;
    r.sequences = 2;
    for (DType kv : {DType::i8, DType::f8_e4m3}) {
        r.kv_dtype = kv;
        const MemoryPlan p = plan_ok(mixtral(), r);
        const uint64_t per_token = 2 * kL * (8 * 128 + 8 * 4);
        EXPECT_EQ(per_token, 67584u);
        EXPECT_EQ(p.kv_bytes_per_token, per_token);
        EXPECT_EQ(p.region_bytes("kv_cache"), per_token * 4096 * 2) << dtype_name(kv);
        EXPECT_EQ(p.region_bytes("kv_cache"), kv_cache_bytes(mixtral(), p.kv_blocks, 16, kv));
    }
}

TEST(Plan, KvBlocksRoundEachSequenceUp) {
    PlanRequest r = on(kH100, DType::q8);
    r.context = 1000;
    r.sequences = 3;
    const MemoryPlan p = plan_ok(mixtral(), r);
    EXPECT_EQ(p.kv_blocks, 3 * 63);  // ceil(1000 / 16) = 63
    EXPECT_EQ(p.limits.max_blocks_per_seq, 63);
    EXPECT_EQ(p.limits.max_seqs, 3);
}

TEST(Plan, StepLimitsAndActivationsComeFromTheActivationTable) {
    PlanRequest r = on(kH100, DType::q8);
    r.prefill_chunk = 512;
    r.sequences = 600;
    r.context = 256;
    MemoryPlan p = plan_ok(mixtral(), r);
    EXPECT_EQ(p.limits.max_tokens, 600);  // at least one token per sequence
    EXPECT_EQ(p.region_bytes("activations"), activation_bytes(mixtral(), p.limits));
    r.sequences = 1;
    r.context = 100;
    p = plan_ok(mixtral(), r);
    EXPECT_EQ(p.limits.max_tokens, 100);  // never more than the sequences can hold
    r.context = 4096;
    p = plan_ok(mixtral(), r);
    EXPECT_EQ(p.limits.max_tokens, 512);
    EXPECT_EQ(p.region_bytes("activations"), activation_bytes(mixtral(), p.limits));
    EXPECT_EQ(p.region_bytes("activations.logits"), align_up(kVocab * 4));
}

TEST(Plan, TotalIsTheSumAndFitsComparesWithTheBudget) {
    const MemoryPlan p = plan_ok(mixtral(), on(kH100, DType::q8));
    uint64_t sum = 0;
    for (const PlanRegion& r : p.regions) sum += r.bytes;
    EXPECT_EQ(p.total_bytes, sum);
    EXPECT_EQ(p.region_bytes("reserve"), kDefaultGpuReserveBytes);
    EXPECT_EQ(p.region_bytes("workspace.library"), kLibraryWorkspaceBytes);
    EXPECT_EQ(p.kind_bytes(RegionKind::weights), p.region_bytes("weights"));
    EXPECT_EQ(p.budget_bytes, kH100);
    EXPECT_EQ(p.free_bytes(), kH100 - p.total_bytes);
    // Exactly the total fits; one byte less does not, and the shortfall is that byte.
    const MemoryPlan exact = plan_ok(mixtral(), on(p.total_bytes, DType::q8));
    EXPECT_TRUE(exact.fits);
    PlanRequest tight = on(p.total_bytes - 1, DType::q8);
    tight.suggest = false;
    const MemoryPlan short_by_one = plan_ok(mixtral(), tight);
    EXPECT_FALSE(short_by_one.fits);
    EXPECT_EQ(short_by_one.shortfall_bytes(), 1u);
}

// A caller's own start-up allocations (e.g. a side model's buffers) are regions like the engine's: counted in
// the total and the fit, and kept in the alternatives.
TEST(Plan, ExtraRegionsCountInTheTotalAndTheFit) {
    const MemoryPlan base = plan_ok(mixtral(), on(kH100, DType::q8));
    PlanRequest r = on(kH100, DType::q8);
    const uint64_t extra = 600ull << 20;
    r.extra_regions.push_back(PlanRegion{"extra", extra, RegionKind::activations, "test"});
    const MemoryPlan p = plan_ok(mixtral(), r);
    EXPECT_EQ(p.region_bytes("extra"), extra);
    EXPECT_EQ(p.total_bytes, base.total_bytes + extra);
    EXPECT_EQ(p.kind_bytes(RegionKind::activations), base.kind_bytes(RegionKind::activations) + extra);
    // A budget that fits the engine alone but not the extra region does not fit, short by the difference.
    PlanRequest tight = r;
    tight.budget_bytes = base.total_bytes + extra / 2;
    const MemoryPlan t = plan_ok(mixtral(), tight);
    EXPECT_FALSE(t.fits);
    EXPECT_EQ(t.shortfall_bytes(), extra - extra / 2);
    for (const Suggestion& s : t.suggestions) EXPECT_GE(s.total_bytes, extra) << s.text;
}

TEST(Plan, RegionLookupMatchesWholeDottedNames) {
    const MemoryPlan p = plan_ok(mixtral(), on(kH100, DType::q8));
    EXPECT_EQ(p.region_bytes("weights"), p.region_bytes("weights.embedding") + p.region_bytes("weights.attention") +
                                             p.region_bytes("weights.experts") + p.region_bytes("weights.router") +
                                             p.region_bytes("weights.norms") + p.region_bytes("weights.output_head") +
                                             p.region_bytes("weights.scales"));
    EXPECT_EQ(p.region_bytes("weight"), 0u);
    EXPECT_EQ(p.region_bytes("weights.expert"), 0u);
    EXPECT_EQ(p.region_bytes("nothing"), 0u);
}

TEST(Plan, AutoPicksTheBestFormatThatFits) {
    EXPECT_EQ(plan_ok(mixtral(), on(kH100, std::nullopt)).weight_format, DType::q8);
    EXPECT_EQ(plan_ok(mixtral(), on(143771ull << 20, std::nullopt)).weight_format, DType::bf16);  // h200
    const MemoryPlan none = plan_ok(mixtral(), on(kRtx4090, std::nullopt));
    EXPECT_FALSE(none.fits);
    EXPECT_EQ(none.weight_format, DType::q4);  // the smallest, refused
    EXPECT_TRUE(none.weight_format_auto);
    // A float16 checkpoint keeps f16 when it fits.
    EXPECT_EQ(plan_ok(find_builtin_model("llama-2-7b")->config, on(kH100, std::nullopt)).weight_format, DType::f16);
}

TEST(Plan, CpuTargetHasNoReserveOrLibraryWorkspace) {
    PlanRequest r = on(64ull << 30, DType::q4);
    r.target = PlanTarget::cpu;
    r.kv_dtype = DType::f32;
    const MemoryPlan p = plan_ok(mixtral(), r);
    EXPECT_EQ(p.region_bytes("reserve"), 0u);
    EXPECT_EQ(p.region_bytes("workspace.library"), 0u);
    EXPECT_EQ(p.region_bytes("workspace.backend"), 0u);
    EXPECT_EQ(p.region_bytes("workspace.sampling"), align_up(kVocab * 4));
}

TEST(Plan, BackendWorkspaceFromTheEngineReplacesTheEstimate) {
    PlanRequest r = on(kH100, DType::q8);
    const MemoryPlan est = plan_ok(mixtral(), r);
    EXPECT_EQ(est.region_bytes("workspace.backend"), estimate_cuda_workspace_bytes(mixtral(), est.limits));
    r.backend_workspace_bytes = 12345;
    EXPECT_EQ(plan_ok(mixtral(), r).region_bytes("workspace.backend"), 12345u);
}

void expect_refused(const ModelConfig& c, const PlanRequest& r, const std::string& needle) {
    Result<MemoryPlan> p = plan_memory(c, r);
    ASSERT_FALSE(p.ok()) << "accepted; expected an error mentioning " << needle;
    EXPECT_NE(p.error().message.find(needle), std::string::npos) << p.error().message;
}

TEST(Plan, RefusesBadInputsWithClearErrors) {
    const ModelConfig c = mixtral();
    PlanRequest r = on(kH100, DType::q8);
    r.context = 0;
    expect_refused(c, r, "--context");
    r.context = -4096;
    expect_refused(c, r, "-4096");
    r.context = 32769;
    expect_refused(c, r, "max_position_embeddings 32768");
    r.context = 4096;
    r.sequences = 0;
    expect_refused(c, r, "--sequences");
    r.sequences = -2;
    expect_refused(c, r, "found -2");
    r.sequences = 1;
    r.prefill_chunk = 0;
    expect_refused(c, r, "--prefill-chunk");
    r.prefill_chunk = 512;
    r.block_size = 0;
    expect_refused(c, r, "--block-size");
    r.block_size = 16;
    r.budget_bytes = 0;
    expect_refused(c, r, "device memory");
    r.budget_bytes = kH100;
    r.kv_dtype = DType::q8;
    expect_refused(c, r, "KV cache dtype");
    r.kv_dtype = DType::f16;
    r.weight_format = DType::i32;
    expect_refused(c, r, "weight format");
    r.weight_format = DType::q8;
    ModelConfig zero = c;
    zero.dim = 0;
    expect_refused(zero, r, "hidden_size");
    ModelConfig topk = c;
    topk.n_experts_active = 9;
    expect_refused(topk, r, "num_experts_per_tok");
}

TEST(Plan, RefusesAKvCacheThatWouldOverflow) {
    ModelConfig huge = find_builtin_model("llama-2-7b")->config;
    huge.max_position_embeddings = int64_t{1} << 40;  // a config.json may say anything
    PlanRequest r = on(kH100, DType::q8);
    r.context = int64_t{1} << 40;
    r.sequences = 65536;
    expect_refused(huge, r, "exceeds 4 EiB");
    huge.max_position_embeddings = std::numeric_limits<int64_t>::max();
    r.context = std::numeric_limits<int64_t>::max();
    r.sequences = 1;
    expect_refused(huge, r, "--context");
}

}  // namespace
}  // namespace hr
