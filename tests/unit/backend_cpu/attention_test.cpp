// CPU attention (backend/cpu/attention.cpp): the AVX2 and AVX-512 kernels (each forced) against the scalar
// online-softmax reference over a paged cache with shuffled blocks: a 250-token prefill, decode tokens of
// two sequences, grouped-query shapes of SmolLM2 (9 heads / 3 kv, dim 64) and Mixtral (32 / 8, dim 128),
// a head dim no vector width divides, a bf16 cache, and the quantized int8 / fp8 caches (core/kv_quant.h,
// decoded while gathered). QuantizedCacheNearF32 bounds what the int8 / fp8 cache itself costs.
// Tolerance: |out - ref| <= 2e-5 * max|v| (outputs are convex combinations of value rows; the scores'
// sums differ in order and the vector exp is within 2 ulp of expf).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_ops.h"
#include "core/kv_quant.h"

namespace hr::cpu {
namespace {

struct Case {
    int64_t n_heads, n_kv, hd;
    std::vector<int32_t> seq_len_before;  // cached tokens of each sequence before this step
    std::vector<int32_t> new_tokens;      // tokens of each sequence in this step
    DType cache_dtype;
};

void run_case(const Case& c) {
    const int bs = 16;
    const int64_t n_seqs = static_cast<int64_t>(c.seq_len_before.size());
    int64_t max_len = 0, n = 0;
    for (int64_t s = 0; s < n_seqs; ++s) {
        max_len = std::max<int64_t>(max_len, c.seq_len_before[s] + c.new_tokens[s]);
        n += c.new_tokens[s];
    }
    const int64_t max_blocks = (max_len + bs - 1) / bs;
    const int64_t n_blocks = max_blocks * n_seqs + 3;
    std::mt19937 rng(static_cast<uint32_t>(c.hd * 7 + n));
    std::normal_distribution<float> nd(0.0f, 1.0f);
    // Block tables: a shuffled permutation of the cache's blocks.
    std::vector<int32_t> perm(static_cast<size_t>(n_blocks));
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    std::vector<int32_t> tables(static_cast<size_t>(n_seqs * max_blocks));
    for (size_t i = 0; i < tables.size(); ++i) tables[i] = perm[i];

    const int64_t slot = c.n_kv * c.hd;
    const bool quant = is_quantized_kv(c.cache_dtype);
    const size_t esz = dtype_size(c.cache_dtype);
    std::vector<uint8_t> kc(static_cast<size_t>(n_blocks * bs * slot) * esz), vc(kc.size());
    std::vector<float> ks(quant ? static_cast<size_t>(n_blocks * bs * c.n_kv) : 0), vs(ks.size());
    // Earlier tokens: random cache contents everywhere (the new tokens overwrite their slots).
    if (quant) {
        std::vector<float> row(static_cast<size_t>(c.hd));
        for (int64_t r = 0; r < n_blocks * bs * c.n_kv; ++r) {
            for (auto& v : row) v = nd(rng);
            kv_quantize_row(row.data(), c.hd, c.cache_dtype, kc.data() + r * c.hd, &ks[static_cast<size_t>(r)]);
            for (auto& v : row) v = nd(rng);
            kv_quantize_row(row.data(), c.hd, c.cache_dtype, vc.data() + r * c.hd, &vs[static_cast<size_t>(r)]);
        }
    } else {
        for (int64_t i = 0; i < n_blocks * bs * slot; ++i) {
            store_elem(c.cache_dtype, kc.data(), i, nd(rng));
            store_elem(c.cache_dtype, vc.data(), i, nd(rng));
        }
    }
    std::vector<int32_t> pos, seq, slots;
    for (int64_t s = 0; s < n_seqs; ++s) {
        for (int32_t j = 0; j < c.new_tokens[s]; ++j) {
            const int32_t p = c.seq_len_before[s] + j;
            pos.push_back(p);
            seq.push_back(static_cast<int32_t>(s));
            slots.push_back(tables[static_cast<size_t>(s * max_blocks + p / bs)] * bs + p % bs);
        }
    }
    std::vector<float> q(static_cast<size_t>(n * c.n_heads * c.hd)), kn(static_cast<size_t>(n * slot)), vn(kn.size());
    for (auto& v : q) v = nd(rng);
    for (auto& v : kn) v = nd(rng);
    for (auto& v : vn) v = nd(rng);
    std::vector<float> out_best(q.size(), NAN), out_ref(q.size(), NAN), out_path(q.size(), NAN);

    AttentionArgs a;
    a.q = Tensor::make(DType::f32, q.data(), {n, c.n_heads, c.hd});
    a.k_new = Tensor::make(DType::f32, kn.data(), {n, c.n_kv, c.hd});
    a.v_new = Tensor::make(DType::f32, vn.data(), {n, c.n_kv, c.hd});
    a.cache.k = Tensor::make(c.cache_dtype, kc.data(), {n_blocks, bs, c.n_kv, c.hd});
    a.cache.v = Tensor::make(c.cache_dtype, vc.data(), {n_blocks, bs, c.n_kv, c.hd});
    if (quant) {
        a.cache.k_scale = Tensor::make(DType::f32, ks.data(), {n_blocks, bs, c.n_kv});
        a.cache.v_scale = Tensor::make(DType::f32, vs.data(), {n_blocks, bs, c.n_kv});
    }
    a.positions = Tensor::make(DType::i32, pos.data(), {n});
    a.token_seq = Tensor::make(DType::i32, seq.data(), {n});
    a.slot_mapping = Tensor::make(DType::i32, slots.data(), {n});
    a.block_tables = Tensor::make(DType::i32, tables.data(), {n_seqs, max_blocks});
    a.block_size = bs;
    a.scale = 1.0f / std::sqrt(static_cast<float>(c.hd));
    a.out = Tensor::make(DType::f32, out_best.data(), {n, c.n_heads * c.hd});
    CpuBackend be;
    be.attention(a);  // writes the cache, then the best path
    a.out = Tensor::make(DType::f32, out_ref.data(), {n, c.n_heads * c.hd});
    attend_cached(CpuIsa::scalar, a);

    float vmax = 0.0f;
    if (quant) {
        for (int64_t r = 0; r < n_blocks * bs * c.n_kv; ++r)
            for (int64_t i = 0; i < c.hd; ++i)
                vmax = std::max(vmax, std::abs(kv_decode(vc[static_cast<size_t>(r * c.hd + i)], c.cache_dtype) *
                                                vs[static_cast<size_t>(r)]));
    } else {
        for (int64_t i = 0; i < n_blocks * bs * slot; ++i)
            vmax = std::max(vmax, std::abs(load_elem(c.cache_dtype, vc.data(), i)));
    }
    const double tol = 2e-5 * vmax;
    for (size_t i = 0; i < out_ref.size(); ++i) ASSERT_NEAR(out_best[i], out_ref[i], tol) << "best path, element " << i;
    for (CpuIsa isa : {CpuIsa::avx2, CpuIsa::avx512}) {
        if (!cpu_isa_supported(isa)) continue;
        a.out = Tensor::make(DType::f32, out_path.data(), {n, c.n_heads * c.hd});
        attend_cached(isa, a);
        for (size_t i = 0; i < out_ref.size(); ++i)
            ASSERT_NEAR(out_path[i], out_ref[i], tol) << cpu_isa_name(isa) << ", element " << i;
    }
}

TEST(CpuAttention, Prefill250SmolLM2Shape) { run_case({9, 3, 64, {0}, {250}, DType::f32}); }
TEST(CpuAttention, PrefillAfterCachedPrefix) { run_case({9, 3, 64, {37}, {70}, DType::f32}); }
TEST(CpuAttention, DecodeTwoSequences) { run_case({9, 3, 64, {300, 17}, {1, 1}, DType::f32}); }
TEST(CpuAttention, MixtralGroupsOfFourDim128) { run_case({32, 8, 128, {5, 0}, {40, 33}, DType::f32}); }
TEST(CpuAttention, HeadDimNoVectorDivides) { run_case({4, 2, 12, {3}, {20}, DType::f32}); }
TEST(CpuAttention, HeadDim16) { run_case({4, 1, 16, {0}, {50}, DType::f32}); }
TEST(CpuAttention, Bf16Cache) { run_case({9, 3, 64, {10}, {45}, DType::bf16}); }
TEST(CpuAttention, Int8CachePrefillAndDecode) {
    run_case({9, 3, 64, {37}, {70}, DType::i8});
    run_case({32, 8, 128, {300, 17}, {1, 1}, DType::i8});
}
TEST(CpuAttention, Fp8CachePrefillAndDecode) {
    run_case({9, 3, 64, {37}, {70}, DType::f8_e4m3});
    run_case({32, 8, 128, {300, 17}, {1, 1}, DType::f8_e4m3});
    run_case({4, 2, 12, {3}, {20}, DType::f8_e4m3});
}

// What the quantized cache costs: the same new keys/values written into an f32 cache and into an int8 /
// fp8 one, attended by the same queries (a 200-token prefill, Mixtral's head shape). Measured here:
// relative L2 error of the outputs 0.46% for int8 and 2.3% for fp8 (e4m3 keeps 3 mantissa bits: a
// relative step of 2^-4 per element, against int8's 1/254 of the row's max); bounds with margin.
constexpr double kInt8AttnRelL2 = 1e-2;
constexpr double kFp8AttnRelL2 = 4e-2;

std::vector<float> prefill_outputs(DType dt, const std::vector<float>& q, const std::vector<float>& kn,
                                   const std::vector<float>& vn, int64_t n, int64_t n_heads, int64_t n_kv, int64_t hd) {
    const int bs = 16;
    const int64_t n_blocks = (n + bs - 1) / bs;
    const size_t rows = static_cast<size_t>(n_blocks * bs * n_kv);
    std::vector<uint8_t> kc(rows * static_cast<size_t>(hd) * dtype_size(dt)), vc(kc.size());
    std::vector<float> ks(rows), vs(rows), out(q.size());
    std::vector<int32_t> pos(static_cast<size_t>(n)), seq(static_cast<size_t>(n), 0), table(static_cast<size_t>(n_blocks));
    std::iota(pos.begin(), pos.end(), 0);
    std::iota(table.begin(), table.end(), 0);
    AttentionArgs a;
    a.out = Tensor::make(DType::f32, out.data(), {n, n_heads * hd});
    a.q = Tensor::make(DType::f32, const_cast<float*>(q.data()), {n, n_heads, hd});
    a.k_new = Tensor::make(DType::f32, const_cast<float*>(kn.data()), {n, n_kv, hd});
    a.v_new = Tensor::make(DType::f32, const_cast<float*>(vn.data()), {n, n_kv, hd});
    a.cache.k = Tensor::make(dt, kc.data(), {n_blocks, bs, n_kv, hd});
    a.cache.v = Tensor::make(dt, vc.data(), {n_blocks, bs, n_kv, hd});
    a.cache.k_scale = Tensor::make(DType::f32, ks.data(), {n_blocks, bs, n_kv});
    a.cache.v_scale = Tensor::make(DType::f32, vs.data(), {n_blocks, bs, n_kv});
    a.positions = Tensor::make(DType::i32, pos.data(), {n});
    a.token_seq = Tensor::make(DType::i32, seq.data(), {n});
    a.slot_mapping = Tensor::make(DType::i32, pos.data(), {n});
    a.block_tables = Tensor::make(DType::i32, table.data(), {1, n_blocks});
    a.block_size = bs;
    a.scale = 1.0f / std::sqrt(static_cast<float>(hd));
    CpuBackend be;
    be.attention(a);
    return out;
}

TEST(CpuAttention, QuantizedCacheNearF32) {
    const int64_t n = 200, n_heads = 32, n_kv = 8, hd = 128;
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> q(static_cast<size_t>(n * n_heads * hd)), kn(static_cast<size_t>(n * n_kv * hd)), vn(kn.size());
    for (auto& v : q) v = nd(rng);
    for (auto& v : kn) v = nd(rng);
    for (auto& v : vn) v = nd(rng);
    const auto ref = prefill_outputs(DType::f32, q, kn, vn, n, n_heads, n_kv, hd);
    for (const auto& [dt, bound] : {std::pair{DType::i8, kInt8AttnRelL2}, std::pair{DType::f8_e4m3, kFp8AttnRelL2}}) {
        const auto got = prefill_outputs(dt, q, kn, vn, n, n_heads, n_kv, hd);
        double num = 0, den = 0;
        for (size_t i = 0; i < ref.size(); ++i) {
            num += (got[i] - ref[i]) * (got[i] - ref[i]);
            den += ref[i] * ref[i];
        }
        const double rel = std::sqrt(num / den);
        std::printf("%s cache: relative L2 error of the attention output %.4f\n", dt == DType::i8 ? "int8" : "fp8", rel);
        EXPECT_LE(rel, bound) << dtype_name(dt);
        EXPECT_GT(rel, 0.0) << dtype_name(dt) << ": quantization should change something";
    }
}

}  // namespace
}  // namespace hr::cpu
