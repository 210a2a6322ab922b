// Parity of the CUDA matmul against the CPU oracle for every weight format: the GEMV path (few tokens,
// f32 activations) and the cuBLAS path (many tokens, bf16 activations), aligned and odd shapes.
#include "parity_util.h"
#include "tolerances.h"

namespace hr::test {
namespace {

struct MatShape {
    int64_t rows, cols;
};

class MatmulParity : public ::testing::TestWithParam<DType> {};

TEST_P(MatmulParity, MatchesCpu) {
    HR_REQUIRE_GPU();
    const DType dt = GetParam();
    const int64_t gemv_max = gpu()->options().gemv_max_tokens;
    // (64, 64): small; (37, 67): odd everything (scalar path); (256, 4096): the fast path at a model's
    // width; (100, 160): int4 groups of 128 + a short one; (513, 1000): 1000 % 16 != 0 (int8 scalar path).
    for (cuda::CudaBackend* be_gpu : gpus()) {
        for (MatShape s : {MatShape{64, 64}, MatShape{37, 67}, MatShape{256, 4096}, MatShape{100, 160},
                           MatShape{513, 1000}}) {
            for (int64_t n : {int64_t{1}, int64_t{3}, gemv_max, gemv_max + 1, int64_t{100}}) {
                Rng rng(static_cast<uint64_t>(s.rows * 1000 + s.cols + n));
                const HostWeight hw = HostWeight::random(rng, dt, s.rows, s.cols, 1.0f / std::sqrt(float(s.cols)));
                const auto x = rng.normal(static_cast<size_t>(n * s.cols));
                auto run = [&](Backend& be) {
                    DevWeight w = place(be, hw);
                    DevTensor in = place(be, x, DType::f32, {n, s.cols});
                    DevTensor out = poisoned(be, {n, s.rows});
                    const uint64_t allocs = be.allocation_count();
                    be.matmul(out.t, in.t, w.w);
                    EXPECT_EQ(be.allocation_count(), allocs) << "matmul allocated backend memory";
                    return fetch(be, out.t);
                };
                const bool gemv = n <= gemv_max || s.rows <= be_gpu->options().gemv_max_rows;
                const bool tensor_cores = !gemv && dt != DType::f32;
                const bool tc_gemv = gemv && gemv_on_tensor_cores(*be_gpu, dt, s.cols, n);
                const double tol = tensor_cores ? kTolBf16Gemm
                                   : tc_gemv    ? kTolF16Activations
                                   : dt == DType::q4 ? kTolInt8Activations
                                                     : kTolReduce;
                EXPECT_TRUE(close(run(*be_gpu), run(cpu_oracle()), tol))
                    << dtype_name(dt) << " [" << s.rows << ", " << s.cols << "] x " << n << " tokens"
                    << (tensor_cores ? " (cuBLAS path)" : tc_gemv ? " (tensor-core GEMV path)" : " (GEMV path)");
            }
        }
    }
}

// The tensor-core GEMVs (gemv_tc.cu) at the edges of their tiling: row counts that leave a short last
// 16-row tile (and matrices smaller than one tile), fewer column steps than the block's 8 warps and
// counts that do not divide among them, a Mixtral expert's 14336 inputs, and 1 to 8 tokens (one B
// column each). The same shapes on the backend without them cover the dp4a / f32 kernels.
TEST_P(MatmulParity, TensorCoreGemvEdges) {
    HR_REQUIRE_GPU();
    const DType dt = GetParam();
    if (dt != DType::q4 && dt != DType::q8) GTEST_SKIP() << "int4 / int8 only";
    for (cuda::CudaBackend* be_gpu : gpus()) {
        for (MatShape s : {MatShape{8, 4096}, MatShape{37, 384}, MatShape{200, 512}, MatShape{1000, 1152},
                           MatShape{48, 14336}, MatShape{16, 128}, MatShape{77, 192}, MatShape{130, 2176}}) {
            for (int64_t n = 1; n <= 8; ++n) {
                if (n > 3 && n != 8 && s.rows != 200) continue;  // every token count on one shape
                Rng rng(static_cast<uint64_t>(s.rows * 7919 + s.cols * 31 + n));
                const HostWeight hw = HostWeight::random(rng, dt, s.rows, s.cols, 1.0f / std::sqrt(float(s.cols)));
                const auto x = rng.normal(static_cast<size_t>(n * s.cols));
                auto run = [&](Backend& be) {
                    DevWeight w = place(be, hw);
                    DevTensor in = place(be, x, DType::f32, {n, s.cols});
                    DevTensor out = poisoned(be, {n, s.rows});
                    be.matmul(out.t, in.t, w.w);
                    return fetch(be, out.t);
                };
                const bool tc = gemv_on_tensor_cores(*be_gpu, dt, s.cols, n);
                const double tol = tc ? kTolF16Activations : dt == DType::q4 ? kTolInt8Activations : kTolReduce;
                EXPECT_TRUE(close(run(*be_gpu), run(cpu_oracle()), tol))
                    << dtype_name(dt) << " [" << s.rows << ", " << s.cols << "] x " << n << " tokens"
                    << (tc ? " (tensor-core GEMV path)" : " (GEMV path)");
            }
        }
    }
}

// Several products of one input (q, k, v): one launch for one token with rows that differ per matrix
// and are not multiples of the kernel's row block; separate matmuls for several tokens.
TEST_P(MatmulParity, SharedInputProducts) {
    HR_REQUIRE_GPU();
    const DType dt = GetParam();
    const int64_t cols = 512;
    const int64_t rows[] = {200, 67, 67};
    for (cuda::CudaBackend* be_gpu : gpus()) {
        for (int64_t n : {int64_t{1}, int64_t{3}}) {
            Rng rng(static_cast<uint64_t>(77 + n));
            std::vector<HostWeight> hw;
            for (int64_t r : rows) hw.push_back(HostWeight::random(rng, dt, r, cols, 1.0f / std::sqrt(float(cols))));
            const auto x = rng.normal(static_cast<size_t>(n * cols));
            auto run = [&](Backend& be) {
                std::vector<DevWeight> w;
                std::vector<DevTensor> outs;
                for (size_t i = 0; i < hw.size(); ++i) {
                    w.push_back(place(be, hw[i]));
                    outs.push_back(poisoned(be, {n, rows[i]}));
                }
                DevTensor in = place(be, x, DType::f32, {n, cols});
                std::vector<MatmulJob> jobs;
                for (size_t i = 0; i < hw.size(); ++i) jobs.push_back({outs[i].t, &w[i].w});
                be.matmuls(in.t, jobs);
                std::vector<float> all;
                for (const DevTensor& o : outs) {
                    const auto f = fetch(be, o.t);
                    all.insert(all.end(), f.begin(), f.end());
                }
                return all;
            };
            const bool tc = gemv_on_tensor_cores(*be_gpu, dt, cols, n);
            const double tol = tc ? kTolF16Activations : dt == DType::q4 ? kTolInt8Activations : kTolReduce;
            EXPECT_TRUE(close(run(*be_gpu), run(cpu_oracle()), tol))
                << dtype_name(dt) << " x " << n << " tokens" << (tc ? " (tensor-core GEMVs)" : "");
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Formats, MatmulParity,
                         ::testing::Values(DType::f32, DType::f16, DType::bf16, DType::q8, DType::q4),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace hr::test
