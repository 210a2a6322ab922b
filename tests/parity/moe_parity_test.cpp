// Parity of the CUDA MoE expert computation against the CPU oracle: the decode path (GEMV over the
// selected (token, expert) pairs, ids read on the device) and the prefill path (pairs grouped by
// expert, one cuBLAS GEMM per expert), for every weight format.
#include <algorithm>
#include <numeric>

#include "parity_util.h"
#include "tolerances.h"

namespace hr::test {
namespace {

struct MoeShape {
    int64_t n_experts, k, dim, ffn;
};

class MoeParity : public ::testing::TestWithParam<DType> {};

TEST_P(MoeParity, MatchesCpu) {
    HR_REQUIRE_GPU();
    const DType dt = GetParam();
    const int64_t gemv_max = gpu()->options().gemv_max_tokens;
    const int64_t grouped_max = gpu()->options().grouped_max_tokens;
    // {8, 2, 384, 1408}: int4 w1/w3 in 3 scale groups (fewer than the tensor-core GEMV's 8 warps), w2 in
    // 11 (unevenly shared among them); {4, 1, 256, 512}: top-1 (the combine kernel with one expert).
    for (cuda::CudaBackend* be_gpu : gpus()) {
        for (MoeShape s : {MoeShape{8, 2, 256, 512}, MoeShape{4, 2, 64, 96}, MoeShape{5, 3, 67, 45},
                           MoeShape{8, 2, 1024, 3584}, MoeShape{8, 2, 384, 1408}, MoeShape{4, 1, 256, 512}}) {
            // 1, 2: a GEMV per (token, expert) pair; 3 .. grouped_max: pairs grouped by expert (f32 GEMVs);
            // above: cuBLAS. Shapes whose rows are not whole 16-byte chunks take the pair GEMVs up to gemv_max
            // tokens and cuBLAS above.
            for (int64_t n : {int64_t{1}, int64_t{2}, int64_t{3}, gemv_max, int64_t{24}, grouped_max + 36}) {
                Rng rng(static_cast<uint64_t>(s.dim * 31 + s.ffn + n));
                std::vector<HostWeight> w1, w3, w2;
                for (int64_t e = 0; e < s.n_experts; ++e) {
                    w1.push_back(HostWeight::random(rng, dt, s.ffn, s.dim, 1.0f / std::sqrt(float(s.dim))));
                    w3.push_back(HostWeight::random(rng, dt, s.ffn, s.dim, 1.0f / std::sqrt(float(s.dim))));
                    w2.push_back(HostWeight::random(rng, dt, s.dim, s.ffn, 1.0f / std::sqrt(float(s.ffn))));
                }
                const auto x = rng.normal(static_cast<size_t>(n * s.dim));
                // Distinct experts per token, positive weights summing to 1.
                std::vector<int32_t> ids;
                std::vector<float> wts;
                for (int64_t t = 0; t < n; ++t) {
                    std::vector<int32_t> order(static_cast<size_t>(s.n_experts));
                    std::iota(order.begin(), order.end(), 0);
                    std::shuffle(order.begin(), order.end(), rng.gen);
                    float sum = 0.0f;
                    std::vector<float> raw;
                    for (int64_t j = 0; j < s.k; ++j) {
                        raw.push_back(0.1f + std::abs(rng.normal(1)[0]));
                        sum += raw.back();
                    }
                    for (int64_t j = 0; j < s.k; ++j) {
                        ids.push_back(order[static_cast<size_t>(j)]);
                        wts.push_back(raw[static_cast<size_t>(j)] / sum);
                    }
                }
                auto run = [&](Backend& be) {
                    std::vector<DevWeight> d1, d3, d2;
                    std::vector<Weight> v1, v3, v2;
                    for (int64_t e = 0; e < s.n_experts; ++e) {
                        d1.push_back(place(be, w1[static_cast<size_t>(e)]));
                        d3.push_back(place(be, w3[static_cast<size_t>(e)]));
                        d2.push_back(place(be, w2[static_cast<size_t>(e)]));
                    }
                    for (int64_t e = 0; e < s.n_experts; ++e) {
                        v1.push_back(d1[static_cast<size_t>(e)].w);
                        v3.push_back(d3[static_cast<size_t>(e)].w);
                        v2.push_back(d2[static_cast<size_t>(e)].w);
                    }
                    const int64_t nk = n * s.k;
                    DevTensor in = place(be, x, DType::f32, {n, s.dim});
                    DevTensor di = place(be, ids, DType::i32, {n, s.k});
                    DevTensor dw = place(be, wts, DType::f32, {n, s.k});
                    DevTensor out = poisoned(be, {n, s.dim});
                    DevTensor ws_in = poisoned(be, {nk, s.dim});
                    DevTensor ws_gate = poisoned(be, {nk, s.ffn});
                    DevTensor ws_up = poisoned(be, {nk, s.ffn});
                    DevTensor ws_out = poisoned(be, {nk, s.dim});
                    MoeArgs a;
                    a.out = out.t;
                    a.in = in.t;
                    a.topk_ids = di.t;
                    a.topk_w = dw.t;
                    a.experts = ExpertWeights{v1, v3, v2};
                    a.ws_in = ws_in.t;
                    a.ws_gate = ws_gate.t;
                    a.ws_up = ws_up.t;
                    a.ws_out = ws_out.t;
                    const uint64_t allocs = be.allocation_count();
                    be.moe_experts(a);
                    EXPECT_EQ(be.allocation_count(), allocs);
                    return fetch(be, out.t);
                };
                const int64_t per = dt == DType::q4 ? 32 : dt == DType::q8 ? 16 : dt == DType::f32 ? 4 : 8;
                const bool chunked = s.dim % per == 0 && s.ffn % per == 0;
                const bool grouped = chunked && n > gpu()->options().moe_pair_max_tokens && n <= grouped_max;
                const bool cublas = n > gemv_max && !grouped;
                // The tensor-core grouped kernels: int8 in 64-column steps, int4 in whole 128-column scale groups.
                const bool grouped_tc = grouped && be_gpu->options().grouped_tensor_cores &&
                                        ((dt == DType::q8 && s.dim % 64 == 0 && s.ffn % 64 == 0) ||
                                         (dt == DType::q4 && be_gpu->options().grouped_tensor_cores_q4 &&
                                          s.dim % 128 == 0 && s.ffn % 128 == 0));
                const bool tensor_cores = (cublas && dt != DType::f32) || grouped_tc;
                // The pair path's fused launches (k <= 2, whole chunks): w1/w3 and w2 each on the tensor cores
                // when their column count allows it (gemv_tc.cu), else the dp4a / f32 block-K kernels.
                const bool fused = !grouped && !cublas && chunked && s.k <= 2;
                const bool tc_w13 = fused && gemv_on_tensor_cores(*be_gpu, dt, s.dim, 1);
                const bool tc_w2 = fused && gemv_on_tensor_cores(*be_gpu, dt, s.ffn, 1);
                const double tol_old = dt == DType::q4 ? kTolInt8ActivationsChain : kTolChain;
                const double tol = tensor_cores             ? kTolBf16Chain
                                   : tc_w13 && tc_w2        ? kTolF16ActivationsChain
                                   : tc_w13 || tc_w2        ? std::max(kTolF16ActivationsChain, tol_old)
                                                            : tol_old;
                EXPECT_TRUE(close(run(*be_gpu), run(cpu_oracle()), tol))
                    << dtype_name(dt) << " " << s.n_experts << " experts top-" << s.k << ", dim " << s.dim << ", ffn "
                    << s.ffn << ", " << n << " tokens"
                    << (cublas      ? " (cuBLAS path)"
                        : grouped_tc ? " (grouped tensor-core path)"
                        : grouped    ? " (grouped GEMV path)"
                        : tc_w13 || tc_w2 ? (tc_w13 && tc_w2 ? " (pair path, tensor-core GEMVs)" : " (pair path, one tensor-core GEMV)")
                                     : " (pair GEMV path)");
            }
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Formats, MoeParity,
                         ::testing::Values(DType::f32, DType::f16, DType::bf16, DType::q8, DType::q4),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace hr::test
