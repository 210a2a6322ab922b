// CPU matmul dispatch: out = in W^T. Every weight dtype goes to the tiled matmul (matmul_ggml.h) except
// headroom's int8/int4 at decode shape, whose fused per-row kernels (matmul_quant.h) stay in use there.
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
    switch (w.dtype) {
        case DType::q8:
            if (n <= kGemvMaxTokens) return matmul_q8(out, in, n, w);
            break;
        case DType::q4:
            if (n <= kGemvMaxTokens) return matmul_q4(out, in, n, w);
            break;
        default: break;
    }
    matmul_tiled(out, in, n, w);
}

void CpuBackend::matmul(Tensor out, Tensor in, const Weight& w) {
    const int64_t n = in.rows();
    HR_CHECK(in.cols() == w.cols);
    HR_CHECK(out.rows() == n && out.cols() == w.rows);
    matmul_f32(out.as<float>(), in.as<float>(), n, w);
}

}  // namespace hr::cpu
