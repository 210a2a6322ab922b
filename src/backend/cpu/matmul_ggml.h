// The tiled CPU matmul used for every weight dtype: GGUF block formats (gg_*), f32/f16/bf16 and
// headroom's int8/int4. Weights are decoded to their exact f32 values (no requantization) and multiplied
// with f32 activations in f32 (activations are never quantized). Two shapes:
//   decode  (n <= kGemvMaxTokens inputs): each weight row is decoded once into an L1 buffer and dotted
//           with every input; rows are split over the OpenMP threads;
//   prefill (more inputs): a weight tile of NR rows is decoded once into an L1/L2 buffer and multiplied
//           against packed panels of P inputs by a register-blocked micro-kernel (AVX-512: 12 x 32).
// Instruction-set paths (scalar, AVX2+FMA, AVX-512) are chosen at run time; HEADROOM_CPU_ISA=scalar|avx2|
// avx512 lowers the choice (tests and benchmarks force each path through the *_isa functions).
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace hr::cpu {

enum class CpuIsa { scalar, avx2, avx512 };

// The fastest path the running CPU supports, lowered by HEADROOM_CPU_ISA when set (read once).
CpuIsa best_cpu_isa();
bool cpu_isa_supported(CpuIsa isa);
const char* cpu_isa_name(CpuIsa isa);

// Up to this many inputs take the decode (GEMV) shape; more take the tiled GEMM.
constexpr int64_t kGemvMaxTokens = 4;

// Whether matmul_tiled handles weights of dtype `dt` (f32, f16, bf16, q8, q4 and every gg_*).
bool tiled_matmul_supports(DType dt);

// out [n, w.rows] = in [n, w.cols] . dequant(W)^T, f32 accumulation.
// note: shapes and dtype are checked with HR_CHECK: the backend's dispatch guarantees them.
void matmul_tiled(float* out, const float* in, int64_t n, const Weight& w);
// The same on an explicitly chosen path; a path the CPU lacks is a broken invariant (checked).
void matmul_tiled_isa(CpuIsa isa, float* out, const float* in, int64_t n, const Weight& w);

// Row r of w as exact f32 values (scalar decoder: bit-identical to quant::ggml_dequantize for gg_*,
// to quant::dequantize_matrix for q8/q4).   out [w.cols]
void decode_row_exact(const Weight& w, int64_t r, float* out);

}  // namespace hr::cpu
