// Parity of the CUDA paged attention against the CPU oracle: decode (one new token per sequence over a
// filled cache, split-K on the GPU) and prefill chunks (causal over the chunk and earlier cache), for
// f32/f16/bf16 caches and the quantized int8 / fp8 ones (core/kv_quant.h: the CPU oracle reads the same
// codes and scales), grouped-query shapes, odd head_dim and block sizes. The cache writes are compared
// too: a quantized cache's codes and scales must be the very bytes the CPU writes.
#include <algorithm>
#include <numeric>

#include "core/kv_quant.h"
#include "parity_util.h"
#include "tolerances.h"

namespace hr::test {
namespace {

struct AttnShape {
    int64_t n_heads, n_kv_heads, head_dim;
    int block_size;
};

std::vector<uint8_t> to_cache_bytes(const std::vector<float>& f, DType dt) {
    std::vector<uint8_t> out(f.size() * dtype_size(dt));
    for (size_t i = 0; i < f.size(); ++i) {
        if (dt == DType::f32) std::memcpy(out.data() + 4 * i, &f[i], 4);
        else {
            const uint16_t h = dt == DType::f16 ? f32_to_f16(f[i]) : f32_to_bf16(f[i]);
            std::memcpy(out.data() + 2 * i, &h, 2);
        }
    }
    return out;
}

// One batch: per token its sequence and position; sequences' earlier positions are already cached.
struct Case {
    std::vector<int32_t> token_seq, positions;
    int64_t n_seqs = 0;
    int64_t max_ctx = 0;
};

// host_runs: pass the host copy of token_seq, which lets the CUDA backend run long runs of one
// sequence (prefill chunks) on the tensor-core kernel; without it every token takes split-K.
void run_case(const AttnShape& s, DType cache_dt, const Case& c, uint64_t seed, bool host_runs = false) {
    const int64_t n = static_cast<int64_t>(c.positions.size());
    const int64_t max_blocks = (c.max_ctx + s.block_size - 1) / s.block_size;
    const int64_t n_blocks = c.n_seqs * max_blocks + 3;
    Rng rng(seed);
    // Distinct, shuffled physical blocks for each sequence.
    std::vector<int32_t> perm(static_cast<size_t>(n_blocks));
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng.gen);
    std::vector<int32_t> tables(perm.begin(), perm.begin() + c.n_seqs * max_blocks);
    std::vector<int32_t> slots(static_cast<size_t>(n));
    for (int64_t t = 0; t < n; ++t) {
        const int32_t p = c.positions[static_cast<size_t>(t)];
        const int64_t seq = c.token_seq[static_cast<size_t>(t)];
        const int32_t blk = tables[static_cast<size_t>(seq * max_blocks + p / s.block_size)];
        slots[static_cast<size_t>(t)] = blk * s.block_size + p % s.block_size;
    }
    const size_t cache_elems = static_cast<size_t>(n_blocks * s.block_size * s.n_kv_heads * s.head_dim);
    const bool quant = is_quantized_kv(cache_dt);
    const size_t cache_rows = static_cast<size_t>(n_blocks * s.block_size * s.n_kv_heads);
    std::vector<float> ks(quant ? cache_rows : 1), vs(ks.size());  // scales of a quantized cache
    auto make_cache = [&](std::vector<float>& scales) {
        const std::vector<float> f = rng.normal(cache_elems);
        if (!quant) return to_cache_bytes(f, cache_dt);
        std::vector<uint8_t> codes(cache_elems);
        for (size_t r = 0; r < cache_rows; ++r)
            kv_quantize_row(f.data() + r * static_cast<size_t>(s.head_dim), s.head_dim, cache_dt,
                            codes.data() + r * static_cast<size_t>(s.head_dim), &scales[r]);
        return codes;
    };
    const auto kc = make_cache(ks);
    const auto vc = make_cache(vs);
    const auto q = rng.normal(static_cast<size_t>(n * s.n_heads * s.head_dim));
    const auto k = rng.normal(static_cast<size_t>(n * s.n_kv_heads * s.head_dim));
    const auto v = rng.normal(static_cast<size_t>(n * s.n_kv_heads * s.head_dim));

    auto run = [&](Backend& be, std::vector<float>& cache_after) {
        DevTensor dq = place(be, q, DType::f32, {n, s.n_heads, s.head_dim});
        DevTensor dk = place(be, k, DType::f32, {n, s.n_kv_heads, s.head_dim});
        DevTensor dv = place(be, v, DType::f32, {n, s.n_kv_heads, s.head_dim});
        DevBuf dkc(be, kc.data(), kc.size());
        DevBuf dvc(be, vc.data(), vc.size());
        DevBuf dks(be, ks.data(), ks.size() * sizeof(float));
        DevBuf dvs(be, vs.data(), vs.size() * sizeof(float));
        const std::initializer_list<int64_t> cshape{n_blocks, s.block_size, s.n_kv_heads, s.head_dim};
        DevTensor pos = place(be, c.positions, DType::i32, {n});
        DevTensor seq = place(be, c.token_seq, DType::i32, {n});
        DevTensor sl = place(be, slots, DType::i32, {n});
        DevTensor bt = place(be, tables, DType::i32, {c.n_seqs, max_blocks});
        DevTensor out = poisoned(be, {n, s.n_heads * s.head_dim});
        AttentionArgs a;
        a.out = out.t;
        a.q = dq.t;
        a.k_new = dk.t;
        a.v_new = dv.t;
        a.cache.k = Tensor::make(cache_dt, dkc.get(), cshape);
        a.cache.v = Tensor::make(cache_dt, dvc.get(), cshape);
        if (quant) {
            a.cache.k_scale = Tensor::make(DType::f32, dks.get(), {n_blocks, s.block_size, s.n_kv_heads});
            a.cache.v_scale = Tensor::make(DType::f32, dvs.get(), {n_blocks, s.block_size, s.n_kv_heads});
        }
        a.positions = pos.t;
        a.token_seq = seq.t;
        a.slot_mapping = sl.t;
        a.block_tables = bt.t;
        a.block_size = s.block_size;
        a.scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
        if (host_runs) a.token_seq_host = c.token_seq;
        const uint64_t allocs = be.allocation_count();
        be.attention(a);
        EXPECT_EQ(be.allocation_count(), allocs);
        // The written cache, as f32, for both K and V.
        std::vector<uint8_t> kb(kc.size()), vb(vc.size());
        be.synchronize();
        be.download(kb.data(), dkc.get(), kb.size());
        be.download(vb.data(), dvc.get(), vb.size());
        cache_after.clear();
        if (quant) {
            // The codes and the scales themselves, bit for bit (as floats: codes 0..255, then the scales).
            std::vector<float> ksb(ks.size()), vsb(vs.size());
            be.download(ksb.data(), dks.get(), ksb.size() * sizeof(float));
            be.download(vsb.data(), dvs.get(), vsb.size() * sizeof(float));
            for (const auto* bytes : {&kb, &vb})
                for (uint8_t b : *bytes) cache_after.push_back(static_cast<float>(b));
            cache_after.insert(cache_after.end(), ksb.begin(), ksb.end());
            cache_after.insert(cache_after.end(), vsb.begin(), vsb.end());
            return fetch(be, out.t);
        }
        for (const auto* bytes : {&kb, &vb}) {
            for (size_t i = 0; i < cache_elems; ++i) {
                float f;
                if (cache_dt == DType::f32) std::memcpy(&f, bytes->data() + 4 * i, 4);
                else {
                    uint16_t h;
                    std::memcpy(&h, bytes->data() + 2 * i, 2);
                    f = cache_dt == DType::f16 ? f16_to_f32(h) : bf16_to_f32(h);
                }
                cache_after.push_back(f);
            }
        }
        return fetch(be, out.t);
    };
    std::vector<float> gcache, ccache;
    const auto got = run(*gpu(), gcache);
    const auto ref = run(cpu_oracle(), ccache);
    // The tensor-core kernel (f16/bf16 caches, head_dim 64/128/256) rounds Q and P to the cache dtype
    // (a quantized cache: to f16, and its decoded keys and values too).
    const bool tensor_cores = host_runs && cache_dt != DType::f32 &&
                              (s.head_dim == 64 || s.head_dim == 128 || s.head_dim == 256);
    EXPECT_TRUE(close(got, ref, tensor_cores ? kTolAttentionTensorCore : kTolAttention))
        << (host_runs ? "host runs, " : "") << s.n_heads << "/" << s.n_kv_heads << " heads x " << s.head_dim << ", block " << s.block_size << ", cache "
        << dtype_name(cache_dt) << ", " << n << " tokens";
    if (quant) EXPECT_EQ(gcache, ccache) << "quantized cache codes and scales after the write (bit-exact)";
    else EXPECT_TRUE(close(gcache, ccache, kTolExact)) << "cache contents after the write";
}

class AttentionParity : public ::testing::TestWithParam<DType> {};

// Mixtral's shape first; then small, odd, wide and many-heads-per-kv shapes; the last two take the
// grouped decode kernel with 8 heads per kv head and with one.
const AttnShape kShapes[] = {{32, 8, 128, 16}, {4, 2, 16, 16}, {6, 3, 20, 7},  {8, 8, 256, 16},
                             {12, 1, 64, 5},   {16, 2, 64, 16}, {4, 4, 128, 8}};

TEST_P(AttentionParity, Decode) {
    HR_REQUIRE_GPU();
    for (const AttnShape& s : kShapes) {
        Case c;
        c.n_seqs = 3;
        c.token_seq = {0, 1, 2};
        c.positions = {0, 16, 998};  // contexts of 1, 17 and 999 tokens
        c.max_ctx = 1000;
        run_case(s, GetParam(), c, static_cast<uint64_t>(s.head_dim * 10 + s.block_size));
    }
}

TEST_P(AttentionParity, PrefillChunks) {
    HR_REQUIRE_GPU();
    for (const AttnShape& s : kShapes) {
        // Sequence 0: a 37-token prompt from position 0; sequence 1: a 20-token chunk after 50 cached
        // tokens; sequence 2: one decode token, all in one step.
        Case c;
        c.n_seqs = 3;
        for (int32_t p = 0; p < 37; ++p) {
            c.token_seq.push_back(0);
            c.positions.push_back(p);
        }
        for (int32_t p = 50; p < 70; ++p) {
            c.token_seq.push_back(1);
            c.positions.push_back(p);
        }
        c.token_seq.push_back(2);
        c.positions.push_back(11);
        c.max_ctx = 80;
        run_case(s, GetParam(), c, static_cast<uint64_t>(s.head_dim * 17 + s.block_size));
        run_case(s, GetParam(), c, static_cast<uint64_t>(s.head_dim * 17 + s.block_size), true);
    }
}

TEST_P(AttentionParity, LongPrefill) {
    HR_REQUIRE_GPU();
    const AttnShape s{32, 8, 128, 16};
    Case c;
    c.n_seqs = 1;
    for (int32_t p = 0; p < 300; ++p) {
        c.token_seq.push_back(0);
        c.positions.push_back(p);
    }
    c.max_ctx = 512;
    run_case(s, GetParam(), c, 99);
    run_case(s, GetParam(), c, 99, true);
}

// Decode tokens interleaved with chunks, and a chunk longer than one 64-key tile after a cached prefix
// that is not tile-aligned: segments alternate between the two kernels.
TEST_P(AttentionParity, MixedRuns) {
    HR_REQUIRE_GPU();
    for (const AttnShape& s : {AttnShape{32, 8, 128, 16}, AttnShape{12, 1, 64, 5}, AttnShape{8, 8, 256, 16}}) {
        Case c;
        c.n_seqs = 4;
        auto run_of = [&](int32_t seq, int32_t from, int32_t count) {
            for (int32_t p = from; p < from + count; ++p) {
                c.token_seq.push_back(seq);
                c.positions.push_back(p);
            }
        };
        run_of(0, 200, 1);   // decode
        run_of(1, 0, 130);   // a prompt over three key tiles
        run_of(2, 37, 1);    // decode
        run_of(3, 91, 45);   // a chunk after 91 cached tokens
        run_of(0, 300, 1);   // the same sequence as row 0, another position (a speculative-style batch)
        c.max_ctx = 320;
        run_case(s, GetParam(), c, 7 + static_cast<uint64_t>(s.head_dim), true);
    }
}

INSTANTIATE_TEST_SUITE_P(CacheTypes, AttentionParity,
                         ::testing::Values(DType::f32, DType::f16, DType::bf16, DType::i8, DType::f8_e4m3),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace hr::test
