// MoE experts for a batch of a few dozen decode tokens, grouped by expert on the device (no host sync,
// so a step stays capturable): one block per (row block, expert) streams its expert's rows once per
// tile of up to kTile of the expert's (token, expert) pairs, dequantized in registers with f32
// accumulation, like the single-token GEMVs. Against the prefill path (dequantize every expert to bf16,
// then cuBLAS) this reads each selected expert's int8/int4 weights once per step instead of writing and
// reading a bf16 copy of all of them.
#include <cfloat>

#include <string>

#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.cuh"
#include "backend/cuda/weight_unpack.cuh"

namespace hr::cuda {
namespace {

constexpr int kThreads = 128;  // the block's threads split the columns in 16-byte chunks
constexpr int kTile = 8;       // pairs sharing one read of the weight rows

// grid: x = row blocks of R rows, y = expert. PAIR: matrices 0 and 1 (w1, w3) of the pair's token row
// x[pair / k], out[pair] = silu(W1 x) * (W3 x); else matrix 0 (w2) of the pair's own row x[pair],
// out[pair] = W2 x. perm [nk] lists the pairs expert by expert; offsets [n_experts + 1].
template <DType WT, int R, bool PAIR>
__global__ void __launch_bounds__(kThreads)
    gemv_grouped_kernel(const __grid_constant__ GemvParams p, const int32_t* perm, const int32_t* offsets) {
    constexpr int M = PAIR ? 2 : 1;
    constexpr int kPer = Fmt<WT>::kPer;
    constexpr int NW = kThreads / kWarp;
    __shared__ float red[NW][M * kTile * R];
    const int tid = threadIdx.x, lane = tid % kWarp, warp = tid / kWarp;
    const int e = static_cast<int>(blockIdx.y);
    const int64_t row0 = static_cast<int64_t>(blockIdx.x) * R;
    const int32_t c0 = offsets[e], c1 = offsets[e + 1];
    if (c0 >= c1) return;
    const int64_t rb = row_bytes<WT>(p.cols);
    const int64_t n_chunks = p.cols / kPer;
    const int64_t n_groups = quant::q4_groups(p.cols);
    const uint8_t* wdata[M];
    const void* wscales[M];
#pragma unroll
    for (int m = 0; m < M; ++m) {
        wdata[m] = static_cast<const uint8_t*>(p.mat[m].data[e]);
        wscales[m] = p.mat[m].scales[e];
    }

    for (int32_t tile = c0; tile < c1; tile += kTile) {
        const int nt = min(kTile, c1 - tile);
        int32_t pair[kTile];
        const float* xr[kTile];
#pragma unroll
        for (int j = 0; j < kTile; ++j) {
            pair[j] = perm[tile + min(j, nt - 1)];
            xr[j] = p.x + static_cast<int64_t>(PAIR ? pair[j] / p.k : pair[j]) * p.cols;
        }
        float acc[M][kTile][R];
#pragma unroll
        for (int m = 0; m < M; ++m)
#pragma unroll
            for (int j = 0; j < kTile; ++j)
#pragma unroll
                for (int r = 0; r < R; ++r) acc[m][j][r] = 0.0f;

        for (int64_t ci = tid; ci < n_chunks; ci += kThreads) {
            uint4 wv[M][R];
#pragma unroll
            for (int m = 0; m < M; ++m)
#pragma unroll
                for (int r = 0; r < R; ++r)
                    if (row0 + r < p.rows) wv[m][r] = ld_stream16(wdata[m] + (row0 + r) * rb + ci * 16);
            if constexpr (WT == DType::q4) {
                // int8 activations against the nibbles (dp4a): weight_unpack.cuh, XQ32.
                float gs[M][R];
#pragma unroll
                for (int m = 0; m < M; ++m)
#pragma unroll
                    for (int r = 0; r < R; ++r)
                        gs[m][r] = row0 + r < p.rows
                                       ? f16_bits_to_f32(__ldg(static_cast<const uint16_t*>(wscales[m]) +
                                                               (row0 + r) * n_groups + (ci * kPer) / quant::kQ4Group))
                                       : 0.0f;
#pragma unroll
                for (int j = 0; j < kTile; ++j) {
                    if (j >= nt) break;
                    XQ32 xq;
                    quantize_x32(xr[j] + ci * kPer, xq);
#pragma unroll
                    for (int m = 0; m < M; ++m)
#pragma unroll
                        for (int r = 0; r < R; ++r)
                            acc[m][j][r] = fmaf(static_cast<float>(dot_q4_x32(wv[m][r], xq)), xq.d * gs[m][r],
                                                acc[m][j][r]);
                }
            } else {
                float f[M][R][kPer];
#pragma unroll
                for (int m = 0; m < M; ++m)
#pragma unroll
                    for (int r = 0; r < R; ++r) unpack<WT>(wv[m][r], f[m][r]);
#pragma unroll
                for (int j = 0; j < kTile; ++j) {
                    if (j >= nt) break;
                    float xs[kPer];
                    load_x_chunk<kPer>(xr[j] + ci * kPer, xs);
#pragma unroll
                    for (int m = 0; m < M; ++m)
#pragma unroll
                        for (int r = 0; r < R; ++r) {
                            float s = 0.0f;
#pragma unroll
                            for (int q = 0; q < kPer; ++q) s = fmaf(f[m][r][q], xs[q], s);
                            acc[m][j][r] += s;
                        }
                }
            }
        }
#pragma unroll
        for (int m = 0; m < M; ++m)
#pragma unroll
            for (int j = 0; j < kTile; ++j)
#pragma unroll
                for (int r = 0; r < R; ++r) {
                    const float v = warp_sum(acc[m][j][r]);
                    if (lane == 0) red[warp][(m * kTile + j) * R + r] = v;
                }
        __syncthreads();
        if (tid < kTile * R) {
            const int j = tid / R, r = tid % R;
            const int64_t row = row0 + r;
            if (j < nt && row < p.rows) {
                float v[M];
#pragma unroll
                for (int m = 0; m < M; ++m) {
                    float sum = 0.0f;
#pragma unroll
                    for (int w = 0; w < NW; ++w) sum += red[w][(m * kTile + j) * R + r];
                    if constexpr (WT == DType::q8) sum *= __ldg(static_cast<const float*>(wscales[m]) + row);
                    v[m] = sum;
                }
                float out = v[0];
                // The same expression as silu_mul_kernel (ops.cu).
                if constexpr (PAIR) out = v[0] / (1.0f + expf(-v[0])) * v[1];
                p.mat[0].out[static_cast<int64_t>(pair[j]) * p.rows + row] = out;
            }
        }
        __syncthreads();  // red is reused by the next tile
    }
}

template <DType WT>
void launch_typed(cudaStream_t s, const GemvParams& p, const int32_t* perm, const int32_t* offsets, bool pair) {
    const dim3 block(kThreads);
    if (pair) {
        constexpr int R = 2;
        const dim3 grid(static_cast<unsigned>(ceil_div(p.rows, R)), static_cast<unsigned>(p.n_experts));
        gemv_grouped_kernel<WT, R, true><<<grid, block, 0, s>>>(p, perm, offsets);
    } else {
        constexpr int R = 4;
        const dim3 grid(static_cast<unsigned>(ceil_div(p.rows, R)), static_cast<unsigned>(p.n_experts));
        gemv_grouped_kernel<WT, R, false><<<grid, block, 0, s>>>(p, perm, offsets);
    }
    HR_CUDA_LAUNCH_CHECK();
}

}  // namespace

bool gemv_grouped_supported(const GemvParams& p) {
    const int per = per_chunk(p.dtype);
    bool ok = per > 0 && p.cols % per == 0 && aligned16(p.x) && p.n_experts >= 1 && p.n_experts <= kMaxExperts;
    for (int m = 0; m < p.n_mat && ok; ++m)
        for (int e = 0; e < p.n_experts; ++e) ok = ok && aligned16(p.mat[m].data[e]);
    return ok;
}

void launch_gemv_grouped(cudaStream_t s, const GemvParams& p, const int32_t* perm, const int32_t* offsets, bool pair) {
    HR_CHECK_MSG(gemv_grouped_supported(p) && p.n_mat == (pair ? 2 : 1),
                 "gemv_grouped: unsupported shape, alignment or matrix count (check gemv_grouped_supported)");
    switch (p.dtype) {
        case DType::f32: launch_typed<DType::f32>(s, p, perm, offsets, pair); break;
        case DType::f16: launch_typed<DType::f16>(s, p, perm, offsets, pair); break;
        case DType::bf16: launch_typed<DType::bf16>(s, p, perm, offsets, pair); break;
        case DType::q8: launch_typed<DType::q8>(s, p, perm, offsets, pair); break;
        default: launch_typed<DType::q4>(s, p, perm, offsets, pair); break;
    }
}

}  // namespace hr::cuda
