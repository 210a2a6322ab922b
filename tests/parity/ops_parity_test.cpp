// Parity of the CUDA backend's small ops against the CPU oracle: embedding (every weight format),
// RMSNorm, rotary embedding, SwiGLU, residual add, row gather, MoE routing; odd sizes included.
#include "parity_util.h"
#include "tolerances.h"

namespace hr::test {
namespace {

const DType kWeightTypes[] = {DType::f32, DType::f16, DType::bf16, DType::q8, DType::q4};

// The CPU backend embeds float tables only; quantized tables are checked against the format's
// reference dequantization (quant/quantize.h), which is their definition.
std::vector<float> reference_embed(const HostWeight& table, const std::vector<int32_t>& ids) {
    std::vector<float> out;
    std::vector<float> full(static_cast<size_t>(table.rows * table.cols));
    Status st = quant::dequantize_matrix(table.dtype, table.data.data(), table.scales.data(), table.rows, table.cols,
                                         full.data());
    HR_CHECK_MSG(st.ok(), st.ok() ? "" : st.error().message);
    for (int32_t id : ids)
        out.insert(out.end(), full.begin() + id * table.cols, full.begin() + (id + 1) * table.cols);
    return out;
}

TEST(OpsParity, EmbedEveryFormat) {
    HR_REQUIRE_GPU();
    for (DType dt : kWeightTypes) {
        for (int64_t dim : {64, 67, 4096}) {
            Rng rng(17 + dim);
            const int64_t vocab = 301, n = 9;
            const HostWeight table = HostWeight::random(rng, dt, vocab, dim, 1.0f);
            const std::vector<int32_t> ids = rng.ints(n, 0, static_cast<int32_t>(vocab - 1));
            auto run = [&](Backend& be) {
                DevWeight w = place(be, table);
                DevTensor i = place(be, ids, DType::i32, {n});
                DevTensor out = poisoned(be, {n, dim});
                be.embed(out.t, i.t, w.w);
                return fetch(be, out.t);
            };
            const bool quantized = dt == DType::q8 || dt == DType::q4;
            const auto ref = quantized ? reference_embed(table, ids) : run(cpu_oracle());
            EXPECT_TRUE(close(run(*gpu()), ref, kTolExact)) << dtype_name(dt) << " dim " << dim;
        }
    }
}

TEST(OpsParity, RmsNorm) {
    HR_REQUIRE_GPU();
    for (DType wt : {DType::f32, DType::bf16, DType::f16}) {
        for (int64_t n : {1, 3, 130}) {
            for (int64_t dim : {64, 65, 4096}) {
                Rng rng(5 * n + dim);
                const std::vector<float> x = rng.normal(static_cast<size_t>(n * dim), 3.0f);
                const HostWeight w = HostWeight::random(rng, wt, 1, dim, 1.0f);
                auto run = [&](Backend& be, bool in_place) {
                    DevWeight dw = place(be, w);
                    DevTensor in = place(be, x, DType::f32, {n, dim});
                    DevTensor out = poisoned(be, {n, dim});
                    const Tensor& o = in_place ? in.t : out.t;
                    be.rms_norm(o, in.t, dw.w, 1e-5f);
                    return fetch(be, o);
                };
                const auto ref = run(cpu_oracle(), false);
                EXPECT_TRUE(close(run(*gpu(), false), ref, kTolReduce)) << n << "x" << dim;
                EXPECT_TRUE(close(run(*gpu(), true), ref, kTolReduce)) << n << "x" << dim << " in place";
            }
        }
    }
}

// The fused residual add + norm: both the updated residual and the normalised rows.
TEST(OpsParity, AddRmsNorm) {
    HR_REQUIRE_GPU();
    for (int64_t n : {1, 3, 130}) {
        for (int64_t dim : {64, 65, 4096}) {
            Rng rng(7 * n + dim);
            const std::vector<float> x = rng.normal(static_cast<size_t>(n * dim), 3.0f);
            const std::vector<float> y = rng.normal(static_cast<size_t>(n * dim), 1.0f);
            const HostWeight w = HostWeight::random(rng, DType::bf16, 1, dim, 1.0f);
            auto run = [&](Backend& be) {
                DevWeight dw = place(be, w);
                DevTensor dx = place(be, x, DType::f32, {n, dim});
                DevTensor dy = place(be, y, DType::f32, {n, dim});
                DevTensor out = poisoned(be, {n, dim});
                be.add_rms_norm(out.t, dx.t, dy.t, dw.w, 1e-5f);
                auto r = fetch(be, out.t);
                const auto xs = fetch(be, dx.t);
                r.insert(r.end(), xs.begin(), xs.end());
                return r;
            };
            EXPECT_TRUE(close(run(*gpu()), run(cpu_oracle()), kTolReduce)) << n << "x" << dim;
        }
    }
}

TEST(OpsParity, Rope) {
    HR_REQUIRE_GPU();
    struct Shape { int64_t n, hq, hk, hd; };
    for (Shape s : {Shape{1, 32, 8, 128}, Shape{7, 4, 2, 16}, Shape{33, 6, 2, 10}}) {
        for (float theta : {1e4f, 1e6f}) {
            Rng rng(s.n * 131 + s.hd);
            const auto q = rng.normal(static_cast<size_t>(s.n * s.hq * s.hd));
            const auto k = rng.normal(static_cast<size_t>(s.n * s.hk * s.hd));
            const auto pos = rng.ints(static_cast<size_t>(s.n), 0, 4095);
            auto run = [&](Backend& be) {
                DevTensor dq = place(be, q, DType::f32, {s.n, s.hq, s.hd});
                DevTensor dk = place(be, k, DType::f32, {s.n, s.hk, s.hd});
                DevTensor dp = place(be, pos, DType::i32, {s.n});
                be.rope(dq.t, dk.t, dp.t, theta);
                auto a = fetch(be, dq.t);
                auto b = fetch(be, dk.t);
                a.insert(a.end(), b.begin(), b.end());
                return a;
            };
            EXPECT_TRUE(close(run(*gpu()), run(cpu_oracle()), kTolRope)) << s.n << " tokens, head_dim " << s.hd;
        }
    }
}

TEST(OpsParity, SiluMulAddGather) {
    HR_REQUIRE_GPU();
    for (int64_t n : {1, 5, 257}) {
        const int64_t d = 1000 + n;
        Rng rng(n);
        const auto g = rng.normal(static_cast<size_t>(n * d), 4.0f);
        const auto u = rng.normal(static_cast<size_t>(n * d));
        const auto rows = rng.ints(3, 0, static_cast<int32_t>(n - 1));
        auto silu = [&](Backend& be) {
            DevTensor a = place(be, g, DType::f32, {n, d});
            DevTensor b = place(be, u, DType::f32, {n, d});
            DevTensor o = poisoned(be, {n, d});
            be.silu_mul(o.t, a.t, b.t);
            return fetch(be, o.t);
        };
        EXPECT_TRUE(close(silu(*gpu()), silu(cpu_oracle()), kTolElementwise)) << "silu_mul n " << n;
        auto add = [&](Backend& be) {
            DevTensor a = place(be, g, DType::f32, {n, d});
            DevTensor b = place(be, u, DType::f32, {n, d});
            be.add(a.t, b.t);
            return fetch(be, a.t);
        };
        EXPECT_TRUE(close(add(*gpu()), add(cpu_oracle()), kTolElementwise)) << "add n " << n;
        auto gather = [&](Backend& be) {
            DevTensor a = place(be, g, DType::f32, {n, d});
            DevTensor r = place(be, rows, DType::i32, {3});
            DevTensor o = poisoned(be, {3, d});
            be.gather_rows(o.t, a.t, r.t);
            return fetch(be, o.t);
        };
        EXPECT_TRUE(close(gather(*gpu()), gather(cpu_oracle()), kTolExact)) << "gather n " << n;
    }
}

TEST(OpsParity, MoeRoute) {
    HR_REQUIRE_GPU();
    struct Shape { int64_t n, e, k; };
    for (Shape s : {Shape{1, 8, 2}, Shape{37, 8, 2}, Shape{5, 4, 2}, Shape{9, 60, 4}, Shape{3, 3, 3}, Shape{7, 128, 8}})
    for (bool renorm : {true, false}) {  // Mixtral / Qwen3-MoE norm_topk_prob, and Qwen3-MoE without it
        Rng rng(s.n * 7 + s.e);
        const auto logits = rng.normal(static_cast<size_t>(s.n * s.e), 2.0f);
        auto run = [&](Backend& be, std::vector<int32_t>& ids) {
            DevTensor lg = place(be, logits, DType::f32, {s.n, s.e});
            DevTensor di = place(be, std::vector<int32_t>(static_cast<size_t>(s.n * s.k), -7), DType::i32, {s.n, s.k});
            DevTensor dw = poisoned(be, {s.n, s.k});
            be.moe_route(di.t, dw.t, lg.t, renorm);
            ids = fetch<int32_t>(be, di.t);
            return fetch(be, dw.t);
        };
        std::vector<int32_t> gids, cids;
        const auto gw = run(*gpu(), gids);
        const auto cw = run(cpu_oracle(), cids);
        EXPECT_EQ(gids, cids) << s.n << " tokens, " << s.e << " experts, top-" << s.k << " renorm " << renorm;
        EXPECT_TRUE(close(gw, cw, kTolReduce)) << "renorm " << renorm;
    }
}

}  // namespace
}  // namespace hr::test
