// CPU matrix products with int8 (q8) and int4 (q4) weights and f32 activations, f32 accumulation:
// a portable scalar path and an AVX2+FMA path chosen at run time. Parallel over output rows (OpenMP).
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace hr::cpu {

// Instruction-set paths of the quantized kernels. `best` is the fastest the running CPU supports.
enum class QuantIsa { scalar, avx2_fma };
QuantIsa best_quant_isa();
bool quant_isa_supported(QuantIsa isa);
const char* quant_isa_name(QuantIsa isa);

// out = in W^T: out[t][r] = sum_c in[t][c] * dequant(W)[r][c].
// out [n, w.rows] f32; in [n, w.cols] f32; w.dtype q8 (resp. q4) with layout of quant/formats.h.
// note: the weight and shapes are checked with HR_CHECK: the backend's dispatch guarantees them.
void matmul_q8(float* out, const float* in, int64_t n, const Weight& w);
void matmul_q4(float* out, const float* in, int64_t n, const Weight& w);

// The same products on an explicitly chosen path (benchmarks and the tests that compare the paths);
// choosing a path the CPU lacks is a broken invariant (checked).
void matmul_q8_isa(QuantIsa isa, float* out, const float* in, int64_t n, const Weight& w);
void matmul_q4_isa(QuantIsa isa, float* out, const float* in, int64_t n, const Weight& w);

}  // namespace hr::cpu
