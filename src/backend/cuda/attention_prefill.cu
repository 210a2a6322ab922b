// Prefill attention on the tensor cores: a tiled online-softmax kernel (mma.sync m16n8k16, f16 or bf16
// operands as the KV cache stores them, f32 accumulation) over the paged cache. A quantized cache (int8 /
// fp8 codes with a scale per row, core/kv_quant.h) is decoded and scaled while a tile is loaded into
// shared memory, as f16 operands. One block per (tile of
// tokens, kv head); its 64 query rows are (token, query head of the group) pairs, so the heads of a
// group share every K/V tile read. The new keys/values are already in the cache (attention.cu writes
// them first), so a chunk sees its own earlier tokens and the cached prefix alike.
#include <cfloat>

#include <string>
#include <type_traits>

#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.cuh"
#include "core/kv_quant.h"

namespace hr::cuda {
namespace {

constexpr int kRows = 64;     // query rows per block: 4 warps x 16 rows
constexpr int kKeys = 64;     // keys per tile
constexpr int kThreads = 128;
constexpr int kPad = 8;       // halves of padding per shared row: rows start 16 bytes apart mod 128
constexpr float kLog2e = 1.4426950408889634f;

template <class CT>
struct Mma;
template <>
struct Mma<__half> {
    static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
        const __half2 h = __floats2half2_rn(lo, hi);
        return *reinterpret_cast<const uint32_t*>(&h);
    }
    static __device__ __forceinline__ void run(float* d, const uint32_t* a, const uint32_t* b) {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
            "{%0,%1,%2,%3};"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    }
};
template <>
struct Mma<__nv_bfloat16> {
    static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
        const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
        return *reinterpret_cast<const uint32_t*>(&h);
    }
    static __device__ __forceinline__ void run(float* d, const uint32_t* a, const uint32_t* b) {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
            "{%0,%1,%2,%3};"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    }
};

__device__ __forceinline__ uint32_t lds32(const uint16_t* p) { return *reinterpret_cast<const uint32_t*>(p); }

// The operand type of a cache element type: itself for f16 / bf16; f16 for the one-byte codes (int8_t:
// int8, uint8_t: fp8 e4m3), whose decoded values times the scale are rounded to f16 like the other
// operands (int8 codes and e4m3 values themselves are exact in f16).
template <class CT>
struct Operand {
    using T = CT;
};
template <>
struct Operand<int8_t> {
    using T = __half;
};
template <>
struct Operand<uint8_t> {
    using T = __half;
};

template <class CT>
__device__ __forceinline__ float decode_code(uint32_t b) {
    if constexpr (std::is_signed_v<CT>) return static_cast<float>(static_cast<int8_t>(static_cast<uint8_t>(b)));
    else return e4m3_to_f32(static_cast<uint8_t>(b));
}

// 8 one-byte codes (one 8-byte load) times their row's scale, as 8 packed f16 (a uint4, like 8 f16 elements).
template <class CT>
__device__ __forceinline__ uint4 load_codes8(const CT* p, float scale) {
    const uint2 w = *reinterpret_cast<const uint2*>(p);
    uint32_t h[4];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
        const uint32_t word = e < 2 ? w.x : w.y;
        const int sh = 16 * (e % 2);
        const __half2 v = __floats2half2_rn(decode_code<CT>((word >> sh) & 0xffu) * scale,
                                            decode_code<CT>((word >> (sh + 8)) & 0xffu) * scale);
        h[e] = *reinterpret_cast<const uint32_t*>(&v);
    }
    return make_uint4(h[0], h[1], h[2], h[3]);
}

// Shared memory of one block, in halves: Q [kRows][D + kPad], K [kKeys][D + kPad], V transposed
// [D][kKeys + kPad] (so the P.V operand is one 32-bit read per register, like the others).
template <int D>
constexpr int smem_halves() {
    return kRows * (D + kPad) + kKeys * (D + kPad) + D * (kKeys + kPad);
}

// grid: x = tile of BT = kRows / G tokens, y = kv head. Row r of the tile is token t0 + r / G, query
// head hk * G + r % G. Fragment layouts are those of mma.m16n8k16 (PTX ISA): lane = 4 * g + c holds
// rows g and g + 8, columns 2c, 2c + 1 (+ 8) of each 16 x 16 A tile / 16 x 8 accumulator tile.
template <class CT, int D>
__global__ void __launch_bounds__(kThreads) attention_prefill_kernel(const AttnLaunch a) {
    static_assert(D % 16 == 0, "head_dim must be a multiple of 16");
    using MT = typename Operand<CT>::T;
    constexpr int SQ = D + kPad, SK = D + kPad, SV = kKeys + kPad;
    constexpr int NT = D / 8;  // accumulator n-tiles over head_dim
    extern __shared__ __align__(16) uint16_t smem[];
    uint16_t* qs = smem;
    uint16_t* ks = qs + kRows * SQ;
    uint16_t* vt = ks + kKeys * SK;

    const int tid = threadIdx.x, lane = tid % kWarp, warp = tid / kWarp;
    const int g = lane / 4, c = lane % 4;
    const int G = static_cast<int>(a.n_heads / a.n_kv_heads);
    const int BT = kRows / G;
    const int64_t t0 = static_cast<int64_t>(blockIdx.x) * BT;
    const int hk = static_cast<int>(blockIdx.y);
    const int64_t kv_dim = a.n_kv_heads * D;
    const CT* kc = static_cast<const CT*>(a.k_cache);
    const CT* vc = static_cast<const CT*>(a.v_cache);

    // Q tile, pre-scaled by scale * log2(e) so the softmax runs on exp2.
    for (int i = tid; i < kRows * D; i += kThreads) {
        const int r = i / D, d = i % D;
        const int64_t t = t0 + r / G;
        float v = 0.0f;
        if (r < BT * G && t < a.n) v = a.q[(t * a.n_heads + hk * G + r % G) * D + d] * (a.scale * kLog2e);
        const uint32_t packed = Mma<MT>::pack(v, 0.0f);
        qs[r * SQ + d] = static_cast<uint16_t>(packed & 0xffffu);
    }

    // This thread's two rows (g and g + 8 of its warp's 16).
    int64_t row_t[2];
    int row_pos[2], row_seq[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int r = warp * 16 + g + 8 * h;
        row_t[h] = t0 + r / G;
        const bool valid = r < BT * G && row_t[h] < a.n;
        row_pos[h] = valid ? a.positions[row_t[h]] : -1;
        row_seq[h] = valid ? a.token_seq[row_t[h]] : -1;
    }
    // The warp's largest position, to skip key tiles wholly in its future.
    int warp_pos = max(row_pos[0], row_pos[1]);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) warp_pos = max(warp_pos, __shfl_xor_sync(0xffffffffu, warp_pos, o));

    float o_acc[NT][4];
#pragma unroll
    for (int i = 0; i < NT; ++i) o_acc[i][0] = o_acc[i][1] = o_acc[i][2] = o_acc[i][3] = 0.0f;
    float m_run[2] = {-FLT_MAX, -FLT_MAX}, l_run[2] = {0.0f, 0.0f};

    const int n_tok = static_cast<int>(min(static_cast<int64_t>(BT), a.n - t0));
    // A tile may hold tokens of several sequences (continuous batching): one pass over the keys of each
    // distinct sequence, rows of other sequences masked out. Almost always one pass.
    for (int i = 0; i < n_tok; ++i) {
        const int seq = a.token_seq[t0 + i];
        bool seen = false;
        for (int j = 0; j < i; ++j) seen = seen || a.token_seq[t0 + j] == seq;
        if (seen) continue;
        int ctx = 0;
        for (int j = i; j < n_tok; ++j)
            if (a.token_seq[t0 + j] == seq) ctx = max(ctx, a.positions[t0 + j] + 1);
        const int32_t* table = a.block_tables + static_cast<int64_t>(seq) * a.max_blocks;

        for (int kb = 0; kb < ctx; kb += kKeys) {
            __syncthreads();  // the previous tile is no longer read
            // K rows and transposed V rows of keys [kb, kb + kKeys), 16-byte loads; keys >= ctx are zeros.
            constexpr int kChunks = D / 8;
            for (int idx = tid; idx < kKeys * kChunks; idx += kThreads) {
                const int key = idx / kChunks, ch = idx % kChunks;
                const int j = kb + key;
                uint4 kv4 = make_uint4(0, 0, 0, 0), vv4 = make_uint4(0, 0, 0, 0);
                if (j < ctx) {
                    const int64_t slot = static_cast<int64_t>(table[j / a.block_size]) * a.block_size + j % a.block_size;
                    const int64_t off = slot * kv_dim + static_cast<int64_t>(hk) * D + ch * 8;
                    if constexpr (sizeof(CT) == 1) {
                        const int64_t srow = slot * a.n_kv_heads + hk;
                        kv4 = load_codes8<CT>(kc + off, a.k_scale[srow]);
                        vv4 = load_codes8<CT>(vc + off, a.v_scale[srow]);
                    } else {
                        kv4 = *reinterpret_cast<const uint4*>(kc + off);
                        vv4 = *reinterpret_cast<const uint4*>(vc + off);
                    }
                }
                *reinterpret_cast<uint4*>(ks + key * SK + ch * 8) = kv4;
                const uint32_t vw[4] = {vv4.x, vv4.y, vv4.z, vv4.w};
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    vt[(ch * 8 + 2 * e) * SV + key] = static_cast<uint16_t>(vw[e] & 0xffffu);
                    vt[(ch * 8 + 2 * e + 1) * SV + key] = static_cast<uint16_t>(vw[e] >> 16);
                }
            }
            __syncthreads();
            if (kb > warp_pos) continue;  // causal: every row of this warp precedes the tile

            // S = Q K^T: 16 rows x kKeys keys per warp.
            float s[kKeys / 8][4];
#pragma unroll
            for (int j = 0; j < kKeys / 8; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
            const uint16_t* qw = qs + (warp * 16) * SQ;
#pragma unroll
            for (int kk = 0; kk < D / 16; ++kk) {
                uint32_t af[4];
                af[0] = lds32(qw + g * SQ + kk * 16 + 2 * c);
                af[1] = lds32(qw + (g + 8) * SQ + kk * 16 + 2 * c);
                af[2] = lds32(qw + g * SQ + kk * 16 + 2 * c + 8);
                af[3] = lds32(qw + (g + 8) * SQ + kk * 16 + 2 * c + 8);
#pragma unroll
                for (int j = 0; j < kKeys / 8; ++j) {
                    uint32_t bf[2];
                    bf[0] = lds32(ks + (j * 8 + g) * SK + kk * 16 + 2 * c);
                    bf[1] = lds32(ks + (j * 8 + g) * SK + kk * 16 + 2 * c + 8);
                    Mma<MT>::run(s[j], af, bf);
                }
            }

            // Mask (other sequence, future key, past the context) and the online softmax per row.
            float mx[2] = {m_run[0], m_run[1]};
#pragma unroll
            for (int j = 0; j < kKeys / 8; ++j) {
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int h = e / 2;
                    const int key = kb + j * 8 + 2 * c + (e & 1);
                    const bool ok = row_seq[h] == seq && key <= row_pos[h];
                    s[j][e] = ok ? s[j][e] : -FLT_MAX;
                    mx[h] = fmaxf(mx[h], s[j][e]);
                }
            }
            float corr[2];
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
                mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
                corr[h] = exp2f(m_run[h] - mx[h]);  // 1 while the row has seen nothing (both -FLT_MAX)
                m_run[h] = mx[h];
                l_run[h] *= corr[h];
            }
#pragma unroll
            for (int j = 0; j < kKeys / 8; ++j) {
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int h = e / 2;
                    // A masked score is -FLT_MAX: its weight is exactly 0 even when the row's max is too.
                    const float p = s[j][e] == -FLT_MAX ? 0.0f : exp2f(s[j][e] - mx[h]);
                    s[j][e] = p;
                    l_run[h] += p;
                }
            }
#pragma unroll
            for (int i2 = 0; i2 < NT; ++i2) {
                o_acc[i2][0] *= corr[0];
                o_acc[i2][1] *= corr[0];
                o_acc[i2][2] *= corr[1];
                o_acc[i2][3] *= corr[1];
            }
            // O += P V: the accumulator tiles of S become the A operand of P (pairs of 8-key tiles).
#pragma unroll
            for (int kk = 0; kk < kKeys / 16; ++kk) {
                uint32_t pf[4];
                pf[0] = Mma<MT>::pack(s[2 * kk][0], s[2 * kk][1]);
                pf[1] = Mma<MT>::pack(s[2 * kk][2], s[2 * kk][3]);
                pf[2] = Mma<MT>::pack(s[2 * kk + 1][0], s[2 * kk + 1][1]);
                pf[3] = Mma<MT>::pack(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
                for (int i2 = 0; i2 < NT; ++i2) {
                    uint32_t bf[2];
                    bf[0] = lds32(vt + (i2 * 8 + g) * SV + kk * 16 + 2 * c);
                    bf[1] = lds32(vt + (i2 * 8 + g) * SV + kk * 16 + 2 * c + 8);
                    Mma<MT>::run(o_acc[i2], pf, bf);
                }
            }
        }
    }

    // Row sums across the four lanes of a row, then out = O / l.
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        l_run[h] += __shfl_xor_sync(0xffffffffu, l_run[h], 1);
        l_run[h] += __shfl_xor_sync(0xffffffffu, l_run[h], 2);
    }
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int r = warp * 16 + g + 8 * h;
        if (row_pos[h] < 0) continue;
        const float inv = 1.0f / l_run[h];
        float* out = a.out + (row_t[h] * a.n_heads + hk * G + r % G) * D;
#pragma unroll
        for (int i2 = 0; i2 < NT; ++i2) {
            float2 v;
            v.x = o_acc[i2][2 * h] * inv;
            v.y = o_acc[i2][2 * h + 1] * inv;
            *reinterpret_cast<float2*>(out + i2 * 8 + 2 * c) = v;
        }
    }
}

template <class CT, int D>
void launch_d(cudaStream_t s, const AttnLaunch& a) {
    constexpr int bytes = smem_halves<D>() * 2;
    static bool configured = false;  // the attribute is per function; set once
    if (!configured) {
        HR_CUDA_CHECK(cudaFuncSetAttribute(attention_prefill_kernel<CT, D>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
        configured = true;
    }
    const int64_t G = a.n_heads / a.n_kv_heads;
    const int64_t bt = kRows / G;
    const dim3 grid(static_cast<unsigned>(ceil_div(a.n, bt)), static_cast<unsigned>(a.n_kv_heads));
    attention_prefill_kernel<CT, D><<<grid, kThreads, bytes, s>>>(a);
    HR_CUDA_LAUNCH_CHECK();
}

template <class CT>
void launch_typed(cudaStream_t s, const AttnLaunch& a) {
    switch (a.head_dim) {
        case 64: launch_d<CT, 64>(s, a); break;
        case 128: launch_d<CT, 128>(s, a); break;
        case 256: launch_d<CT, 256>(s, a); break;
        default: HR_CHECK_MSG(false, "attention_prefill: unsupported head_dim (see attention_prefill_supported)");
    }
}

}  // namespace

bool attention_prefill_supported(const AttnLaunch& a) {
    const bool tc_cache = a.cache_dtype == DType::f16 || a.cache_dtype == DType::bf16 ||
                            a.cache_dtype == DType::i8 || a.cache_dtype == DType::f8_e4m3;
    const bool dim_ok = a.head_dim == 64 || a.head_dim == 128 || a.head_dim == 256;
    return tc_cache && dim_ok && a.n_kv_heads > 0 && a.n_heads % a.n_kv_heads == 0 &&
           a.n_heads / a.n_kv_heads <= kRows;
}

void launch_attention_prefill(cudaStream_t s, const AttnLaunch& a) {
    switch (a.cache_dtype) {
        case DType::f16: launch_typed<__half>(s, a); break;
        case DType::i8: launch_typed<int8_t>(s, a); break;
        case DType::f8_e4m3: launch_typed<uint8_t>(s, a); break;
        default: launch_typed<__nv_bfloat16>(s, a); break;
    }
}

}  // namespace hr::cuda
