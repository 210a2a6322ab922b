// Decode matrix-vector products: 16-byte streaming weight loads, dequantized in registers (bf16, f16,
// f32, int8 per-row scale, int4 per-128 group scale), f32 accumulation. The same kernels run the MoE
// experts of a decode step: task p reads its expert id from device memory.
#include <cfloat>

#include <string>

#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.cuh"
#include "backend/cuda/pair_combine.h"
#include "backend/cuda/weight_unpack.cuh"

namespace hr::cuda {
namespace {

constexpr int kRowsPerBlock = 8;  // one warp per row
constexpr int kUnroll = 4;        // 16-byte loads in flight per lane before the first use

struct Task {
    const void* data;
    const void* scales;
    const float* x;  // input row
    float* out;      // output row
    bool valid;
    bool skip;       // the pair's expert is in p.skip_experts (computed on the host)
};

__device__ __forceinline__ Task resolve(const GemvParams& p, const GemvMat& m, int64_t task) {
    Task t{};
    int e = 0;
    int64_t xrow = task;
    if (p.ids != nullptr) {
        e = p.ids[task];
        xrow = p.x_per_pair ? task : task / p.k;
    }
    t.valid = e >= 0 && e < p.n_experts;
    if (!t.valid) e = 0;
    t.skip = t.valid && p.ids != nullptr && ((p.skip_experts >> e) & 1u) != 0;
    t.data = m.data[e];
    t.scales = m.scales[e];
    t.x = p.x + xrow * p.cols;
    t.out = m.out + task * p.rows;
    return t;
}

// grid: x = row blocks, y = groups of NT tasks, z = matrix. Each warp computes R consecutive rows: with
// R > 1 (NT = 1 only) the activation chunk is loaded once for R weight rows, which keeps L1 traffic
// (f32 activations: 4 bytes per weight element) under the weight stream. note: requires
// cols % kPer == 0 and 16-byte aligned weights and activations (checked by the launcher).
template <DType WT, int NT, int R>
__global__ void __launch_bounds__(kRowsPerBlock * kWarp) gemv_kernel(const __grid_constant__ GemvParams p) {
    static_assert(R == 1 || NT == 1, "several rows per warp only for one task per block");
    constexpr int kPer = Fmt<WT>::kPer;
    constexpr int U = R == 1 ? kUnroll : 2;
    const int lane = threadIdx.x % kWarp;
    const int64_t row0 = (static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp) * R;
    if (row0 >= p.rows) return;
    const GemvMat& m = p.mat[blockIdx.z];
    const int64_t t0 = static_cast<int64_t>(blockIdx.y) * NT;
    Task tasks[NT];
#pragma unroll
    for (int j = 0; j < NT; ++j) tasks[j] = resolve(p, m, t0 + j < p.n_tasks ? t0 + j : t0);
    // All tasks of one block share the weight: plain mode has one matrix, pair mode runs NT = 1.
    const int64_t rb = row_bytes<WT>(p.cols);
    const uint8_t* wbase = static_cast<const uint8_t*>(tasks[0].data);
    const int64_t n_chunks = p.cols / kPer;
    const int64_t n_groups = quant::q4_groups(p.cols);
    float acc[R][NT];
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
        for (int j = 0; j < NT; ++j) acc[r][j] = 0.0f;

    for (int64_t base = lane; base < n_chunks; base += kWarp * U) {
        uint4 wv[U][R];
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const int64_t ci = base + u * kWarp;
#pragma unroll
            for (int r = 0; r < R; ++r)
                if (ci < n_chunks && row0 + r < p.rows) wv[u][r] = ld_stream16(wbase + (row0 + r) * rb + ci * 16);
        }
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const int64_t ci = base + u * kWarp;
            if (ci >= n_chunks) break;
#pragma unroll
            for (int j = 0; j < NT; ++j) {
                if (t0 + j >= p.n_tasks) break;
                if constexpr (WT == DType::q4) {
                    XQ32 xq;
                    quantize_x32(tasks[j].x + ci * kPer, xq);
#pragma unroll
                    for (int r = 0; r < R; ++r) {
                        if (row0 + r >= p.rows) break;
                        const float g = f16_bits_to_f32(__ldg(static_cast<const uint16_t*>(tasks[0].scales) +
                                                              (row0 + r) * n_groups + (ci * kPer) / quant::kQ4Group));
                        acc[r][j] = fmaf(static_cast<float>(dot_q4_x32(wv[u][r], xq)), xq.d * g, acc[r][j]);
                    }
                } else {
                    float xs[kPer];
                    load_x_chunk<kPer>(tasks[j].x + ci * kPer, xs);
#pragma unroll
                    for (int r = 0; r < R; ++r) {
                        if (row0 + r >= p.rows) break;
                        float f[kPer];
                        unpack<WT>(wv[u][r], f);
                        float s = 0.0f;
#pragma unroll
                        for (int e = 0; e < kPer; ++e) s = fmaf(f[e], xs[e], s);
                        acc[r][j] += s;
                    }
                }
            }
        }
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
        if (row0 + r >= p.rows) break;
        float rscale = 1.0f;
        if constexpr (WT == DType::q8) rscale = __ldg(static_cast<const float*>(tasks[0].scales) + row0 + r);
#pragma unroll
        for (int j = 0; j < NT; ++j) {
            const float v = warp_sum(acc[r][j]);
            if (lane == 0 && t0 + j < p.n_tasks)
                tasks[j].out[row0 + r] = tasks[j].valid ? v * rscale : __int_as_float(0x7fc00000);
        }
    }
}

// Any shape and alignment: one warp per row, one element at a time. grid: x = row blocks, y = tasks, z = matrix.
__global__ void __launch_bounds__(kRowsPerBlock * kWarp) gemv_scalar_kernel(const __grid_constant__ GemvParams p) {
    const int lane = threadIdx.x % kWarp;
    const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp;
    if (row >= p.rows) return;
    const Task t = resolve(p, p.mat[blockIdx.z], blockIdx.y);
    const Weight w{p.dtype, p.rows, p.cols, t.data, t.scales};
    float acc = 0.0f;
    for (int64_t c = lane; c < p.cols; c += kWarp) acc = fmaf(weight_at(w, row, c), t.x[c], acc);
    acc = warp_sum(acc);
    if (lane == 0) t.out[row] = t.valid ? acc : __int_as_float(0x7fc00000);
}

// Block-K GEMV (one token per task): a block of kBkThreads computes R consecutive rows for KT tasks;
// its threads split the columns (thread i takes 16-byte chunks i, i + kBkThreads, ...), so every
// thread issues all its weight loads for one step at once (kBkUnroll chunks x KT tasks x R rows) and
// the reduction goes through shared memory. Compared with one warp per row this keeps more bytes in
// flight per thread and starts every row's loads at once, which is what short rows (4096 columns:
// 2 chunks per thread) need to reach the bandwidth. The activation chunk is loaded once per task for
// R rows. Two fused modes for the MoE decode step:
// - silu pair (KT = 2 matrices, w1 and w3, of one pair): out = silu(W1 x) * (W3 x), the expert's hidden;
// - combine (KT = the k pairs of one token, w2): out = sum_j w_j * (W2_ej h_j), the weighted sum of
//   the token's experts.
// So the whole MoE of a decode token is two launches.
constexpr int kBkThreads = 128;
constexpr int kBkUnroll = 2;
// int8: at most 128 registers, so four blocks (16 warps) fit a multiprocessor instead of three: more
// loads in flight (ncu on an H200: the fused MoE launches were latency-bound at 16% occupancy). The other
// formats would spill under that cap.

template <DType WT, int R, int KT>
__global__ void __launch_bounds__(kBkThreads, WT == DType::q8 || WT == DType::q4 ? 4 : 1) gemv_bk_kernel(const __grid_constant__ GemvParams p) {
    constexpr int kPer = Fmt<WT>::kPer;
    constexpr int NW = kBkThreads / kWarp;
    __shared__ float red[NW][KT * R];
    const int tid = threadIdx.x, lane = tid % kWarp, warp = tid / kWarp;
    // Multi-shape mode (q, k and v of one token in one launch): blockIdx.x runs over the row blocks of
    // matrix 0, then matrix 1, ...; otherwise blockIdx.z picks the matrix.
    int64_t bx = blockIdx.x, rows = p.rows;
    int mi = static_cast<int>(blockIdx.z);
    if (p.multi_shape) {
        mi = 0;
        while (mi + 1 < p.n_mat && bx >= p.mat_blocks[mi]) bx -= p.mat_blocks[mi++];
        rows = p.mat_rows[mi];
    }
    const int64_t row0 = bx * R;
    const GemvMat& m = p.mat[mi];
    const bool combine = p.combine_w != nullptr;
    // Tasks of this block: combine mode, the k pairs of token blockIdx.y; silu pair, task blockIdx.y in
    // matrices 0 and 1; else task blockIdx.y of matrix blockIdx.z.
    Task tasks[KT];
#pragma unroll
    for (int j = 0; j < KT; ++j) {
        if (p.silu_pair) tasks[j] = resolve(p, p.mat[j], blockIdx.y);
        else tasks[j] = resolve(p, m, combine ? static_cast<int64_t>(blockIdx.y) * KT + j : blockIdx.y);
    }
    // Pairs computed on the host (p.skip_experts): a silu-pair block of one has nothing to do; in combine
    // mode its loads and its term are left out (block-uniform branches), and with every pair of the token
    // skipped the loop is empty and the row is written as 0 for the host's sum to be added to.
    bool any_live = false;
#pragma unroll
    for (int j = 0; j < KT; ++j) any_live = any_live || !tasks[j].skip;
    if (!any_live && p.silu_pair) return;
    const int64_t rb = row_bytes<WT>(p.cols);
    const int64_t n_chunks = any_live ? p.cols / kPer : 0;
    const int64_t n_groups = quant::q4_groups(p.cols);
    float acc[KT][R];
#pragma unroll
    for (int j = 0; j < KT; ++j)
#pragma unroll
        for (int r = 0; r < R; ++r) acc[j][r] = 0.0f;

    // int4 chunks hold 32 weights (twice int8's): one chunk per row in flight keeps as many weights in
    // flight as int8's two, in registers that do not spill under the 128-register cap.
    constexpr int U = WT == DType::q4 ? 1 : kBkUnroll;
    for (int64_t base = tid; base < n_chunks; base += kBkThreads * U) {
        uint4 wv[U][KT][R];
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const int64_t ci = base + u * kBkThreads;
#pragma unroll
            for (int j = 0; j < KT; ++j)
#pragma unroll
                for (int r = 0; r < R; ++r)
                    if (ci < n_chunks && row0 + r < rows && !tasks[j].skip)
                        wv[u][j][r] = ld_stream16(static_cast<const uint8_t*>(tasks[j].data) + (row0 + r) * rb + ci * 16);
        }
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const int64_t ci = base + u * kBkThreads;
            if (ci >= n_chunks) break;
            XQ32 xq;  // q4 only; silu pair mode: w1 and w3 read the same activation row, quantized once
#pragma unroll
            for (int j = 0; j < KT; ++j) {
                if (tasks[j].skip) continue;  // block-uniform
                if constexpr (WT == DType::q4) {
                    if (j == 0 || !p.silu_pair) quantize_x32(tasks[j].x + ci * kPer, xq);
#pragma unroll
                    for (int r = 0; r < R; ++r) {
                        if (row0 + r >= rows) break;
                        const float g = f16_bits_to_f32(__ldg(static_cast<const uint16_t*>(tasks[j].scales) +
                                                              (row0 + r) * n_groups + (ci * kPer) / quant::kQ4Group));
                        acc[j][r] = fmaf(static_cast<float>(dot_q4_x32(wv[u][j][r], xq)), xq.d * g, acc[j][r]);
                    }
                } else {
                    float xs[kPer];
                    load_x_chunk<kPer>(tasks[j].x + ci * kPer, xs);
#pragma unroll
                    for (int r = 0; r < R; ++r) {
                        if (row0 + r >= rows) break;
                        float f[kPer];
                        unpack<WT>(wv[u][j][r], f);
                        float s = 0.0f;
#pragma unroll
                        for (int e = 0; e < kPer; ++e) s = fmaf(f[e], xs[e], s);
                        acc[j][r] += s;
                    }
                }
            }
        }
    }
#pragma unroll
    for (int j = 0; j < KT; ++j)
#pragma unroll
        for (int r = 0; r < R; ++r) {
            const float v = warp_sum(acc[j][r]);
            if (lane == 0) red[warp][j * R + r] = v;
        }
    __syncthreads();
    if (tid >= R) return;
    const int64_t row = row0 + tid;
    if (row >= rows) return;
    float vals[KT];
    bool skipped[KT];
    bool all_valid = true;
#pragma unroll
    for (int j = 0; j < KT; ++j) {
        float v = 0.0f;
#pragma unroll
        for (int w = 0; w < NW; ++w) v += red[w][j * R + tid];
        if constexpr (WT == DType::q8)
            if (!tasks[j].skip) v *= __ldg(static_cast<const float*>(tasks[j].scales) + row);
        all_valid = all_valid && tasks[j].valid;
        vals[j] = v;
        skipped[j] = tasks[j].skip;
    }
    // Plain mode: KT = 1, the row itself; combine: the token's live pairs weighted (pair_combine.h).
    float total = vals[KT - 1];
    if (combine) total = combine_pairs<KT>(p.combine_w + static_cast<int64_t>(blockIdx.y) * KT, vals, skipped);
    if constexpr (KT == 2) {
        // The same expression as silu_mul_kernel (ops.cu), so the fused and unfused paths agree.
        if (p.silu_pair) total = vals[0] / (1.0f + expf(-vals[0])) * vals[1];
    }
    float* out = combine ? m.out + static_cast<int64_t>(blockIdx.y) * rows : tasks[0].out;
    out[row] = all_valid ? total : __int_as_float(0x7fc00000);
}

template <DType WT>
void launch_block_k(cudaStream_t s, const GemvParams& p) {
    const dim3 block(kBkThreads);
    constexpr int R2 = 4;  // two tasks per block: half the rows keeps the loads in flight per thread
    if (p.silu_pair) {
        const dim3 grid(static_cast<unsigned>(ceil_div(p.rows, R2)), static_cast<unsigned>(p.n_tasks), 1);
        gemv_bk_kernel<WT, R2, 2><<<grid, block, 0, s>>>(p);
    } else if (p.combine_w != nullptr) {
        const dim3 grid(static_cast<unsigned>(ceil_div(p.rows, R2)), static_cast<unsigned>(p.n_tasks / p.k),
                        static_cast<unsigned>(p.n_mat));
        switch (p.k) {
            case 1: gemv_bk_kernel<WT, R2, 1><<<grid, block, 0, s>>>(p); break;
            case 2: gemv_bk_kernel<WT, R2, 2><<<grid, block, 0, s>>>(p); break;
            default: HR_CHECK_MSG(false, "gemv: combine mode supports k <= 2 (checked by the caller)");
        }
    } else {
        constexpr int R = 8;
        const dim3 grid(static_cast<unsigned>(ceil_div(p.rows, R)), static_cast<unsigned>(p.n_tasks),
                        static_cast<unsigned>(p.n_mat));
        gemv_bk_kernel<WT, R, 1><<<grid, block, 0, s>>>(p);
    }
    HR_CUDA_LAUNCH_CHECK();
}

template <DType WT>
void launch_multi(cudaStream_t s, const GemvParams& p) {
    constexpr int R = 8;
    int64_t blocks = 0;
    for (int i = 0; i < p.n_mat; ++i) blocks += p.mat_blocks[i];
    gemv_bk_kernel<WT, R, 1><<<dim3(static_cast<unsigned>(blocks), 1, 1), dim3(kBkThreads), 0, s>>>(p);
    HR_CUDA_LAUNCH_CHECK();
}

template <DType WT>
void launch_fast(cudaStream_t s, const GemvParams& p) {
    // One token per weight read (decode at batch 1, MoE pairs, combine mode): the block-K kernel.
    if (p.block_k && (p.ids != nullptr || p.n_tasks == 1)) {
        launch_block_k<WT>(s, p);
        return;
    }
    HR_CHECK_MSG(p.combine_w == nullptr && !p.silu_pair, "gemv: fused modes need the block-K kernel");
    const dim3 block(kRowsPerBlock * kWarp);
    // Plain mode batches up to 8 tokens per weight read; pair mode has a weight per task.
    int nt = 1;
    if (p.ids == nullptr) nt = p.n_tasks <= 1 ? 1 : p.n_tasks <= 2 ? 2 : p.n_tasks <= 4 ? 4 : 8;
    const unsigned gy = static_cast<unsigned>(ceil_div(p.n_tasks, nt)), gz = static_cast<unsigned>(p.n_mat);
    // Four rows per warp when that still leaves about two blocks per multiprocessor (132 on H100/H200).
    const bool multi_row = nt == 1 && ceil_div(p.rows, kRowsPerBlock * 4) * gy * gz >= 2 * 132;
    if (multi_row) {
        const dim3 grid(static_cast<unsigned>(ceil_div(p.rows, kRowsPerBlock * 4)), gy, gz);
        gemv_kernel<WT, 1, 4><<<grid, block, 0, s>>>(p);
        HR_CUDA_LAUNCH_CHECK();
        return;
    }
    const dim3 grid(static_cast<unsigned>(ceil_div(p.rows, kRowsPerBlock)), gy, gz);
    switch (nt) {
        case 1: gemv_kernel<WT, 1, 1><<<grid, block, 0, s>>>(p); break;
        case 2: gemv_kernel<WT, 2, 1><<<grid, block, 0, s>>>(p); break;
        case 4: gemv_kernel<WT, 4, 1><<<grid, block, 0, s>>>(p); break;
        default: gemv_kernel<WT, 8, 1><<<grid, block, 0, s>>>(p); break;
    }
    HR_CUDA_LAUNCH_CHECK();
}


}  // namespace

bool gemv_fused_supported(const GemvParams& p) {
    const int per = per_chunk(p.dtype);
    bool ok = p.block_k && per > 0 && p.cols % per == 0 && aligned16(p.x) && p.ids != nullptr;
    for (int m = 0; m < p.n_mat && ok; ++m)
        for (int e = 0; e < p.n_experts; ++e) ok = ok && aligned16(p.mat[m].data[e]);
    if (p.silu_pair) return ok && p.n_mat == 2 && p.combine_w == nullptr;
    return ok && p.combine_w != nullptr && p.k >= 1 && p.k <= 2 && p.n_mat == 1 && p.x_per_pair;
}

bool launch_gemv_multi(cudaStream_t s, GemvParams p) {
    if (launch_gemv_tc_multi(s, p)) return true;
    const int per = per_chunk(p.dtype);
    bool ok = p.block_k && per > 0 && p.cols % per == 0 && aligned16(p.x) && p.n_tasks == 1 && p.ids == nullptr &&
              p.n_experts == 1 && p.n_mat >= 1 && p.n_mat <= kMaxMats;
    for (int i = 0; i < p.n_mat && ok; ++i) ok = aligned16(p.mat[i].data[0]) && p.mat_rows[i] > 0;
    if (!ok) return false;
    p.multi_shape = true;
    for (int i = 0; i < p.n_mat; ++i) p.mat_blocks[i] = ceil_div(p.mat_rows[i], 8);
    switch (p.dtype) {
        case DType::f32: launch_multi<DType::f32>(s, p); break;
        case DType::f16: launch_multi<DType::f16>(s, p); break;
        case DType::bf16: launch_multi<DType::bf16>(s, p); break;
        case DType::q8: launch_multi<DType::q8>(s, p); break;
        case DType::q4: launch_multi<DType::q4>(s, p); break;
        default: return false;
    }
    return true;
}

void launch_gemv(cudaStream_t s, const GemvParams& p) {
    if (p.n_tasks == 0 || p.rows == 0) return;
    HR_CHECK_MSG(p.n_experts >= 1 && p.n_experts <= kMaxExperts && p.n_mat >= 1 && p.n_mat <= 2 && !p.multi_shape,
                 "gemv: expert or matrix count out of range");
    HR_CHECK_MSG(p.skip_experts == 0 || gemv_fused_supported(p),
                 "gemv: skipped experts need the fused silu-pair / combine modes (checked by the caller)");
    if (launch_gemv_tc(s, p)) return;  // int4 / int8 on the tensor cores (gemv_tc.cu) where it applies
    const int per = per_chunk(p.dtype);
    HR_CHECK_MSG(per > 0, std::string("gemv: unsupported weight dtype ") + std::string(dtype_name(p.dtype)));
    bool fast = p.cols % per == 0 && aligned16(p.x);
    for (int m = 0; m < p.n_mat && fast; ++m)
        for (int e = 0; e < p.n_experts; ++e) fast = fast && aligned16(p.mat[m].data[e]);
    HR_CHECK_MSG(fast || (p.combine_w == nullptr && !p.silu_pair),
                 "gemv: fused modes need aligned activations and cols a multiple of the 16-byte chunk");
    if (!fast) {
        const dim3 grid(static_cast<unsigned>(ceil_div(p.rows, kRowsPerBlock)), static_cast<unsigned>(p.n_tasks),
                        static_cast<unsigned>(p.n_mat));
        gemv_scalar_kernel<<<grid, kRowsPerBlock * kWarp, 0, s>>>(p);
        HR_CUDA_LAUNCH_CHECK();
        return;
    }
    switch (p.dtype) {
        case DType::f32: launch_fast<DType::f32>(s, p); break;
        case DType::f16: launch_fast<DType::f16>(s, p); break;
        case DType::bf16: launch_fast<DType::bf16>(s, p); break;
        case DType::q8: launch_fast<DType::q8>(s, p); break;
        case DType::q4: launch_fast<DType::q4>(s, p); break;
        default: break;
    }
}

}  // namespace hr::cuda
