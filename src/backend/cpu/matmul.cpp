// CPU matmul: out = in W^T for plain (f32/f16/bf16) weights; quantized weights go to matmul_quant.
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/matmul_quant.h"

namespace hr::cpu {

void weight_row_f32(const Weight& w, int64_t r, float* out) {
    const int64_t c = w.cols;
    switch (w.dtype) {
        case DType::f32: {
            const float* src = static_cast<const float*>(w.data) + r * c;
            for (int64_t i = 0; i < c; ++i) out[i] = src[i];
            return;
        }
        case DType::bf16: {
            const uint16_t* src = static_cast<const uint16_t*>(w.data) + r * c;
            for (int64_t i = 0; i < c; ++i) out[i] = bf16_to_f32(src[i]);
            return;
        }
        case DType::f16: {
            const uint16_t* src = static_cast<const uint16_t*>(w.data) + r * c;
            for (int64_t i = 0; i < c; ++i) out[i] = f16_to_f32(src[i]);
            return;
        }
        default: HR_CHECK_MSG(false, "weight_row_f32: quantized weight needs the quant kernels");
    }
}

void matmul_f32(float* out, const float* in, int64_t n, const Weight& w) {
    const int64_t rows = w.rows, cols = w.cols;
    // note: each weight row is converted once and reused for all n inputs.
#pragma omp parallel
    {
        std::vector<float> wrow(static_cast<size_t>(cols));
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; ++r) {
            weight_row_f32(w, r, wrow.data());
            for (int64_t t = 0; t < n; ++t) {
                const float* x = in + t * cols;
                float acc = 0.0f;
                for (int64_t i = 0; i < cols; ++i) acc += x[i] * wrow[static_cast<size_t>(i)];
                out[t * rows + r] = acc;
            }
        }
    }
}

void CpuBackend::matmul(Tensor out, Tensor in, const Weight& w) {
    const int64_t n = in.rows();
    HR_CHECK(in.cols() == w.cols);
    HR_CHECK(out.rows() == n && out.cols() == w.rows);
    switch (w.dtype) {
        case DType::q8: matmul_q8(out.as<float>(), in.as<float>(), n, w); return;
        case DType::q4: matmul_q4(out.as<float>(), in.as<float>(), n, w); return;
        default: matmul_f32(out.as<float>(), in.as<float>(), n, w); return;
    }
}

}  // namespace hr::cpu
