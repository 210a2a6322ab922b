// The quantized tensor-core GEMM (qgemm.cu): int8 (row scales) and int4 (group-128 f16 scales) weights
// read directly, dequantized to f16 in registers, multiplied on the tensor cores (mma.sync m16n8k16, f32
// accumulation) against f16 activations staged by a cp.async multi-stage pipeline. One launch covers
// every (expert, row tile, token tile) of a MoE layer through the device-side expert offsets (no host
// sync), or a dense matmul of many tokens. No CUDA headers, so host code can build the parameters.
#pragma once

#include <cstdint>

#include "core/tensor.h"

struct CUstream_st;

namespace hr::cuda {

constexpr int kQgMaxExperts = 64;  // = kMaxExperts (kernels.cuh)

struct QgMat {
    const void* data[kQgMaxExperts];    // per expert: int8 [rows, cols] or int4 [rows, cols / 2]; 16-byte aligned
    const void* scales[kQgMaxExperts];  // int8: f32 [rows]; int4: f16 [rows, cols / 128]
};

// out[pos] = W_e x[row(pos)] for the positions pos of each expert e: [offsets[e], offsets[e + 1]), or
// [0, n_positions) with offsets null (dense, expert 0). row(pos) = perm ? perm[pos] / k : pos.
// pair: mat[0] = w1, mat[1] = w3, out_h[pos] = f16(silu(W1 x) * (W3 x)); else mat[0], out_f32[pos].
struct QgParams {
    QgMat mat[2];
    DType dtype = DType::q8;
    int64_t rows = 0, cols = 0;   // of each matrix
    int n_experts = 1;
    const int32_t* offsets = nullptr;  // [n_experts + 1] on the device, or null
    int64_t n_positions = 0;           // positions (pairs) in all; with offsets an upper bound for the grid
    const int32_t* perm = nullptr;     // [n_positions], or null
    int k = 1;
    uint64_t skip_experts = 0;  // bit e: expert e gets no tiles here (offloaded, run from a staged copy)
    const void* x = nullptr;  // f16 [*, cols], 16-byte aligned
    float* out_f32 = nullptr;  // [n_positions, rows]
    void* out_h = nullptr;     // f16 [n_positions, rows] (pair mode)
};

// Whether a weight of this dtype and shape can run here: int8 with cols % 64 == 0, int4 with
// cols % 128 == 0 (whole scale groups); any row count >= 1.
bool qgemm_shape_supported(DType dt, int64_t rows, int64_t cols);
// The shape, every weight pointer 16-byte aligned, n_experts in range, and x aligned.
bool qgemm_supported(const QgParams& p, bool pair);
// Launches nothing when n_positions == 0. Fatal (HR_CHECK) when !qgemm_supported(p, pair).
void launch_qgemm(CUstream_st* s, const QgParams& p, bool pair);

}  // namespace hr::cuda
