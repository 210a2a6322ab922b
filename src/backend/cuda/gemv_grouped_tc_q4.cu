// MoE experts of a batch of decode tokens on the tensor cores, for int4 weights (one f16 scale per row
// and group of kQ4Group = 128 columns). The same scheme as the int8 kernel (gemv_grouped_tc.cu): pairs
// grouped by expert on the device, one block per (64 rows, expert), pairs in tiles of 16 (two mma n8
// tiles), activations converted to f16 once per step and staged in shared memory.
//
// Why a separate kernel: the dp4a grouped kernel (gemv_grouped.cu) re-quantizes every pair's activations
// for every block of 2-4 rows, which made 32-sequence int4 decode instruction-bound (280 tok/s on an H100
// against 1296 for int8). Here a warp step covers one scale group: each lane loads 16 bytes (32 nibbles)
// of two rows, turns them into f16 with two logic ops per pair of weights (nibble n -> the f16 1024 + n,
// minus 1032 gives q = n - 8 exactly) and runs eight m16n8k16 products; the group's f32 partial sums are
// scaled once per group.
//
// k order: the mma's k index is a permutation of the real columns, the same for weights and activations,
// so every dot product is unchanged. In word i (8 nibbles, real columns 8i .. 8i + 7 of the lane's 32),
// k-tile 2i takes columns (8i, 8i+4) as fragment k (2c, 2c+1) and (8i+1, 8i+5) as (2c+8, 2c+9); k-tile
// 2i + 1 takes (8i+2, 8i+6) and (8i+3, 8i+7): exactly what masking the word with 0x000F000F after a shift
// of 0, 4, 8, 12 bits yields. The activations are stored in shared memory in the matching order
// (0, 4, 1, 5, 2, 6, 3, 7 within each 8 columns) and with an XOR swizzle of their 16-byte chunks so that
// the eight lanes of a quarter-warp read eight different bank groups.
#include <cfloat>

#include <string>

#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.cuh"
#include "backend/cuda/mma.cuh"
#include "backend/cuda/weight_unpack.cuh"
#include "quant/formats.h"

namespace hr::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * kWarp;
constexpr int kRowsPerBlock = kWarps * 16;  // one m16 tile per warp
constexpr int kN8 = 2;                      // n8 tiles of pairs per pass
constexpr int kPairs = kN8 * 8;
constexpr int kStep = quant::kQ4Group;      // columns per warp step: one scale group, 32 per lane
static_assert(kStep == 128, "the lane layout below assumes 128-column scale groups");
constexpr int kXChunk = 1024;               // activation columns staged at a time (a multiple of kStep)
constexpr int kChunks = kXChunk / 8;        // 16-byte chunks of a staged row

// Physical 16-byte chunk of logical chunk ch in staged row r. Rows are 2048 bytes apart (0 mod 128), so a
// chunk's bank group is its index mod 8. In one read, lane (g, c) of a quarter-warp (g in {0, 1}, c in
// 0..3) wants chunk 16s + 4c + q: without the swizzle c = 0 and c = 2 (and 1, 3) collide. XOR 2 on the
// upper half of each 16-chunk step and XOR 1 on odd rows give the eight lanes eight distinct groups.
__device__ __forceinline__ int swizzle(int r, int ch) { return ch ^ (((ch >> 3) & 1) << 1) ^ (r & 1); }

// Halves 0..7 of v reordered as 0, 4, 1, 5, 2, 6, 3, 7 (the k order of the weight fragments).
__device__ __forceinline__ uint4 interleave_halves(const uint4& v) {
    return make_uint4(__byte_perm(v.x, v.z, 0x5410), __byte_perm(v.x, v.z, 0x7632), __byte_perm(v.y, v.w, 0x5410),
                      __byte_perm(v.y, v.w, 0x7632));
}

// Nibbles b and b + 4 of w (b = shift / 4) as the exact f16x2 (q_b, q_{b+4}), q = nibble - 8.
__device__ __forceinline__ uint32_t nib_pair_to_f16x2(uint32_t w, int shift) {
    const uint32_t bits = ((w >> shift) & 0x000F000Fu) | 0x64006400u;  // 1024 + n in each half
    const __half2 v = __hsub2(*reinterpret_cast<const __half2*>(&bits), __half2half2(__ushort_as_half(0x6408)));
    return *reinterpret_cast<const uint32_t*>(&v);
}

// grid: x = blocks of 64 rows, y = expert. PAIR: w1 and w3 (mat 0, 1) of the pair's token row
// xh[pair / k], out[pair] = silu(W1 x) * (W3 x); else w2 (mat 0) of row xh[pair], out[pair] = W2 x.
template <bool PAIR>
__global__ void __launch_bounds__(kThreads)
    grouped_tc_q4_kernel(const __grid_constant__ GemvParams p, const __half* xh, const int32_t* perm,
                         const int32_t* offsets) {
    constexpr int M = PAIR ? 2 : 1;
    __shared__ __align__(16) __half xs[kPairs][kXChunk];
    const int tid = threadIdx.x, lane = tid % kWarp, warp = tid / kWarp;
    const int g = lane / 4, c = lane % 4;
    const int e = static_cast<int>(blockIdx.y);
    const int32_t c0 = offsets[e], c1 = offsets[e + 1];
    if (c0 >= c1) return;  // block-uniform
    const int64_t rbase = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + warp * 16;
    const bool active = rbase < p.rows;  // whole warps (rows % 16 == 0, checked by the launcher)
    const int64_t K = p.cols;
    const int64_t n_groups = K / kStep;
    const uint8_t* wrow[M][2];
    const uint16_t* srow[M][2];
#pragma unroll
    for (int m = 0; m < M; ++m) {
        const uint8_t* base = static_cast<const uint8_t*>(p.mat[m].data[e]);
        const uint16_t* sbase = static_cast<const uint16_t*>(p.mat[m].scales[e]);
        const int64_t r = active ? rbase : 0;
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            wrow[m][h] = base + (r + g + 8 * h) * (K / 2) + 16 * c;
            srow[m][h] = sbase + (r + g + 8 * h) * n_groups;
        }
    }

    for (int32_t tile = c0; tile < c1; tile += kPairs) {
        const int nt = min(kPairs, c1 - tile);
        float acc[M][kN8][4];
#pragma unroll
        for (int m = 0; m < M; ++m)
#pragma unroll
            for (int j = 0; j < kN8; ++j) acc[m][j][0] = acc[m][j][1] = acc[m][j][2] = acc[m][j][3] = 0.0f;

        for (int64_t kc = 0; kc < K; kc += kXChunk) {
            const int64_t kw = min(static_cast<int64_t>(kXChunk), K - kc);  // a multiple of kStep
            __syncthreads();  // the previous chunk is no longer read
            for (int idx = tid; idx < kPairs * kChunks; idx += kThreads) {
                const int j = idx / kChunks, ch = idx % kChunks;
                uint4 v = make_uint4(0, 0, 0, 0);
                if (ch * 8 < kw) {
                    const int32_t pr = perm[tile + min(j, nt - 1)];
                    v = interleave_halves(__ldg(reinterpret_cast<const uint4*>(
                        xh + static_cast<int64_t>(PAIR ? pr / p.k : pr) * K + kc + ch * 8)));
                }
                *reinterpret_cast<uint4*>(&xs[j][swizzle(j, ch) * 8]) = v;
            }
            __syncthreads();
            if (!active) continue;
            for (int64_t k0 = 0; k0 < kw; k0 += kStep) {
                const int64_t grp = (kc + k0) / kStep;
                uint4 wv[M][2];
                float sc[M][2];
#pragma unroll
                for (int m = 0; m < M; ++m)
#pragma unroll
                    for (int h = 0; h < 2; ++h) {
                        wv[m][h] = ld_stream16(wrow[m][h] + (kc + k0) / 2);
                        sc[m][h] = f16_bits_to_f32(__ldg(srow[m][h] + grp));
                    }
                float part[M][kN8][4];
#pragma unroll
                for (int m = 0; m < M; ++m)
#pragma unroll
                    for (int j = 0; j < kN8; ++j) part[m][j][0] = part[m][j][1] = part[m][j][2] = part[m][j][3] = 0.0f;
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    // B: token g of n8 tile j, the 8 columns of word i, already in fragment order.
                    uint4 xv[kN8];
#pragma unroll
                    for (int j = 0; j < kN8; ++j) {
                        const int row = j * 8 + g;
                        xv[j] = *reinterpret_cast<const uint4*>(
                            &xs[row][swizzle(row, static_cast<int>(k0 / 8) + 4 * c + i) * 8]);
                    }
#pragma unroll
                    for (int m = 0; m < M; ++m) {
                        const uint32_t w0[4] = {wv[m][0].x, wv[m][0].y, wv[m][0].z, wv[m][0].w};
                        const uint32_t w1[4] = {wv[m][1].x, wv[m][1].y, wv[m][1].z, wv[m][1].w};
#pragma unroll
                        for (int half = 0; half < 2; ++half) {  // k-tiles 2i, 2i + 1
                            uint32_t af[4];
                            af[0] = nib_pair_to_f16x2(w0[i], 8 * half);      // row g, fragment k 2c, 2c + 1
                            af[1] = nib_pair_to_f16x2(w1[i], 8 * half);      // row g + 8
                            af[2] = nib_pair_to_f16x2(w0[i], 8 * half + 4);  // row g, fragment k 2c + 8, 2c + 9
                            af[3] = nib_pair_to_f16x2(w1[i], 8 * half + 4);  // row g + 8
#pragma unroll
                            for (int j = 0; j < kN8; ++j) {
                                const uint32_t words[4] = {xv[j].x, xv[j].y, xv[j].z, xv[j].w};
                                const uint32_t bf[2] = {words[2 * half], words[2 * half + 1]};
                                mma_f16(part[m][j], af, bf);
                            }
                        }
                    }
                }
#pragma unroll
                for (int m = 0; m < M; ++m)
#pragma unroll
                    for (int j = 0; j < kN8; ++j) {
                        acc[m][j][0] = fmaf(part[m][j][0], sc[m][0], acc[m][j][0]);
                        acc[m][j][1] = fmaf(part[m][j][1], sc[m][0], acc[m][j][1]);
                        acc[m][j][2] = fmaf(part[m][j][2], sc[m][1], acc[m][j][2]);
                        acc[m][j][3] = fmaf(part[m][j][3], sc[m][1], acc[m][j][3]);
                    }
            }
        }
        if (!active) continue;
        // Accumulator (row g or g + 8, pair column 2c + i of n8 tile j).
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int64_t row = rbase + g + 8 * h;
#pragma unroll
            for (int j = 0; j < kN8; ++j)
#pragma unroll
                for (int i = 0; i < 2; ++i) {
                    const int col = j * 8 + 2 * c + i;
                    if (col >= nt) continue;
                    const int32_t pr = perm[tile + col];
                    float v = acc[0][j][2 * h + i];
                    if constexpr (PAIR) {
                        const float u = acc[1][j][2 * h + i];
                        v = v / (1.0f + expf(-v)) * u;  // the same expression as silu_mul_kernel (ops.cu)
                    }
                    p.mat[0].out[static_cast<int64_t>(pr) * p.rows + row] = v;
                }
        }
    }
}

}  // namespace

bool gemv_grouped_tc_q4_supported(const GemvParams& p) {
    bool ok = p.dtype == DType::q4 && p.cols % kStep == 0 && p.rows % 16 == 0 && p.n_experts >= 1 &&
              p.n_experts <= kMaxExperts;
    // Row starts are 16-byte aligned when the expert's data is (cols / 2 is a multiple of 64 bytes).
    for (int m = 0; m < p.n_mat && ok; ++m)
        for (int e = 0; e < p.n_experts; ++e) ok = ok && aligned16(p.mat[m].data[e]);
    return ok;
}

void launch_gemv_grouped_tc_q4(cudaStream_t s, const GemvParams& p, const __half* xh, const int32_t* perm,
                               const int32_t* offsets, bool pair) {
    HR_CHECK_MSG(gemv_grouped_tc_q4_supported(p) && aligned16(xh) && p.n_mat == (pair ? 2 : 1),
                 "gemv_grouped_tc_q4: unsupported shape (check gemv_grouped_tc_q4_supported)");
    const dim3 grid(static_cast<unsigned>(ceil_div(p.rows, kRowsPerBlock)), static_cast<unsigned>(p.n_experts));
    if (pair) grouped_tc_q4_kernel<true><<<grid, kThreads, 0, s>>>(p, xh, perm, offsets);
    else grouped_tc_q4_kernel<false><<<grid, kThreads, 0, s>>>(p, xh, perm, offsets);
    HR_CUDA_LAUNCH_CHECK();
}

}  // namespace hr::cuda
