// MoE experts of a batch of decode tokens on the tensor cores, for int8 weights: pairs grouped by expert
// on the device (perm/offsets from launch_moe_plan, no host sync), one block per (64 rows, expert), its
// pairs in tiles of 16 (two mma n8 tiles). Each lane loads 16 contiguous bytes of two rows and reads 16
// contiguous f16 activations (staged in shared memory) per 64 columns: the mma's k order is a permutation of the real columns
// (k-tile t, fragment column 2c+i <-> real column 16c + 4t + i, 2c+8+i <-> 16c + 4t + 2 + i), applied to
// the weights and the activations alike, so the dot products are unchanged and every load is a 16-byte
// vector. int8 -> f16 is exact (1024 + biased byte, minus 1152); activations are rounded to f16;
// accumulation is f32 and the per-row scale is applied in the epilogue.
#include <cfloat>

#include <string>

#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.cuh"
#include "backend/cuda/mma.cuh"
#include "backend/cuda/weight_unpack.cuh"

namespace hr::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * kWarp;
constexpr int kRowsPerBlock = kWarps * 16;  // one m16 tile per warp
constexpr int kN8 = 2;                      // n8 tiles of pairs per pass
constexpr int kPairs = kN8 * 8;

// Bytes 2h, 2h + 1 of a word of int8 values as an exact f16x2 (low half = the lower byte).
__device__ __forceinline__ uint32_t i8x2_to_f16x2(uint32_t biased, int h) {
    const uint32_t bits = __byte_perm(biased, 0x64646464u, h == 0 ? 0x5140u : 0x7362u);  // 1024 + u per half
    const __half2 v = __hsub2(*reinterpret_cast<const __half2*>(&bits), __half2half2(__ushort_as_half(0x6480)));
    return *reinterpret_cast<const uint32_t*>(&v);
}

// grid: x = blocks of 64 rows, y = expert. PAIR: w1 and w3 (mat 0, 1) of the pair's token row
// xh[pair / k], out[pair] = silu(W1 x) * (W3 x); else w2 (mat 0) of row xh[pair], out[pair] = W2 x.
// xh: f16 activations [*, cols]; cols % 64 == 0. The tile's activations are staged in shared memory
// kXChunk columns at a time, once for the block's four warps (they share them: same pairs, other rows).
constexpr int kXChunk = 1024;
constexpr int kXStride = kXChunk + 8;  // halves; rows 16 bytes apart mod 128: conflict-free 16-byte reads

template <bool PAIR>
__global__ void __launch_bounds__(kThreads)
    grouped_tc_kernel(const __grid_constant__ GemvParams p, const __half* xh, const int32_t* perm,
                      const int32_t* offsets) {
    constexpr int M = PAIR ? 2 : 1;
    __shared__ __align__(16) __half xs[kPairs][kXStride];
    const int tid = threadIdx.x, lane = tid % kWarp, warp = tid / kWarp;
    const int g = lane / 4, c = lane % 4;
    const int e = static_cast<int>(blockIdx.y);
    const int32_t c0 = offsets[e], c1 = offsets[e + 1];
    if (c0 >= c1) return;  // block-uniform
    const int64_t rbase = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + warp * 16;
    const bool active = rbase < p.rows;  // whole warps (rows % 16 == 0, checked by the launcher)
    const int64_t K = p.cols;
    const uint8_t* wrow[M][2];
#pragma unroll
    for (int m = 0; m < M; ++m) {
        const uint8_t* base = static_cast<const uint8_t*>(p.mat[m].data[e]);
        const int64_t r = active ? rbase : 0;
        wrow[m][0] = base + (r + g) * K + 16 * c;
        wrow[m][1] = base + (r + g + 8) * K + 16 * c;
    }

    for (int32_t tile = c0; tile < c1; tile += kPairs) {
        const int nt = min(kPairs, c1 - tile);
        float acc[M][kN8][4];
#pragma unroll
        for (int m = 0; m < M; ++m)
#pragma unroll
            for (int j = 0; j < kN8; ++j) acc[m][j][0] = acc[m][j][1] = acc[m][j][2] = acc[m][j][3] = 0.0f;

        for (int64_t kc = 0; kc < K; kc += kXChunk) {
            const int64_t kw = min(static_cast<int64_t>(kXChunk), K - kc);  // a multiple of 64
            __syncthreads();  // the previous chunk is no longer read
            for (int idx = tid; idx < kPairs * (kXChunk / 8); idx += kThreads) {
                const int j = idx / (kXChunk / 8), col = (idx % (kXChunk / 8)) * 8;
                uint4 v = make_uint4(0, 0, 0, 0);
                if (col < kw) {
                    const int32_t i = tile + min(j, nt - 1);
                    const int32_t pr = perm[i];
                    v = __ldg(reinterpret_cast<const uint4*>(xh + static_cast<int64_t>(PAIR ? pr / p.k : pr) * K +
                                                             kc + col));
                }
                *reinterpret_cast<uint4*>(&xs[j][col]) = v;
            }
            __syncthreads();
            if (!active) continue;
            for (int64_t k0 = 0; k0 < kw; k0 += 64) {
                uint4 wv[M][2];
#pragma unroll
                for (int m = 0; m < M; ++m) {
                    wv[m][0] = ld_stream16(wrow[m][0] + kc + k0);
                    wv[m][1] = ld_stream16(wrow[m][1] + kc + k0);
                }
                // B: token g of n8 tile j, columns 16c .. 16c + 16 of this 64-column step.
                uint4 xv[kN8][2];
#pragma unroll
                for (int j = 0; j < kN8; ++j) {
                    xv[j][0] = *reinterpret_cast<const uint4*>(&xs[j * 8 + g][k0 + 16 * c]);
                    xv[j][1] = *reinterpret_cast<const uint4*>(&xs[j * 8 + g][k0 + 16 * c + 8]);
                }
#pragma unroll
                for (int t = 0; t < 4; ++t) {
                    uint32_t bf[kN8][2];
#pragma unroll
                    for (int j = 0; j < kN8; ++j) {
                        const uint4& v = xv[j][t / 2];
                        const uint32_t words[4] = {v.x, v.y, v.z, v.w};
                        bf[j][0] = words[(t % 2) * 2];
                        bf[j][1] = words[(t % 2) * 2 + 1];
                    }
#pragma unroll
                    for (int m = 0; m < M; ++m) {
                        const uint32_t w0[4] = {wv[m][0].x, wv[m][0].y, wv[m][0].z, wv[m][0].w};
                        const uint32_t w1[4] = {wv[m][1].x, wv[m][1].y, wv[m][1].z, wv[m][1].w};
                        const uint32_t u0 = w0[t] ^ 0x80808080u, u1 = w1[t] ^ 0x80808080u;
                        uint32_t af[4];
                        af[0] = i8x2_to_f16x2(u0, 0);  // row g, columns 4t, 4t + 1
                        af[1] = i8x2_to_f16x2(u1, 0);  // row g + 8
                        af[2] = i8x2_to_f16x2(u0, 1);  // row g, columns 4t + 2, 4t + 3
                        af[3] = i8x2_to_f16x2(u1, 1);  // row g + 8
#pragma unroll
                        for (int j = 0; j < kN8; ++j) mma_f16(acc[m][j], af, bf[j]);
                    }
                }
            }
        }
        if (!active) continue;
        // Accumulator (row g or g + 8, pair column 2c + i of n8 tile j).
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int64_t row = rbase + g + 8 * h;
            float sc[M];
#pragma unroll
            for (int m = 0; m < M; ++m) sc[m] = __ldg(static_cast<const float*>(p.mat[m].scales[e]) + row);
#pragma unroll
            for (int j = 0; j < kN8; ++j)
#pragma unroll
                for (int i = 0; i < 2; ++i) {
                    const int col = j * 8 + 2 * c + i;
                    if (col >= nt) continue;
                    const int32_t pr = perm[tile + col];
                    float v = acc[0][j][2 * h + i] * sc[0];
                    if constexpr (PAIR) {
                        const float u = acc[1][j][2 * h + i] * sc[1];
                        v = v / (1.0f + expf(-v)) * u;  // the same expression as silu_mul_kernel (ops.cu)
                    }
                    p.mat[0].out[static_cast<int64_t>(pr) * p.rows + row] = v;
                }
        }
    }
}

}  // namespace

bool gemv_grouped_tc_supported(const GemvParams& p) {
    if (p.dtype == DType::q4) return gemv_grouped_tc_q4_supported(p);
    bool ok = p.dtype == DType::q8 && p.cols % 64 == 0 && p.rows % 16 == 0 && p.n_experts >= 1 &&
              p.n_experts <= kMaxExperts;
    for (int m = 0; m < p.n_mat && ok; ++m)
        for (int e = 0; e < p.n_experts; ++e) ok = ok && aligned16(p.mat[m].data[e]);
    return ok;
}

void launch_gemv_grouped_tc(cudaStream_t s, const GemvParams& p, const __half* xh, const int32_t* perm,
                            const int32_t* offsets, bool pair) {
    HR_CHECK_MSG(gemv_grouped_tc_supported(p) && aligned16(xh) && p.n_mat == (pair ? 2 : 1),
                 "gemv_grouped_tc: unsupported shape (check gemv_grouped_tc_supported)");
    if (p.dtype == DType::q4) {
        launch_gemv_grouped_tc_q4(s, p, xh, perm, offsets, pair);
        return;
    }
    const dim3 grid(static_cast<unsigned>(ceil_div(p.rows, kRowsPerBlock)), static_cast<unsigned>(p.n_experts));
    if (pair) grouped_tc_kernel<true><<<grid, kThreads, 0, s>>>(p, xh, perm, offsets);
    else grouped_tc_kernel<false><<<grid, kThreads, 0, s>>>(p, xh, perm, offsets);
    HR_CUDA_LAUNCH_CHECK();
}

}  // namespace hr::cuda
