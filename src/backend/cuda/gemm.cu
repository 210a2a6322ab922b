// Prefill matrix products through cuBLAS on the tensor cores: activations rounded to bf16 (f16 for f16
// weights), f32 output. int8/int4 weights are first dequantized, a chunk of rows at a time, into a
// planned bf16 workspace (a first version: a fused dequant-GEMM would save that round trip).
#include <string>

#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.cuh"

namespace hr::cuda {
namespace {

// Rows [r0, r0 + n_rows) of a q8/q4 weight -> out [n_rows, cols] bf16; 8 columns per thread when
// cols % 8 == 0 (one 16-byte store), else one.
__global__ void dequant_rows_kernel(__nv_bfloat16* out, Weight w, int64_t r0, int64_t n_rows) {
    const bool vec = w.cols % 8 == 0;
    const int64_t per_row = vec ? w.cols / 8 : w.cols;
    const int64_t total = n_rows * per_row;
    for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
         idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t r = idx / per_row;
        const int64_t c0 = (idx % per_row) * (vec ? 8 : 1);
        const int64_t gr = r0 + r;
        if (!vec) {
            out[r * w.cols + c0] = __float2bfloat16_rn(weight_at(w, gr, c0));
            continue;
        }
        float f[8];
        if (w.dtype == DType::q8) {
            const uint2 q = *reinterpret_cast<const uint2*>(static_cast<const int8_t*>(w.data) + gr * w.cols + c0);
            const float s = static_cast<const float*>(w.scales)[gr];
            const uint32_t ws[2] = {q.x, q.y};
#pragma unroll
            for (int i = 0; i < 8; ++i)
                f[i] = s * static_cast<float>(static_cast<int32_t>(ws[i / 4] << (24 - 8 * (i % 4))) >> 24);
        } else {  // q4
            const uint32_t q = *reinterpret_cast<const uint32_t*>(static_cast<const uint8_t*>(w.data) +
                                                                  gr * quant::q4_row_bytes(w.cols) + c0 / 2);
            const float s = f16_bits_to_f32(
                static_cast<const uint16_t*>(w.scales)[gr * quant::q4_groups(w.cols) + c0 / quant::kQ4Group]);
#pragma unroll
            for (int i = 0; i < 8; ++i) f[i] = s * static_cast<float>(static_cast<int>((q >> (4 * i)) & 15u) - 8);
        }
        __align__(16) __nv_bfloat16 o[8];
#pragma unroll
        for (int i = 0; i < 8; ++i) o[i] = __float2bfloat16_rn(f[i]);
        *reinterpret_cast<uint4*>(out + r * w.cols + c0) = *reinterpret_cast<const uint4*>(o);
    }
}

void gemm_16(cublasHandle_t h, float* out, int64_t ldc, const void* a, const void* x, cudaDataType_t type,
             int64_t m, int64_t n, int64_t k) {
    const float alpha = 1.0f, beta = 0.0f;
    // Column-major view: out^T [m, n] = A [m, k] (row-major W, so op T) . x^T [k, n].
    HR_CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(m), static_cast<int>(n),
                                 static_cast<int>(k), &alpha, a, type, static_cast<int>(k), x, type,
                                 static_cast<int>(k), &beta, out, CUDA_R_32F, static_cast<int>(ldc),
                                 CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

}  // namespace

void gemm_converted(cudaStream_t s, cublasHandle_t h, const GemmWorkspace& ws, float* out, const void* act, int64_t n,
                    const Weight& w) {
    if (n == 0 || w.rows == 0) return;
    if (w.dtype == DType::bf16 || w.dtype == DType::f16) {
        gemm_16(h, out, w.rows, w.data, act, w.dtype == DType::f16 ? CUDA_R_16F : CUDA_R_16BF, w.rows, n, w.cols);
        return;
    }
    HR_CHECK_MSG(w.dtype == DType::q8 || w.dtype == DType::q4,
                 std::string("gemm: unsupported weight dtype ") + std::string(dtype_name(w.dtype)));
    const int64_t chunk_rows = ws.wbuf_elems / w.cols;
    HR_CHECK_MSG(chunk_rows >= 1, std::string("gemm: dequant workspace of ") + std::to_string(ws.wbuf_elems) +
                                      " elements is smaller than one row of " + std::to_string(w.cols) +
                                      " (reserve_workspace with max_cols >= " + std::to_string(w.cols) + ")");
    auto* wbuf = static_cast<__nv_bfloat16*>(ws.wbuf);
    for (int64_t r0 = 0; r0 < w.rows; r0 += chunk_rows) {
        const int64_t rc = std::min(chunk_rows, w.rows - r0);
        const int64_t items = rc * (w.cols % 8 == 0 ? w.cols / 8 : w.cols);
        const int blocks = static_cast<int>(std::min<int64_t>(ceil_div(items, 256), 132 * 16));
        dequant_rows_kernel<<<blocks, 256, 0, s>>>(wbuf, w, r0, rc);
        HR_CUDA_LAUNCH_CHECK();
        gemm_16(h, out + r0, w.rows, wbuf, act, CUDA_R_16BF, rc, n, w.cols);
    }
}

void gemm(cudaStream_t s, cublasHandle_t h, const GemmWorkspace& ws, float* out, const float* in, int64_t n,
          const Weight& w) {
    if (n == 0 || w.rows == 0) return;
    if (w.dtype == DType::f32) {
        const float alpha = 1.0f, beta = 0.0f;
        HR_CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(w.rows), static_cast<int>(n),
                                    static_cast<int>(w.cols), &alpha, static_cast<const float*>(w.data),
                                    static_cast<int>(w.cols), in, static_cast<int>(w.cols), &beta, out,
                                    static_cast<int>(w.rows)));
        return;
    }
    HR_CHECK_MSG(n * w.cols <= ws.act_elems,
                 std::string("gemm: ") + std::to_string(n) + " x " + std::to_string(w.cols) +
                     " activations exceed the reserved workspace of " + std::to_string(ws.act_elems) +
                     " elements (reserve_workspace with larger max_tokens / max_cols)");
    launch_to_half(s, ws.act, in, n * w.cols, gemm_wants_f16(w));
    gemm_converted(s, h, ws, out, ws.act, n, w);
}

}  // namespace hr::cuda
