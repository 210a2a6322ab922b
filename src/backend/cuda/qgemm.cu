// The quantized tensor-core GEMM of prefill (qgemm.h): MoE experts and dense matmuls of many tokens
// with int8 / int4 weights, no bf16 copy of the weights. Layout, tiling and fragment math are in
// qgemm_frag.h (host-tested); this file holds the pipeline, the mma loop and the epilogues.
//
// Why this shape: a 2048-token Mixtral prefill has ~512 pairs per expert against 4096 x 14336 weights,
// so the products are compute-bound once the weights are read once; the old path (dequantize each
// expert to bf16, then cuBLAS) wrote and re-read a bf16 copy of every expert per layer and synchronised
// with the host for the expert counts. Here a 256-thread block computes 128 shared weight rows x 128
// tokens: weights (64 bytes per row and stage) and activations (f16) stream into shared memory through
// a 3-4 stage cp.async pipeline; each warp decodes its 32 rows' 16-byte chunks with tc_frag's bit tricks
// (int4: times the group scale in f16) and runs 2 x 8 m16n8k16 products per k16 step; f32 accumulators.
#include <string>

#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.cuh"
#include "backend/cuda/mma.cuh"
#include "backend/cuda/qgemm.h"
#include "backend/cuda/qgemm_frag.h"
#include "backend/cuda/weight_unpack.cuh"
#include "quant/formats.h"

namespace hr::cuda {
namespace {

using namespace hr::qgemm;

static_assert(kQgMaxExperts == kMaxExperts, "qgemm.h repeats kMaxExperts");

template <bool Q4>
struct Cfg {
    static constexpr int kBK = qg_bk(Q4);
    static constexpr int kStages = Q4 ? 3 : 4;
    static constexpr int kXChunks = qg_x_chunks(Q4);
    static constexpr int kWStage = kBM * kWRowBytes;
    static constexpr int kXStage = kBN * kBK * 2;
    static constexpr int kSmem = kStages * (kWStage + kXStage);  // int8 96 KiB, int4 120 KiB
    // Chunks each thread copies per stage.
    static constexpr int kWCopies = kBM * (kWRowBytes / 16) / kThreads;
    static constexpr int kXCopies = kBN * kXChunks / kThreads;
    static_assert(kWCopies * kThreads == kBM * (kWRowBytes / 16) && kXCopies * kThreads == kBN * kXChunks,
                  "copies divide evenly among the threads");
};

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
    const auto s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ uint32_t h2_splat(uint16_t h) { return static_cast<uint32_t>(h) * 0x10001u; }

template <bool Q4, bool PAIR>
__global__ void __launch_bounds__(kThreads, 1) qgemm_kernel(const __grid_constant__ QgParams p) {
    using C = Cfg<Q4>;
    extern __shared__ __align__(128) uint8_t smem[];
    __shared__ int32_t xrow[kBN];  // activation row of each token of the tile
    __shared__ int64_t tile_s[4];  // expert, row tile, pos0, count (QgTile has initialisers: not __shared__)

    constexpr int kOut = qg_out_rows(PAIR);
    const int64_t row_tiles = (p.rows + kOut - 1) / kOut;
    const int tid = static_cast<int>(threadIdx.x);
    if (tid == 0) {
        const QgTile t = qg_tile_of(blockIdx.x, p.offsets, p.n_experts, p.n_positions, row_tiles, kBN, p.skip_experts);
        tile_s[0] = t.expert;
        tile_s[1] = t.row_tile;
        tile_s[2] = t.pos0;
        tile_s[3] = t.count;
    }
    __syncthreads();
    QgTile tile;
    tile.expert = static_cast<int>(tile_s[0]);
    tile.row_tile = tile_s[1];
    tile.pos0 = tile_s[2];
    tile.count = static_cast<int>(tile_s[3]);
    if (tile.expert < 0) return;  // block-uniform
    const int e = tile.expert;
    const int64_t r0 = tile.row_tile * kOut;
    const int64_t K = p.cols;
    const int KT = static_cast<int>(K / C::kBK);

    for (int j = tid; j < kBN; j += kThreads) {
        const int64_t pos = tile.pos0 + (j < tile.count ? j : tile.count - 1);  // spare tokens repeat the last
        xrow[j] = p.perm ? p.perm[pos] / p.k : static_cast<int32_t>(pos);
    }
    __syncthreads();

    // --- loader: per thread kWCopies weight chunks (fixed rows) and kXCopies activation chunks (fixed
    // chunk column, rows tid / kXChunks + i * (kThreads / kXChunks)).
    const int64_t wrow_bytes = Q4 ? K / 2 : K;
    const uint8_t* wsrc[C::kWCopies];
    int wdst[C::kWCopies];
#pragma unroll
    for (int i = 0; i < C::kWCopies; ++i) {
        const int idx = tid + i * kThreads;
        const int rr = idx / (kWRowBytes / 16), ch = idx % (kWRowBytes / 16);
        int64_t row = r0 + qg_row_local(PAIR, rr);
        if (row >= p.rows) row = p.rows - 1;  // rows past the end: valid memory, results dropped
        wsrc[i] = static_cast<const uint8_t*>(p.mat[qg_row_matrix(PAIR, rr)].data[e]) + row * wrow_bytes + ch * 16;
        wdst[i] = rr * kWRowBytes + ch * 16;
    }
    const int xch = tid % C::kXChunks;
    const int xr0 = tid / C::kXChunks;
    constexpr int kXRowStep = kThreads / C::kXChunks;
    const auto* xbase = static_cast<const uint8_t*>(p.x) + xch * 16;

    auto load_stage = [&](int stage, int kt) {
        uint8_t* ws = smem + stage * C::kWStage;
        uint8_t* xs = smem + C::kStages * C::kWStage + stage * C::kXStage;
#pragma unroll
        for (int i = 0; i < C::kWCopies; ++i) cp_async16(ws + wdst[i], wsrc[i] + static_cast<int64_t>(kt) * kWRowBytes);
#pragma unroll
        for (int i = 0; i < C::kXCopies; ++i) {
            const int r = xr0 + i * kXRowStep;
            cp_async16(xs + qg_x_offset(Q4, r, xch),
                       xbase + (static_cast<int64_t>(xrow[r]) * K + static_cast<int64_t>(kt) * C::kBK) * 2);
        }
    };

    const int lane = tid % kWarp, warp = tid / kWarp;
    const int g = lane / 4, c = lane % 4;
    const int wm = warp % kWarpsM, wn = warp / kWarpsM;

    // int4 group scales of the lane's rows (g, g + 8 of each m16 tile), prefetched one stage ahead.
    const uint16_t* srow[kMT][2];
    if constexpr (Q4) {
        const int64_t n_groups = K / quant::kQ4Group;
#pragma unroll
        for (int i = 0; i < kMT; ++i)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int rr = qg_warp_row(PAIR, wm, i) + g + 8 * h;
                int64_t row = r0 + qg_row_local(PAIR, rr);
                if (row >= p.rows) row = p.rows - 1;
                srow[i][h] = static_cast<const uint16_t*>(p.mat[qg_row_matrix(PAIR, rr)].scales[e]) + row * n_groups;
            }
    }
    uint32_t sc[kMT][2] = {};
    auto load_scales = [&](int kt, uint32_t out[kMT][2]) {
#pragma unroll
        for (int i = 0; i < kMT; ++i)
#pragma unroll
            for (int h = 0; h < 2; ++h) out[i][h] = h2_splat(__ldg(srow[i][h] + kt));
    };

    float acc[kMT][kNT][4];
#pragma unroll
    for (int i = 0; i < kMT; ++i)
#pragma unroll
        for (int j = 0; j < kNT; ++j) acc[i][j][0] = acc[i][j][1] = acc[i][j][2] = acc[i][j][3] = 0.0f;

#pragma unroll
    for (int s = 0; s < C::kStages - 1; ++s) {
        if (s < KT) load_stage(s, s);
        cp_async_commit();
    }
    if constexpr (Q4) load_scales(0, sc);

    for (int kt = 0; kt < KT; ++kt) {
        uint32_t sc_next[kMT][2] = {};
        if constexpr (Q4) load_scales(kt + 1 < KT ? kt + 1 : kt, sc_next);
        cp_async_wait<C::kStages - 2>();
        __syncthreads();  // stage kt landed for every thread; stage kt - 1 is no longer read
        {
            const int nk = kt + C::kStages - 1;
            if (nk < KT) load_stage(nk % C::kStages, nk);
            cp_async_commit();
        }
        const int stage = kt % C::kStages;
        const uint8_t* ws = smem + stage * C::kWStage;
        const uint8_t* xs = smem + C::kStages * C::kWStage + stage * C::kXStage;

        uint32_t wa[kMT][2][4];  // the lane's 16 bytes of rows g, g + 8 of each m16 tile
#pragma unroll
        for (int i = 0; i < kMT; ++i)
#pragma unroll
            for (int h = 0; h < 2; ++h) qg_ld128(ws + (qg_warp_row(PAIR, wm, i) + g + 8 * h) * kWRowBytes + 16 * c, wa[i][h]);

        if constexpr (Q4) {
#pragma unroll
            for (int w = 0; w < 4; ++w) {
                uint32_t bf[kNT][2][2];
#pragma unroll
                for (int j = 0; j < kNT; ++j) {
                    uint32_t xv[4];
                    qg_ld128(xs + qg_x_offset(true, wn * 64 + 8 * j + g, 4 * c + w), xv);
                    qg_q4_b_frags(xv, bf[j]);
                }
#pragma unroll
                for (int i = 0; i < kMT; ++i) {
                    uint32_t af[2][4];
                    qg_q4_a_frags(wa[i][0][w], wa[i][1][w], sc[i][0], sc[i][1], af);
#pragma unroll
                    for (int h = 0; h < 2; ++h)
#pragma unroll
                        for (int j = 0; j < kNT; ++j) mma_f16(acc[i][j], af[h], bf[j][h]);
                }
            }
        } else {
#pragma unroll
            for (int half = 0; half < 2; ++half) {
                uint32_t xv[kNT][4];
#pragma unroll
                for (int j = 0; j < kNT; ++j) qg_ld128(xs + qg_x_offset(false, wn * 64 + 8 * j + g, 2 * c + half), xv[j]);
#pragma unroll
                for (int u = 0; u < 2; ++u) {
                    const int t = 2 * half + u;
#pragma unroll
                    for (int i = 0; i < kMT; ++i) {
                        uint32_t af[4];
                        tcfrag::q8_a_frag(wa[i][0][t], wa[i][1][t], af);
#pragma unroll
                        for (int j = 0; j < kNT; ++j) {
                            uint32_t bf[2];
                            qg_q8_b_frag(xv[j], t, bf);
                            mma_f16(acc[i][j], af, bf);
                        }
                    }
                }
            }
        }
        if constexpr (Q4) {
#pragma unroll
            for (int i = 0; i < kMT; ++i) sc[i][0] = sc_next[i][0], sc[i][1] = sc_next[i][1];
        }
    }

    // --- epilogue: accumulator (i, j, v) is shared row qg_warp_row(i) + g + 8 (v / 2), token
    // 64 wn + 8 j + 2 c + v % 2 of the tile.
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        if constexpr (PAIR) {
            const int64_t row = r0 + wm * 16 + g + 8 * h;
            if (row >= p.rows) continue;
            float s1 = 1.0f, s3 = 1.0f;
            if constexpr (!Q4) {
                s1 = __ldg(static_cast<const float*>(p.mat[0].scales[e]) + row);
                s3 = __ldg(static_cast<const float*>(p.mat[1].scales[e]) + row);
            }
            auto* out = static_cast<__half*>(p.out_h);
#pragma unroll
            for (int j = 0; j < kNT; ++j)
#pragma unroll
                for (int v = 0; v < 2; ++v) {
                    const int tok = wn * 64 + 8 * j + 2 * c + v;
                    if (tok >= tile.count) continue;
                    const float gv = acc[0][j][2 * h + v] * s1;
                    const float uv = acc[1][j][2 * h + v] * s3;
                    // The same expression as silu_mul_kernel (ops.cu), rounded to f16 for the w2 product.
                    out[(tile.pos0 + tok) * p.rows + row] = __float2half_rn(gv / (1.0f + expf(-gv)) * uv);
                }
        } else {
#pragma unroll
            for (int i = 0; i < kMT; ++i) {
                const int64_t row = r0 + wm * 32 + i * 16 + g + 8 * h;
                if (row >= p.rows) continue;
                const float s = Q4 ? 1.0f : __ldg(static_cast<const float*>(p.mat[0].scales[e]) + row);
#pragma unroll
                for (int j = 0; j < kNT; ++j)
#pragma unroll
                    for (int v = 0; v < 2; ++v) {
                        const int tok = wn * 64 + 8 * j + 2 * c + v;
                        if (tok >= tile.count) continue;
                        p.out_f32[(tile.pos0 + tok) * p.rows + row] = acc[i][j][2 * h + v] * s;
                    }
            }
        }
    }
}

template <bool Q4, bool PAIR>
void launch_one(cudaStream_t s, const QgParams& p) {
    using C = Cfg<Q4>;
    // Above the 48 KiB default: opt in once per instantiation (not a stream operation, capture-safe).
    static const bool attr = [] {
        HR_CUDA_CHECK(cudaFuncSetAttribute(qgemm_kernel<Q4, PAIR>, cudaFuncAttributeMaxDynamicSharedMemorySize, C::kSmem));
        return true;
    }();
    (void)attr;
    const int64_t row_tiles = ceil_div(p.rows, qg_out_rows(PAIR));
    const int64_t blocks = qg_grid_blocks(p.n_positions, p.n_experts, p.offsets == nullptr, row_tiles, kBN);
    HR_CHECK_MSG(blocks <= 0x7fffffff, "qgemm: grid too large");
    qgemm_kernel<Q4, PAIR><<<static_cast<unsigned>(blocks), kThreads, C::kSmem, s>>>(p);
    HR_CUDA_LAUNCH_CHECK();
}

}  // namespace

bool qgemm_shape_supported(DType dt, int64_t rows, int64_t cols) {
    if (rows < 1 || cols < 1) return false;
    if (dt == DType::q8) return cols % 64 == 0;
    if (dt == DType::q4) return cols % quant::kQ4Group == 0;
    return false;
}

bool qgemm_supported(const QgParams& p, bool pair) {
    bool ok = qgemm_shape_supported(p.dtype, p.rows, p.cols) && p.n_experts >= 1 && p.n_experts <= kMaxExperts &&
              aligned16(p.x) && (p.offsets != nullptr || p.n_experts == 1) && p.k >= 1 &&
              (pair ? p.out_h != nullptr : p.out_f32 != nullptr) && p.n_positions >= 0 &&
              p.n_positions <= 0x7fffffff;
    for (int m = 0; m < (pair ? 2 : 1) && ok; ++m)
        for (int e = 0; e < p.n_experts && ok; ++e)
            ok = aligned16(p.mat[m].data[e]) && p.mat[m].scales[e] != nullptr;
    return ok;
}

void launch_qgemm(CUstream_st* stream, const QgParams& p, bool pair) {
    HR_CHECK_MSG(qgemm_supported(p, pair), "qgemm: unsupported parameters (check qgemm_supported)");
    if (p.n_positions == 0) return;
    const cudaStream_t s = stream;
    const bool q4 = p.dtype == DType::q4;
    if (q4 && pair) launch_one<true, true>(s, p);
    else if (q4) launch_one<true, false>(s, p);
    else if (pair) launch_one<false, true>(s, p);
    else launch_one<false, false>(s, p);
}

}  // namespace hr::cuda
