// Decode GEMVs on int4 and int8 weights through the tensor cores (mma.sync m16n8k16, f16 operands, f32
// accumulators): one token (or up to 8 tokens of a dense matmul) times a quantized matrix, and the two
// fused MoE launches of a decode token (w1/w3 with silu(gate) * up, w2 with the weighted sum of the
// token's experts).
//
// Why: the dp4a kernels (gemv.cu, XQ32) re-quantize the activations to int8 in every block and keep one
// 16-byte load per row in flight per thread; the int4 decode step reached 34% of the copy bandwidth on an
// H100. Here the nibbles become exact f16 with two logic ops and one half2 op per pair (tc_frag.h, the
// Marlin trick), the tensor cores do the multiply-adds in f32 (one mma per 8 weights of a lane; a
// single-token product wastes 7 of the 8 columns, which costs nothing: the kernel is bound by memory),
// and the activations are rounded to f16 once per lane and step (no shared memory for weights or
// activations, no int8 activation error).
//
// Layout: a block of kWarps warps owns 16 rows (one m16 tile) of M matrices (silu: w1 and w3 of the pair's
// expert; combine: w2 of each of the token's k <= 2 experts; else 1). Its warps split the columns in
// steps of 64 bytes per row (int4: 128 columns = one scale group; int8: 64 columns): warp w takes steps
// w, w + kWarps, ... Lane (g, c) loads 16 bytes of rows g and g + 8 per step (4 lanes per row: 64
// contiguous bytes), so one 16-byte ld.global.nc.L1::no_allocate feeds 2 (int8: 1) k16 tiles of the mma.
// Loads go out U steps at a time, and the next batch is issued before the current one is computed
// (register ping-pong), so every warp keeps 4 to 8 loads of 16 bytes per lane in flight all the time.
// The warps' partial sums meet in shared memory once at the end.
//
// B columns: plain mode puts token g in column g (up to 8 tokens read each weight once); the other
// modes give every column the same activations, so any lane holds the result.
#include <string>

#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.cuh"
#include "backend/cuda/mma.cuh"
#include "backend/cuda/pair_combine.h"
#include "backend/cuda/tc_frag.h"
#include "backend/cuda/weight_unpack.cuh"
#include "quant/formats.h"

namespace hr::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * kWarp;
constexpr int kTileRows = 16;
constexpr int kStepBytes = 64;  // bytes of a row per warp step (4 lanes x 16)
constexpr int kMaxTokens = 8;   // plain mode: tokens per launch (the mma's n)

template <DType WT>
struct Tc;
template <>
struct Tc<DType::q4> {
    static constexpr int kStepCols = tcfrag::kQ4StepCols;
    static constexpr int kLaneCols = tcfrag::kQ4LaneCols;
    static constexpr int kTiles = tcfrag::kQ4Tiles;
};
template <>
struct Tc<DType::q8> {
    static constexpr int kStepCols = tcfrag::kQ8StepCols;
    static constexpr int kLaneCols = tcfrag::kQ8LaneCols;
    static constexpr int kTiles = tcfrag::kQ8Tiles;
};
static_assert(tcfrag::kQ4StepCols == quant::kQ4Group, "an int4 step is one scale group");
static_assert(tcfrag::kQ4StepCols / 2 == kStepBytes && tcfrag::kQ8StepCols == kStepBytes, "64 bytes per step");

enum class Mode { plain, multi, silu, combine };

// The lane's activations of one step (kLaneCols f32 at p, 16-byte aligned) as B fragments.
template <DType WT>
__device__ __forceinline__ void load_b(const float* p, uint32_t (&bf)[Tc<WT>::kTiles][2]) {
    constexpr int L = Tc<WT>::kLaneCols;
    float xs[L];
    const float4* v = reinterpret_cast<const float4*>(p);
#pragma unroll
    for (int q = 0; q < L / 4; ++q) {
        const float4 f = __ldg(v + q);
        xs[4 * q] = f.x;
        xs[4 * q + 1] = f.y;
        xs[4 * q + 2] = f.z;
        xs[4 * q + 3] = f.w;
    }
    if constexpr (WT == DType::q4) tcfrag::q4_b_frags(xs, bf);
    else tcfrag::q8_b_frags(xs, bf);
}

// acc (16 x 8) += the step's weights of rows g (wg) and g + 8 (wg8) x B.
template <DType WT>
__device__ __forceinline__ void mma_step(float* acc, const uint4& wg, const uint4& wg8,
                                         const uint32_t (&bf)[Tc<WT>::kTiles][2]) {
    const uint32_t a[4] = {wg.x, wg.y, wg.z, wg.w};
    const uint32_t b[4] = {wg8.x, wg8.y, wg8.z, wg8.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        if constexpr (WT == DType::q4) {
            uint32_t af[2][4];
            tcfrag::q4_a_frags(a[i], b[i], af);
            mma_f16(acc, af[0], bf[2 * i]);
            mma_f16(acc, af[1], bf[2 * i + 1]);
        } else {
            uint32_t af[4];
            tcfrag::q8_a_frag(a[i], b[i], af);
            mma_f16(acc, af, bf[i]);
        }
    }
}

// grid: x = 16-row tiles (multi: of matrix 0, then 1, ...), y = pair (silu) or token (combine).
// M: matrices per block (silu 2, combine k, else 1). Requires cols % kStepCols == 0, 16-byte aligned
// weights and activations (checked by the launcher); any row count.
template <DType WT, Mode MODE, int M>
__global__ void __launch_bounds__(kThreads, 2) gemv_tc_kernel(const __grid_constant__ GemvParams p) {
    constexpr int kStep = Tc<WT>::kStepCols;
    constexpr int kT = Tc<WT>::kTiles;
    constexpr bool kShareX = MODE != Mode::combine;  // one activation row (per lane) for all M matrices
    // Steps per load batch: 8 (int4: 4) loads of 16 bytes per lane, the most that fit 128 registers with
    // the other batch in flight (ptxas -v: no spills).
    constexpr int U = (M == 2 ? 2 : 4) / (WT == DType::q4 ? 2 : 1);
    constexpr bool kQ4 = WT == DType::q4;
    __shared__ float red[M][kWarps][kTileRows][8];
    const int tid = threadIdx.x, lane = tid % kWarp, warp = tid / kWarp;
    const int g = lane / 4, c = lane % 4;

    int64_t tile = blockIdx.x, rows = p.rows;
    int mi = 0;
    if constexpr (MODE == Mode::multi) {
        while (mi + 1 < p.n_mat && tile >= p.mat_blocks[mi]) tile -= p.mat_blocks[mi++];
        rows = p.mat_rows[mi];
    }
    const int64_t row0 = tile * kTileRows;
    const int64_t K = p.cols;
    const int64_t rb = kQ4 ? K / 2 : K;
    const int64_t n_steps = K / kStep;  // int4: also the scale groups per row
    const int ntok = MODE == Mode::plain ? static_cast<int>(p.n_tasks) : 1;

    // Rows g and g + 8 of the tile, clamped into the matrix (a short last tile loads real rows and stores none).
    int64_t rowc[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) rowc[h] = min(row0 + g + 8 * h, rows - 1);

    const uint8_t* wrow[M][2];
    const uint16_t* srow[M][2];  // int4 group scales of rows g, g + 8
    const float* qscale[M];      // int8 row scales [rows]
    const float* xrow[M];        // the lane's activations: row start + 32c (int4) or 16c (int8)
    bool skip[M];                // the pair's expert is computed on the host (p.skip_experts)
    bool valid = true;
#pragma unroll
    for (int m = 0; m < M; ++m) {
        int e = 0;
        int64_t xr = 0;
        const GemvMat* mat = &p.mat[mi];
        if constexpr (MODE == Mode::silu) {
            const int64_t pair = blockIdx.y;
            e = p.ids[pair];
            xr = pair / p.k;
            mat = &p.mat[m];
        } else if constexpr (MODE == Mode::combine) {
            const int64_t pair = static_cast<int64_t>(blockIdx.y) * M + m;
            e = p.ids[pair];
            xr = pair;
        } else if constexpr (MODE == Mode::plain) {
            xr = min(g, ntok - 1);  // B column g = token g; columns past the last token repeat it
        }
        const bool in_range = e >= 0 && e < p.n_experts;
        skip[m] = (MODE == Mode::silu || MODE == Mode::combine) && in_range && ((p.skip_experts >> e) & 1u) != 0;
        if (!in_range) {
            valid = false;
            e = 0;
        }
        const uint8_t* base = static_cast<const uint8_t*>(mat->data[e]);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            wrow[m][h] = base + rowc[h] * rb + 16 * c;
            srow[m][h] = static_cast<const uint16_t*>(mat->scales[e]) + rowc[h] * n_steps;
        }
        qscale[m] = static_cast<const float*>(mat->scales[e]);
        xrow[m] = p.x + xr * K + c * Tc<WT>::kLaneCols;
    }

    // Pairs computed on the host (p.skip_experts; block-uniform): a silu block of one returns at once; in
    // combine mode its loads and term are left out, and with all of the token's pairs skipped no step runs
    // and the row is written as 0 for the host's sum to be added to.
    bool any_live = false;
#pragma unroll
    for (int m = 0; m < M; ++m) any_live = any_live || !skip[m];
    if (MODE == Mode::silu && !any_live) return;
    const int64_t steps_end = any_live ? n_steps : 0;

    float acc[M][4];
#pragma unroll
    for (int m = 0; m < M; ++m) acc[m][0] = acc[m][1] = acc[m][2] = acc[m][3] = 0.0f;

    constexpr int64_t kStride = static_cast<int64_t>(kWarps) * U;  // steps between this warp's batches
    uint4 wa[U][M][2], wb[U][M][2];
    uint32_t sa[U][M][2], sb[U][M][2];  // int4 scales (f16 bits) travel with their weights

    auto load = [&](int64_t s0, uint4 (&w)[U][M][2], uint32_t (&sc)[U][M][2]) {
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const int64_t s = s0 + u * kWarps;
            if (s < steps_end) {
#pragma unroll
                for (int m = 0; m < M; ++m)
#pragma unroll
                    for (int h = 0; h < 2; ++h) {
                        if (skip[m]) continue;
                        w[u][m][h] = ld_stream16(wrow[m][h] + s * kStepBytes);
                        if constexpr (kQ4) sc[u][m][h] = __ldg(srow[m][h] + s);
                    }
            }
        }
    };
    auto compute = [&](int64_t s0, const uint4 (&w)[U][M][2], const uint32_t (&sc)[U][M][2]) {
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const int64_t s = s0 + u * kWarps;
            if (s >= steps_end) break;  // warp-uniform
            uint32_t bf[kT][2];
            if constexpr (kShareX) load_b<WT>(xrow[0] + s * kStep, bf);
#pragma unroll
            for (int m = 0; m < M; ++m) {
                if (skip[m]) continue;  // block-uniform
                if constexpr (!kShareX) load_b<WT>(xrow[m] + s * kStep, bf);
                if constexpr (kQ4) {
                    // The group's partial sums in f32, scaled once: D rows g (elements 0, 1) and g + 8 (2, 3).
                    float part[4] = {0.0f, 0.0f, 0.0f, 0.0f};
                    mma_step<WT>(part, w[u][m][0], w[u][m][1], bf);
                    const float s0f = f16_bits_to_f32(static_cast<uint16_t>(sc[u][m][0]));
                    const float s1f = f16_bits_to_f32(static_cast<uint16_t>(sc[u][m][1]));
                    acc[m][0] = fmaf(part[0], s0f, acc[m][0]);
                    acc[m][1] = fmaf(part[1], s0f, acc[m][1]);
                    acc[m][2] = fmaf(part[2], s1f, acc[m][2]);
                    acc[m][3] = fmaf(part[3], s1f, acc[m][3]);
                } else {
                    mma_step<WT>(acc[m], w[u][m][0], w[u][m][1], bf);  // row scale in the epilogue
                }
            }
        }
    };

    // Ping-pong: batch A computes while batch B loads, and the other way round.
    int64_t s0 = warp;
    if (s0 < steps_end) load(s0, wa, sa);
    while (s0 < steps_end) {
        if (s0 + kStride < steps_end) load(s0 + kStride, wb, sb);
        compute(s0, wa, sa);
        s0 += kStride;
        if (s0 >= steps_end) break;
        if (s0 + kStride < steps_end) load(s0 + kStride, wa, sa);
        compute(s0, wb, sb);
        s0 += kStride;
    }

#pragma unroll
    for (int m = 0; m < M; ++m) {
        red[m][warp][g][2 * c] = acc[m][0];
        red[m][warp][g][2 * c + 1] = acc[m][1];
        red[m][warp][g + 8][2 * c] = acc[m][2];
        red[m][warp][g + 8][2 * c + 1] = acc[m][3];
    }
    __syncthreads();
    if (tid >= kTileRows * ntok) return;
    const int r = tid % kTileRows, col = tid / kTileRows;
    const int64_t row = row0 + r;
    if (row >= rows) return;
    float v[M];
#pragma unroll
    for (int m = 0; m < M; ++m) {
        float t = 0.0f;
#pragma unroll
        for (int w = 0; w < kWarps; ++w) t += red[m][w][r][col];
        if constexpr (!kQ4)
            if (!skip[m]) t *= __ldg(qscale[m] + row);
        v[m] = t;
    }
    const float nan = __int_as_float(0x7fc00000);
    if constexpr (MODE == Mode::plain) {
        p.mat[0].out[static_cast<int64_t>(col) * rows + row] = v[0];
    } else if constexpr (MODE == Mode::multi) {
        p.mat[mi].out[row] = v[0];
    } else if constexpr (MODE == Mode::silu) {
        // The same expression as silu_mul_kernel (ops.cu), so the fused and unfused paths agree.
        const float h = v[0] / (1.0f + expf(-v[0])) * v[1];
        p.mat[0].out[static_cast<int64_t>(blockIdx.y) * rows + row] = valid ? h : nan;
    } else {
        const float total = combine_pairs<M>(p.combine_w + static_cast<int64_t>(blockIdx.y) * M, v, skip);
        p.mat[0].out[static_cast<int64_t>(blockIdx.y) * rows + row] = valid ? total : nan;
    }
}

int step_cols(DType dt) {
    return dt == DType::q4 ? tcfrag::kQ4StepCols : dt == DType::q8 ? tcfrag::kQ8StepCols : 0;
}

// Shape, dtype and alignment conditions every mode shares.
bool common_ok(const GemvParams& p) {
    const int sc = step_cols(p.dtype);
    if (!p.tensor_cores || sc == 0 || p.cols <= 0 || p.cols % sc != 0 || p.rows <= 0 || !aligned16(p.x) ||
        p.n_experts < 1 || p.n_experts > kMaxExperts || p.n_mat < 1 || p.n_mat > kMaxMats)
        return false;
    for (int m = 0; m < p.n_mat; ++m)
        for (int e = 0; e < p.n_experts; ++e)
            if (!aligned16(p.mat[m].data[e])) return false;
    return true;
}

template <DType WT, Mode MODE, int M>
void launch(cudaStream_t s, const GemvParams& p, unsigned gx, unsigned gy) {
    gemv_tc_kernel<WT, MODE, M><<<dim3(gx, gy, 1), dim3(kThreads), 0, s>>>(p);
    HR_CUDA_LAUNCH_CHECK();
}

template <DType WT>
bool dispatch(cudaStream_t s, const GemvParams& p) {
    const auto tiles = static_cast<unsigned>(ceil_div(p.rows, kTileRows));
    if (p.multi_shape) {
        unsigned total = 0;
        for (int i = 0; i < p.n_mat; ++i) total += static_cast<unsigned>(p.mat_blocks[i]);
        launch<WT, Mode::multi, 1>(s, p, total, 1);
        return true;
    }
    if (p.silu_pair) {
        launch<WT, Mode::silu, 2>(s, p, tiles, static_cast<unsigned>(p.n_tasks));
        return true;
    }
    if (p.combine_w != nullptr) {
        const auto tokens = static_cast<unsigned>(p.n_tasks / p.k);
        if (p.k == 1) launch<WT, Mode::combine, 1>(s, p, tiles, tokens);
        else launch<WT, Mode::combine, 2>(s, p, tiles, tokens);
        return true;
    }
    launch<WT, Mode::plain, 1>(s, p, tiles, 1);
    return true;
}

}  // namespace

bool gemv_tc_supported(const GemvParams& p) {
    if (!common_ok(p) || p.multi_shape) return false;
    if (p.silu_pair)
        return p.ids != nullptr && p.n_mat == 2 && p.combine_w == nullptr && !p.x_per_pair && p.k >= 1 &&
               p.n_tasks >= 1;
    if (p.combine_w != nullptr)
        return p.ids != nullptr && p.n_mat == 1 && p.x_per_pair && (p.k == 1 || p.k == 2) && p.n_tasks >= p.k &&
               p.n_tasks % p.k == 0;
    return p.ids == nullptr && p.n_mat == 1 && p.n_experts == 1 && p.n_tasks >= 1 && p.n_tasks <= kMaxTokens;
}

bool launch_gemv_tc(cudaStream_t s, const GemvParams& p) {
    if (!gemv_tc_supported(p)) return false;
    return p.dtype == DType::q4 ? dispatch<DType::q4>(s, p) : dispatch<DType::q8>(s, p);
}

bool launch_gemv_tc_multi(cudaStream_t s, GemvParams p) {
    if (!common_ok(p) || p.n_tasks != 1 || p.ids != nullptr || p.n_experts != 1 || p.silu_pair ||
        p.combine_w != nullptr)
        return false;
    for (int i = 0; i < p.n_mat; ++i)
        if (p.mat_rows[i] <= 0) return false;
    p.multi_shape = true;
    for (int i = 0; i < p.n_mat; ++i) p.mat_blocks[i] = ceil_div(p.mat_rows[i], kTileRows);
    return p.dtype == DType::q4 ? dispatch<DType::q4>(s, p) : dispatch<DType::q8>(s, p);
}

}  // namespace hr::cuda
