// Parity of the ops the Qwen architectures added against the CPU oracle: add_bias (Qwen2's q/k/v
// bias, every plain bias dtype) and RMSNorm over [tokens * heads, head_dim] views in place (Qwen3's
// per-head q/k norm). MoE routing without renormalisation is in ops_parity_test.cpp (MoeRoute).
#include "parity_util.h"
#include "tolerances.h"

namespace hr::test {
namespace {

TEST(ArchOpsParity, AddBias) {
    HR_REQUIRE_GPU();
    for (DType bt : {DType::f32, DType::bf16, DType::f16}) {
        for (int64_t n : {1, 5, 130}) {
            for (int64_t d : {64, 67, 896, 2048}) {
                Rng rng(11 * n + d);
                const std::vector<float> x = rng.normal(static_cast<size_t>(n * d), 2.0f);
                const HostWeight b = HostWeight::random(rng, bt, 1, d, 1.0f);
                auto run = [&](Backend& be) {
                    DevWeight db = place(be, b);
                    DevTensor dx = place(be, x, DType::f32, {n, d});
                    be.add_bias(dx.t, db.w);
                    return fetch(be, dx.t);
                };
                EXPECT_TRUE(close(run(*gpu()), run(cpu_oracle()), kTolExact))
                    << dtype_name(bt) << " n " << n << " d " << d;
            }
        }
    }
}

// q [T, heads, head_dim] normalised per head in place, as the forward pass does (blocks.cpp).
TEST(ArchOpsParity, PerHeadRmsNormInPlace) {
    HR_REQUIRE_GPU();
    struct Shape { int64_t tokens, heads, head_dim; };
    for (Shape s : {Shape{1, 32, 128}, Shape{17, 4, 128}, Shape{130, 4, 16}, Shape{3, 2, 64}}) {
        for (DType wt : {DType::bf16, DType::f32}) {
            Rng rng(s.tokens * 13 + s.heads * 3 + s.head_dim);
            const int64_t rows = s.tokens * s.heads;
            const std::vector<float> q = rng.normal(static_cast<size_t>(rows * s.head_dim), 3.0f);
            const HostWeight w = HostWeight::random(rng, wt, 1, s.head_dim, 1.0f);
            auto run = [&](Backend& be) {
                DevWeight dw = place(be, w);
                DevTensor dq = place(be, q, DType::f32, {s.tokens, s.heads * s.head_dim});
                const Tensor view = dq.t.reshaped({rows, s.head_dim});
                be.rms_norm(view, view, dw.w, 1e-6f);
                return fetch(be, dq.t);
            };
            EXPECT_TRUE(close(run(*gpu()), run(cpu_oracle()), kTolReduce))
                << s.tokens << " tokens x " << s.heads << " heads x " << s.head_dim << " " << dtype_name(wt);
        }
    }
}

}  // namespace
}  // namespace hr::test
