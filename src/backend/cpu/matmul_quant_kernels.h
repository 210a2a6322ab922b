// Internal to the CPU backend: per-weight-row kernels of the quantized matmuls (matmul_quant.cpp
// drives them over rows and input blocks). Scalar versions here, AVX2+FMA in matmul_quant_avx2.cpp.
#pragma once

#include <cstdint>

namespace hr::cpu::detail {

// Inputs processed per pass over a weight row: the row is read (and converted) once for them all.
constexpr int kInBlock = 4;

// For t < nb (1 <= nb <= kInBlock): out[t * out_stride] = dot(dequant(w row), in + t * in_stride).
// q8: w [cols] int8, scale f32.   q4: w [ceil(cols/2)] packed nibbles, scales f16 [ceil(cols/128)].
// note: q4 sums each group of 128 in f32, then adds scale * group sum to the f32 total.
void q8_rows_scalar(const int8_t* w, float scale, int64_t cols, const float* in, int64_t in_stride, int nb,
                    float* out, int64_t out_stride);
void q4_rows_scalar(const uint8_t* w, const uint16_t* scales, int64_t cols, const float* in, int64_t in_stride,
                    int nb, float* out, int64_t out_stride);

// Defined only on x86; call only when the CPU has AVX2 and FMA.
void q8_rows_avx2(const int8_t* w, float scale, int64_t cols, const float* in, int64_t in_stride, int nb,
                  float* out, int64_t out_stride);
void q4_rows_avx2(const uint8_t* w, const uint16_t* scales, int64_t cols, const float* in, int64_t in_stride,
                  int nb, float* out, int64_t out_stride);

}  // namespace hr::cpu::detail
