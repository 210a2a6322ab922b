// Internal to the CPU backend: the per-instruction-set pieces the tiled matmul (matmul_ggml.cpp) drives:
// row decoders, the multi-input dot product (decode shape) and the GEMM micro-kernel (prefill shape).
// Scalar pieces in matmul_ggml_scalar.cpp, AVX2 in matmul_ggml_avx2.cpp, AVX-512 in matmul_ggml_avx512.cpp.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace hr::cpu::detail {

// Decodes row r of w to f32 into scratch [w.cols] and returns it, or returns a pointer to the row itself
// when no conversion is needed (f32 weights).
using RowDecoder = const float* (*)(const Weight& w, int64_t r, float* scratch);

// The decode shape: out[t * out_stride + r] = dot(w + r * ldw [k], x + t * k) for r < nr, t < nb;
// 1 <= nr <= kDotRows, 1 <= nb <= 4. Rows past nr are readable (their results are not stored).
constexpr int kDotRows = 4;
using DotFn = void (*)(const float* w, int64_t ldw, int nr, int64_t k, const float* x, int nb, float* out,
                       int64_t out_stride);

// The micro-kernel: for i < nr (<= NR), j < m (<= P):
//   out[j * ldo + i] = sum_{kk < k} w[i * ldw + kk] * ap[kk * P + j]
// w: NR rows of decoded weights (rows past nr are readable, their results are not stored);
// ap: a packed panel of P inputs, [k][P] (columns past m are zero).
using TileFn = void (*)(const float* w, int64_t ldw, const float* ap, int64_t k, int m, int nr, float* out,
                        int64_t ldo);

// Packs inputs [t0, t0 + m) of in [*, k] into a panel ap[kk * P + j] = in[(t0 + j) * k + kk] (zero for j >= m).
using PackFn = void (*)(const float* in, int64_t k, int64_t t0, int64_t m, int P, float* ap);
void pack_panel_scalar(const float* in, int64_t k, int64_t t0, int64_t m, int P, float* ap);
void pack_panel_avx2(const float* in, int64_t k, int64_t t0, int64_t m, int P, float* ap);  // AVX2 CPUs only

struct IsaKernels {
    int nr = 0;  // weight rows per micro-tile
    int p = 0;   // inputs per packed panel
    DotFn dot = nullptr;
    TileFn tile = nullptr;
    PackFn pack = nullptr;
    // The fast decoder of `dt`, or nullptr where this path has none (the scalar decoder is used then).
    RowDecoder (*decoder)(DType dt) = nullptr;
};

const IsaKernels& scalar_kernels();
const IsaKernels& avx2_kernels();    // call only when the CPU has AVX2 and FMA
const IsaKernels& avx512_kernels();  // call only when the CPU has AVX-512 F/BW/VL

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K super-block's scales[12].
void k4_scale_min(const uint8_t* s, int j, uint8_t* sc, uint8_t* mn);

// The exact scalar decoder of every supported dtype (nullptr for others).
RowDecoder scalar_decoder(DType dt);

}  // namespace hr::cpu::detail
