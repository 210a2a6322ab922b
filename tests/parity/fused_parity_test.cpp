// Parity of the fused decode kernels of issue 15 (CudaOptions::fused_decode_attention, fused_router; the
// main parity backend gpu() has them on, gpu_no_gemv_tc() off) against the CPU backend ops they replace:
// - rope_attention: rotary + cache write + split-K + combine in one launch, against the CPU's rope then
//   attention, at contexts 1, 17, 512 and 4096, for every cache type (int8 / fp8 included), op by op and
//   replayed from a captured graph (twice: the split counters must be back at 0 after each launch). The
//   cache rows it writes must be the very bytes the unfused GPU path writes (the same rotary arithmetic,
//   rope.cuh), and close to the CPU's;
// - add_rms_norm_route: residual add + RMSNorm + router GEMV + top-k in one kernel, against the CPU's
//   add_rms_norm, matmul and moe_route, op by op and from a captured graph.
#include <fmt/format.h>
#include <fmt/ranges.h>

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

constexpr float kTheta = 1e6f;  // Mixtral's rope_theta

// The cache as f32 values (float caches) or as codes then scales (quantized), for comparisons.
struct CacheBytes {
    std::vector<uint8_t> k, v;
    std::vector<float> ks, vs;
};

std::vector<float> cache_values(const CacheBytes& c, DType dt) {
    std::vector<float> out;
    if (is_quantized_kv(dt)) {
        // Codes compared as decoded values times their scale, so a code one step off weighs little.
        const size_t D = c.k.size() / c.ks.size();
        for (const auto* pair : {&c.k, &c.v}) {
            const std::vector<float>& sc = pair == &c.k ? c.ks : c.vs;
            for (size_t i = 0; i < pair->size(); ++i) {
                const uint8_t b = (*pair)[i];
                out.push_back(kv_decode(b, dt) * sc[i / D]);
            }
        }
        return out;
    }
    for (const auto* bytes : {&c.k, &c.v}) {
        const size_t n = bytes->size() / dtype_size(dt);
        for (size_t i = 0; i < n; ++i) {
            float f;
            if (dt == DType::f32) std::memcpy(&f, bytes->data() + 4 * i, 4);
            else {
                uint16_t h;
                std::memcpy(&h, bytes->data() + 2 * i, 2);
                f = dt == DType::f16 ? f16_to_f32(h) : bf16_to_f32(h);
            }
            out.push_back(f);
        }
    }
    return out;
}

enum class Mode { ops, graph };

// One decode step: token i is sequence i's only token, at position ctxs[i] - 1, over a filled cache.
void run_decode(const AttnShape& s, DType dt, const std::vector<int32_t>& ctxs, uint64_t seed) {
    const int64_t n = static_cast<int64_t>(ctxs.size());
    const int64_t max_ctx = *std::max_element(ctxs.begin(), ctxs.end());
    const int64_t max_blocks = (max_ctx + s.block_size - 1) / s.block_size;
    const int64_t n_blocks = n * max_blocks + 3;
    Rng rng(seed);
    std::vector<int32_t> perm(static_cast<size_t>(n_blocks));
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng.gen);
    const std::vector<int32_t> tables(perm.begin(), perm.begin() + n * max_blocks);
    std::vector<int32_t> positions(static_cast<size_t>(n)), seqs(static_cast<size_t>(n)), slots(static_cast<size_t>(n));
    for (int64_t t = 0; t < n; ++t) {
        const int32_t p = ctxs[static_cast<size_t>(t)] - 1;
        positions[static_cast<size_t>(t)] = p;
        seqs[static_cast<size_t>(t)] = static_cast<int32_t>(t);
        slots[static_cast<size_t>(t)] =
            tables[static_cast<size_t>(t * max_blocks + p / s.block_size)] * s.block_size + p % s.block_size;
    }
    const bool quant = is_quantized_kv(dt);
    const size_t rows = static_cast<size_t>(n_blocks * s.block_size * s.n_kv_heads);
    const size_t elems = rows * static_cast<size_t>(s.head_dim);
    CacheBytes init;
    init.ks.assign(quant ? rows : 0, 0.0f);
    init.vs.assign(init.ks.size(), 0.0f);
    auto make = [&](std::vector<uint8_t>& bytes, std::vector<float>& scales) {
        const std::vector<float> f = rng.normal(elems);
        bytes.resize(elems * dtype_size(dt));
        for (size_t r = 0; r < rows; ++r) {
            const float* x = f.data() + r * static_cast<size_t>(s.head_dim);
            if (quant) {
                kv_quantize_row(x, s.head_dim, dt, bytes.data() + r * static_cast<size_t>(s.head_dim), &scales[r]);
                continue;
            }
            for (int64_t d = 0; d < s.head_dim; ++d) {
                const size_t i = r * static_cast<size_t>(s.head_dim) + static_cast<size_t>(d);
                if (dt == DType::f32) std::memcpy(bytes.data() + 4 * i, &x[d], 4);
                else {
                    const uint16_t h = dt == DType::f16 ? f32_to_f16(x[d]) : f32_to_bf16(x[d]);
                    std::memcpy(bytes.data() + 2 * i, &h, 2);
                }
            }
        }
    };
    make(init.k, init.ks);
    make(init.v, init.vs);
    const auto q = rng.normal(static_cast<size_t>(n * s.n_heads * s.head_dim));
    const auto k = rng.normal(static_cast<size_t>(n * s.n_kv_heads * s.head_dim));
    const auto v = rng.normal(static_cast<size_t>(n * s.n_kv_heads * s.head_dim));

    auto run = [&](Backend& be, Mode mode, CacheBytes& after) {
        DevTensor dq = place(be, q, DType::f32, {n, s.n_heads, s.head_dim});
        DevTensor dk = place(be, k, DType::f32, {n, s.n_kv_heads, s.head_dim});
        DevTensor dv = place(be, v, DType::f32, {n, s.n_kv_heads, s.head_dim});
        DevBuf dkc(be, init.k.data(), init.k.size());
        DevBuf dvc(be, init.v.data(), init.v.size());
        DevBuf dks(be, init.ks.data(), init.ks.size() * sizeof(float));
        DevBuf dvs(be, init.vs.data(), init.vs.size() * sizeof(float));
        const std::initializer_list<int64_t> cshape{n_blocks, s.block_size, s.n_kv_heads, s.head_dim};
        DevTensor pos = place(be, positions, DType::i32, {n});
        DevTensor seq = place(be, seqs, DType::i32, {n});
        DevTensor sl = place(be, slots, DType::i32, {n});
        DevTensor bt = place(be, tables, DType::i32, {n, max_blocks});
        DevTensor out = poisoned(be, {n, s.n_heads * s.head_dim});
        AttentionArgs a;
        a.out = out.t;
        a.q = dq.t;
        a.k_new = dk.t;
        a.v_new = dv.t;
        a.cache.k = Tensor::make(dt, dkc.get(), cshape);
        a.cache.v = Tensor::make(dt, dvc.get(), cshape);
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
        a.token_seq_host = seqs;
        if (mode == Mode::graph) {
            auto* cb = dynamic_cast<cuda::CudaBackend*>(&be);
            HR_CHECK(cb != nullptr);
            auto id = cb->capture_graph([&] { be.rope_attention(a, kTheta); });
            HR_CHECK_MSG(id.ok(), id.ok() ? "" : id.error().message);
            // Twice: the fused op leaves q and k_new unrotated, so a replay repeats the same step exactly,
            // and the second launch finds the split counters the first one left at 0.
            cb->launch_graph(*id);
            cb->launch_graph(*id);
        } else {
            be.rope_attention(a, kTheta);
        }
        be.synchronize();
        after.k.resize(init.k.size());
        after.v.resize(init.v.size());
        after.ks.resize(init.ks.size());
        after.vs.resize(init.vs.size());
        be.download(after.k.data(), dkc.get(), after.k.size());
        be.download(after.v.data(), dvc.get(), after.v.size());
        if (quant) {
            be.download(after.ks.data(), dks.get(), after.ks.size() * sizeof(float));
            be.download(after.vs.data(), dvs.get(), after.vs.size() * sizeof(float));
        }
        return fetch(be, out.t);
    };
    const std::string what = fmt::format("{}/{} heads x {}, block {}, cache {}, contexts {}", s.n_heads, s.n_kv_heads,
                                         s.head_dim, s.block_size, dtype_name(dt), fmt::join(ctxs, ","));
    CacheBytes c_ref, c_unfused;
    const auto ref = run(cpu_oracle(), Mode::ops, c_ref);
    ASSERT_NE(gpu_no_gemv_tc(), nullptr);
    ASSERT_FALSE(gpu_no_gemv_tc()->options().fused_decode_attention);
    const auto unfused = run(*gpu_no_gemv_tc(), Mode::ops, c_unfused);
    EXPECT_TRUE(close(unfused, ref, kTolAttention)) << "unfused GPU, " << what;
    for (Mode mode : {Mode::ops, Mode::graph}) {
        const char* m = mode == Mode::ops ? "op" : "graph";
        const uint64_t before = gpu()->fused_attention_calls();
        CacheBytes c_fused;
        const auto got = run(*gpu(), mode, c_fused);
        EXPECT_EQ(gpu()->fused_attention_calls(), before + 1) << "the fused kernel ran (" << m << "), " << what;
        EXPECT_TRUE(close(got, ref, kTolAttention)) << m << ", " << what;
        EXPECT_TRUE(close(got, unfused, kTolAttention)) << m << " vs the unfused GPU path, " << what;
        // The written rows: the very bytes of the unfused GPU path, and close to the CPU's.
        EXPECT_TRUE(c_fused.k == c_unfused.k && c_fused.v == c_unfused.v && c_fused.ks == c_unfused.ks &&
                    c_fused.vs == c_unfused.vs)
            << m << ": cache after the write differs from the unfused GPU path, " << what;
        EXPECT_TRUE(close(cache_values(c_fused, dt), cache_values(c_ref, dt), kTolRope))
            << m << ": cache after the write vs the CPU, " << what;
    }
}

class FusedAttentionParity : public ::testing::TestWithParam<DType> {};

// Mixtral's shape; one query head per kv head; eight (head_dim 64); four with an odd block size.
const AttnShape kFusedShapes[] = {{32, 8, 128, 16}, {8, 8, 128, 8}, {16, 2, 64, 16}, {8, 2, 64, 5}};

TEST_P(FusedAttentionParity, DecodeContexts) {
    HR_REQUIRE_GPU();
    ASSERT_TRUE(gpu()->options().fused_decode_attention) << "candidate_options() must turn the fusion on";
    for (const AttnShape& s : kFusedShapes) {
        // Four sequences in one step, then one token alone (the most splits per token).
        run_decode(s, GetParam(), {1, 17, 512, 4096}, static_cast<uint64_t>(s.head_dim + s.block_size));
        run_decode(s, GetParam(), {4096}, static_cast<uint64_t>(3 * s.head_dim + s.block_size));
        run_decode(s, GetParam(), {17}, static_cast<uint64_t>(5 * s.head_dim + s.block_size));
    }
}

INSTANTIATE_TEST_SUITE_P(CacheTypes, FusedAttentionParity,
                         ::testing::Values(DType::f32, DType::f16, DType::bf16, DType::i8, DType::f8_e4m3),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

// add_rms_norm_route against add_rms_norm + matmul + moe_route on the CPU.
struct RouteShape {
    int64_t n, dim, experts, k;
    DType router;
};

void run_route(const RouteShape& s, bool renorm, Mode mode) {
    Rng rng(static_cast<uint64_t>(s.n * 131 + s.dim + s.experts));
    const auto x0 = rng.normal(static_cast<size_t>(s.n * s.dim));
    const auto y = rng.normal(static_cast<size_t>(s.n * s.dim));
    const auto nw = rng.normal(static_cast<size_t>(s.dim), 0.2f);
    std::vector<float> norm_w(nw.size());
    for (size_t i = 0; i < nw.size(); ++i) norm_w[i] = 1.0f + nw[i];
    const HostWeight router = HostWeight::random(rng, s.router, s.experts, s.dim, 1.0f / std::sqrt(static_cast<float>(s.dim)));
    struct Got {
        std::vector<float> x, out, logits, w;
        std::vector<int32_t> ids;
    };
    auto run = [&](Backend& be) {
        DevTensor dx = place(be, x0, DType::f32, {s.n, s.dim});
        DevTensor dy = place(be, y, DType::f32, {s.n, s.dim});
        DevTensor dnw = place(be, norm_w, DType::f32, {1, s.dim});
        const Weight nwt{DType::f32, 1, s.dim, dnw.buf.get(), nullptr};
        DevWeight dr = place(be, router);
        DevTensor out = poisoned(be, {s.n, s.dim});
        DevTensor lg = poisoned(be, {s.n, s.experts});
        DevTensor ids = place(be, std::vector<int32_t>(static_cast<size_t>(s.n * s.k), -7), DType::i32, {s.n, s.k});
        DevTensor w = poisoned(be, {s.n, s.k});
        RouteArgs r;
        r.topk_ids = ids.t;
        r.topk_w = w.t;
        r.router_logits = lg.t;
        r.router = &dr.w;
        r.renormalize = renorm;
        if (mode == Mode::graph && be.kind() == DeviceKind::cuda) {
            auto* cb = dynamic_cast<cuda::CudaBackend*>(&be);
            HR_CHECK(cb != nullptr);
            auto id = cb->capture_graph([&] { be.add_rms_norm_route(out.t, dx.t, dy.t, nwt, 1e-5f, r); });
            HR_CHECK_MSG(id.ok(), id.ok() ? "" : id.error().message);
            cb->launch_graph(*id);  // once: x += y is not idempotent
        } else {
            be.add_rms_norm_route(out.t, dx.t, dy.t, nwt, 1e-5f, r);
        }
        Got g;
        g.x = fetch(be, dx.t);
        g.out = fetch(be, out.t);
        g.logits = fetch(be, lg.t);
        g.w = fetch(be, w.t);
        g.ids = fetch<int32_t>(be, ids.t);
        return g;
    };
    const std::string what = fmt::format("{} tokens, dim {}, {} experts, top-{}, router {}, renorm {}, {}", s.n, s.dim,
                                         s.experts, s.k, dtype_name(s.router), renorm,
                                         mode == Mode::ops ? "op" : "graph");
    const uint64_t before = gpu()->fused_route_calls();
    const Got got = run(*gpu());
    EXPECT_EQ(gpu()->fused_route_calls(), before + 1) << "the fused kernel ran, " << what;
    const Got ref = run(cpu_oracle());
    EXPECT_TRUE(close(got.x, ref.x, kTolExact)) << "x += y, " << what;
    EXPECT_TRUE(close(got.out, ref.out, kTolReduce)) << "norm, " << what;
    EXPECT_TRUE(close(got.logits, ref.logits, kTolReduce)) << "router logits, " << what;
    EXPECT_EQ(got.ids, ref.ids) << what;
    EXPECT_TRUE(close(got.w, ref.w, kTolReduce)) << "routing weights, " << what;
}

TEST(FusedRouteParity, AddNormRouterTopK) {
    HR_REQUIRE_GPU();
    ASSERT_TRUE(gpu()->options().fused_router) << "candidate_options() must turn the fusion on";
    // Mixtral (one decode token, a batch, a prefill-sized row count), Qwen3-MoE-like wide routing, odd sizes.
    const RouteShape shapes[] = {{1, 4096, 8, 2, DType::bf16},  {8, 4096, 8, 2, DType::f32},
                                 {300, 4096, 8, 2, DType::bf16}, {5, 2048, 128, 8, DType::f16},
                                 {3, 1000, 60, 4, DType::f32},   {2, 96, 3, 3, DType::bf16}};
    for (const RouteShape& s : shapes)
        for (bool renorm : {true, false})
            for (Mode mode : {Mode::ops, Mode::graph}) run_route(s, renorm, mode);
}

}  // namespace
}  // namespace hr::test
