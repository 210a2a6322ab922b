// CPU matmul dispatch: out = in W^T. Every weight dtype goes to the tiled matmul (matmul_ggml.h) except
// headroom's int4 at decode shape, whose fused per-row kernel (matmul_quant.h) is faster there: measured
// (cpu_kernel_bench, SmolLM2 layer, 1 thread, CPU time) int4 1 token 0.38 ms fused vs 0.68 ms tiled; int8
// 1 token 0.39 vs 0.39-0.40, 4 tokens 1.00 vs 0.47 (so int8 always takes the tiled path).
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/matmul_ggml.h"
#include "backend/cpu/matmul_quant.h"

namespace hr::cpu {

void weight_row_f32(const Weight& w, int64_t r, float* out) {
    HR_CHECK_MSG(tiled_matmul_supports(w.dtype), "weight_row_f32: weight dtype has no CPU decoder");
    decode_row_exact(w, r, out);
}

void matmul_f32(float* out, const float* in, int64_t n, const Weight& w) {
    if (w.dtype == DType::q4 && n <= kGemvMaxTokens) return matmul_q4(out, in, n, w);
    matmul_tiled(out, in, n, w);
}

void CpuBackend::matmul(Tensor out, Tensor in, const Weight& w) {
    const int64_t n = in.rows();
    HR_CHECK(in.cols() == w.cols);
    HR_CHECK(out.rows() == n && out.cols() == w.rows);
    matmul_f32(out.as<float>(), in.as<float>(), n, w);
}

void CpuBackend::matmuls(Tensor in, std::span<const MatmulJob> jobs) {
    const int64_t n = in.rows();
    std::vector<TiledJob> tiled;
    for (const MatmulJob& j : jobs) {
        HR_CHECK(in.cols() == j.w->cols);
        HR_CHECK(j.out.rows() == n && j.out.cols() == j.w->rows);
        // note: int4 at decode shape keeps its fused kernel (matmul_f32), one product at a time.
        if (j.w->dtype == DType::q4 && n <= kGemvMaxTokens) matmul_f32(j.out.as<float>(), in.as<float>(), n, *j.w);
        else tiled.push_back(TiledJob{j.out.as<float>(), j.w});
    }
    matmul_tiled_multi(in.as<float>(), n, tiled);
}

}  // namespace hr::cpu
