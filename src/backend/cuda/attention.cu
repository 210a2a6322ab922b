// Paged causal attention for decode and prefill: new keys/values go into their cache slots first, then
// each query attends to positions [0, pos] of its sequence through the block table. Runs of at least
// kMinTensorCoreRun tokens of one sequence (prefill chunks) go to the tensor-core kernel
// (attention_prefill.cu); the other tokens (decode) to the split-K kernel here: one block per (token,
// kv head), one warp per query head of the group (the group shares K/V reads through L1), keys split
// over blocks with a combine pass when there are too few (token, kv head) pairs to fill the GPU.
// A quantized cache (int8 / fp8 codes, one f32 scale per (slot, kv head): core/kv_quant.h) is written by its
// own kernel (a warp per row finds the row's max) and decoded in the kernels' inner loops: codes to f32 as
// they are loaded, the key's scale applied once to its score, the value's once to its softmax weight.
#include <cfloat>

#include <string>
#include <type_traits>

#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.cuh"
#include "backend/cuda/rope.cuh"
#include "core/kv_quant.h"

namespace hr::cuda {
namespace {

template <class CT>
__device__ __forceinline__ float from_cache(CT v);
template <>
__device__ __forceinline__ float from_cache<float>(float v) { return v; }
template <>
__device__ __forceinline__ float from_cache<__half>(__half v) { return __half2float(v); }
template <>
__device__ __forceinline__ float from_cache<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
// note: the quantized caches' codes are typed int8_t (int8) and uint8_t (fp8 e4m3), so the kernels take
// them as one more cache element type; the row's scale is applied outside (kCodes).
template <>
__device__ __forceinline__ float from_cache<int8_t>(int8_t v) { return static_cast<float>(v); }
template <>
__device__ __forceinline__ float from_cache<uint8_t>(uint8_t v) { return e4m3_to_f32(v); }

template <class CT>
constexpr bool kCodes = sizeof(CT) == 1;

// Byte i of w as a cache code of type CT, decoded (before the row's scale).
template <class CT>
__device__ __forceinline__ float code_at(uint32_t w, int i) {
    const uint8_t b = static_cast<uint8_t>((w >> (8 * i)) & 0xffu);
    if constexpr (std::is_signed_v<CT>) return static_cast<float>(static_cast<int8_t>(b));
    else return e4m3_to_f32(b);
}

template <class CT>
__device__ __forceinline__ CT bit_cast_16(uint16_t b);
template <>
__device__ __forceinline__ __half bit_cast_16<__half>(uint16_t b) { return __ushort_as_half(b); }
template <>
__device__ __forceinline__ __nv_bfloat16 bit_cast_16<__nv_bfloat16>(uint16_t b) { return __ushort_as_bfloat16(b); }

template <class CT>
__device__ __forceinline__ CT to_cache(float v);
template <>
__device__ __forceinline__ float to_cache<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half to_cache<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 to_cache<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// DPL consecutive cache elements as f32 with one vector load (p aligned to DPL elements).
template <class CT, int DPL>
__device__ __forceinline__ void load_lane(const CT* p, float* f) {
    if constexpr (sizeof(CT) == 2 && DPL >= 2) {
        constexpr int W = DPL / 2;  // 32-bit words, two elements each
        uint32_t w[W];
        if constexpr (W == 4) {
            const uint4 v = *reinterpret_cast<const uint4*>(p);
            w[0] = v.x, w[1] = v.y, w[2] = v.z, w[3] = v.w;
        } else if constexpr (W == 2) {
            const uint2 v = *reinterpret_cast<const uint2*>(p);
            w[0] = v.x, w[1] = v.y;
        } else {
            w[0] = *reinterpret_cast<const uint32_t*>(p);
        }
#pragma unroll
        for (int i = 0; i < W; ++i) {
            f[2 * i] = from_cache<CT>(bit_cast_16<CT>(static_cast<uint16_t>(w[i] & 0xffffu)));
            f[2 * i + 1] = from_cache<CT>(bit_cast_16<CT>(static_cast<uint16_t>(w[i] >> 16)));
        }
    } else if constexpr (kCodes<CT> && DPL >= 2) {
        // DPL one-byte codes: one 2, 4 or 8-byte load.
        uint32_t w[(DPL + 3) / 4];
        if constexpr (DPL == 8) {
            const uint2 v = *reinterpret_cast<const uint2*>(p);
            w[0] = v.x, w[1] = v.y;
        } else if constexpr (DPL == 4) {
            w[0] = *reinterpret_cast<const uint32_t*>(p);
        } else {
            w[0] = *reinterpret_cast<const uint16_t*>(p);
        }
#pragma unroll
        for (int i = 0; i < DPL; ++i) f[i] = code_at<CT>(w[i / 4], i % 4);
    } else if constexpr (sizeof(CT) == 4 && DPL % 4 == 0) {
#pragma unroll
        for (int i = 0; i < DPL / 4; ++i) {
            const float4 v = reinterpret_cast<const float4*>(p)[i];
            f[4 * i] = v.x, f[4 * i + 1] = v.y, f[4 * i + 2] = v.z, f[4 * i + 3] = v.w;
        }
    } else {
#pragma unroll
        for (int i = 0; i < DPL; ++i) f[i] = from_cache<CT>(p[i]);
    }
}

template <class CT>
__global__ void kv_write_kernel(CT* kc, CT* vc, const float* k_new, const float* v_new, const int32_t* slots,
                                int64_t n, int64_t kv_dim) {
    const int64_t total = n * kv_dim;
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t t = i / kv_dim, c = i % kv_dim;
        const int32_t slot = slots[t];
        if (slot < 0) continue;  // a padding token writes nothing
        kc[slot * kv_dim + c] = to_cache<CT>(k_new[i]);
        vc[slot * kv_dim + c] = to_cache<CT>(v_new[i]);
    }
}

// A quantized cache: one warp per (token, kv head) row of k and of v: the row's max |x| (a warp max, the
// same value in any order), then the codes and the scale with the host's very arithmetic (kv_quant.h).
// block: kQuantRowsPerBlock warps.
constexpr int kQuantRowsPerBlock = 4;

__global__ void kv_write_codes_kernel(uint8_t* kc, uint8_t* vc, float* ks, float* vs, const float* k_new,
                                      const float* v_new, const int32_t* slots, int64_t n, int64_t n_kv, int64_t D,
                                      DType dt) {
    const int lane = threadIdx.x % kWarp;
    const int64_t row = static_cast<int64_t>(blockIdx.x) * kQuantRowsPerBlock + threadIdx.x / kWarp;
    if (row >= n * n_kv) return;
    const int64_t t = row / n_kv, h = row % n_kv;
    const int32_t slot = slots[t];
    if (slot < 0) return;  // a padding token writes nothing
    const int64_t dst_row = static_cast<int64_t>(slot) * n_kv + h;
    for (int which = 0; which < 2; ++which) {
        const float* x = (which == 0 ? k_new : v_new) + row * D;
        uint8_t* dst = (which == 0 ? kc : vc) + dst_row * D;
        float amax = 0.0f;
        for (int64_t d = lane; d < D; d += kWarp) amax = fmaxf(amax, fabsf(x[d]));
        amax = warp_max(amax);
        const float inv = kv_row_inv(amax, dt);
        for (int64_t d = lane; d < D; d += kWarp) dst[d] = kv_encode(x[d], inv, dt);
        if (lane == 0) (which == 0 ? ks : vs)[dst_row] = kv_row_scale(amax, dt);
    }
}

constexpr int kKeysPerIter = 8;    // independent key loads in flight per warp
constexpr int kMinSplitKeys = 32;  // a split covers at least this many keys of the actual context
constexpr int64_t kMinTensorCoreRun = 16;

// Splits a token with context ctx uses out of the n_splits launched: the launch is sized by shapes alone
// (a captured graph stays valid), the work by the actual context (on the device).
__device__ __forceinline__ int splits_used(int64_t ctx, int n_splits) {
    return static_cast<int>(min(static_cast<int64_t>(n_splits), (ctx + kMinSplitKeys - 1) / kMinSplitKeys));
}

// grid: x = token * n_kv_heads + kv head, y = split. block: one warp per query head of the group.
// Lane l owns dims [l * DPL, l * DPL + DPL) of head_dim.
template <class CT, int DPL>
__global__ void attention_kernel(const AttnLaunch a, int n_splits) {
    const int lane = threadIdx.x % kWarp;
    const int g = threadIdx.x / kWarp;
    const int64_t group = a.n_heads / a.n_kv_heads;
    const int64_t t = blockIdx.x / a.n_kv_heads, hk = blockIdx.x % a.n_kv_heads;
    const int64_t h = hk * group + g;
    const int64_t D = a.head_dim;
    const int64_t ctx = static_cast<int64_t>(a.positions[t]) + 1;
    const int32_t* table = a.block_tables + static_cast<int64_t>(a.token_seq[t]) * a.max_blocks;
    const int used = splits_used(ctx, n_splits);
    if (static_cast<int>(blockIdx.y) >= used) return;  // the combine reads only the used splits
    const int64_t split_len = (ctx + used - 1) / used;
    const int64_t s0 = blockIdx.y * split_len;
    const int64_t s1 = min(ctx, s0 + split_len);

    float qr[DPL], acc[DPL];
#pragma unroll
    for (int i = 0; i < DPL; ++i) {
        const int64_t d = lane * DPL + i;
        qr[i] = d < D ? a.q[(t * a.n_heads + h) * D + d] * a.scale : 0.0f;
        acc[i] = 0.0f;
    }
    float m = -FLT_MAX, l = 0.0f;
    const CT* kc = static_cast<const CT*>(a.k_cache);
    const CT* vc = static_cast<const CT*>(a.v_cache);
    const int64_t kv_dim = a.n_kv_heads * D;
    // Lanes cover head_dim exactly (D = 32 * DPL): vector loads; the cache rows are then aligned to them.
    const bool full_rows = D == kWarp * DPL;
    for (int64_t j0 = s0; j0 < s1; j0 += kKeysPerIter) {
        float kf[kKeysPerIter][DPL], vf[kKeysPerIter][DPL];
        float ksc[kKeysPerIter], vsc[kKeysPerIter];  // the rows' scales (quantized cache only)
#pragma unroll
        for (int u = 0; u < kKeysPerIter; ++u) {
            const int64_t j = j0 + u;
            const bool in = j < s1;
            const int64_t slot =
                in ? static_cast<int64_t>(table[j / a.block_size]) * a.block_size + j % a.block_size : 0;
            const CT* kp = kc + slot * kv_dim + hk * D;
            const CT* vp = vc + slot * kv_dim + hk * D;
            if constexpr (kCodes<CT>) {
                ksc[u] = a.k_scale[slot * a.n_kv_heads + hk];
                vsc[u] = a.v_scale[slot * a.n_kv_heads + hk];
            }
            if (full_rows) {
                // One vector load per lane per row (8 bytes for 128 f16 dims), not DPL scalar loads.
                load_lane<CT, DPL>(kp + lane * DPL, kf[u]);
                load_lane<CT, DPL>(vp + lane * DPL, vf[u]);
                if (!in) {
#pragma unroll
                    for (int i = 0; i < DPL; ++i) kf[u][i] = vf[u][i] = 0.0f;
                }
                continue;
            }
#pragma unroll
            for (int i = 0; i < DPL; ++i) {
                const int64_t d = lane * DPL + i;
                const bool ok = in && d < D;
                kf[u][i] = ok ? from_cache<CT>(kp[d]) : 0.0f;
                vf[u][i] = ok ? from_cache<CT>(vp[d]) : 0.0f;
            }
        }
        float sc[kKeysPerIter];
#pragma unroll
        for (int u = 0; u < kKeysPerIter; ++u) {
            float s = 0.0f;
#pragma unroll
            for (int i = 0; i < DPL; ++i) s = fmaf(qr[i], kf[u][i], s);
            sc[u] = s;
        }
#pragma unroll
        for (int u = 0; u < kKeysPerIter; ++u) {
            sc[u] = warp_sum(sc[u]);
            if constexpr (kCodes<CT>) sc[u] *= ksc[u];
        }
        float mx = m;
#pragma unroll
        for (int u = 0; u < kKeysPerIter; ++u)
            if (j0 + u < s1) mx = fmaxf(mx, sc[u]);
        const float corr = __expf(m - mx);
        l *= corr;
#pragma unroll
        for (int i = 0; i < DPL; ++i) acc[i] *= corr;
#pragma unroll
        for (int u = 0; u < kKeysPerIter; ++u) {
            const float pexp = j0 + u < s1 ? __expf(sc[u] - mx) : 0.0f;
            l += pexp;
            float pv = pexp;
            if constexpr (kCodes<CT>) pv *= vsc[u];
#pragma unroll
            for (int i = 0; i < DPL; ++i) acc[i] = fmaf(pv, vf[u][i], acc[i]);
        }
        m = mx;
    }
    if (n_splits == 1) {
        const float inv = 1.0f / l;
#pragma unroll
        for (int i = 0; i < DPL; ++i) {
            const int64_t d = lane * DPL + i;
            if (d < D) a.out[(t * a.n_heads + h) * D + d] = acc[i] * inv;
        }
        return;
    }
    float* part = a.partials + ((t * a.n_heads + h) * n_splits + blockIdx.y) * (D + 2);
    if (lane == 0) {
        part[0] = s0 < s1 ? m : -FLT_MAX;
        part[1] = l;
    }
#pragma unroll
    for (int i = 0; i < DPL; ++i) {
        const int64_t d = lane * DPL + i;
        if (d < D) part[2 + d] = acc[i];
    }
}

// Decode kernel for grouped heads (G <= 8 query heads per kv head, head_dim = 32 * DPL): one block per
// (token, kv head, split); its kDecWarps warps take consecutive quarters of the split's keys, and
// each warp scores its keys against all G heads of the group (q of the group in registers), so every
// K/V row is loaded once per block with one vector load per lane. A split is then a handful of keys
// per warp: all its loads are in flight together instead of a chain of dependent iterations. The
// warps' (max, sum, acc) states merge through shared memory into the split's partial (or the output).
constexpr int kDecWarps = 4;
constexpr int kDecKeys = 4;  // keys per warp per iteration
// Fused mode (CudaOptions::fused_decode_attention): at most this many splits (the combine's weights sit
// in shared memory).
constexpr int kMaxFusedSplits = 256;

// FUSED (launch_attention_fused): q and k_new arrive unrotated and each token is its sequence's only one
// in the launch. Every block rotates q in registers (lane l's dims pair with lane l ^ 16's); the split
// holding the last key (the new token) first writes the rotated key and the value into the cache, as the
// unfused kv write kernels do, and reads them back like any other key. Each split then counts itself done
// on its (token, kv head) counter; the last to finish combines the splits' partials and resets it.
template <class CT, int DPL, int G, bool FUSED>
__global__ void __launch_bounds__(kDecWarps * kWarp) attention_decode_kernel(const AttnLaunch a, int n_splits,
                                                                              float theta, int32_t* counters) {
    constexpr int D = kWarp * DPL;
    __shared__ float st[kDecWarps][G][D + 2];
    const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
    const int64_t t = blockIdx.x / a.n_kv_heads, hk = blockIdx.x % a.n_kv_heads;
    const int64_t ctx = static_cast<int64_t>(a.positions[t]) + 1;
    const int used = splits_used(ctx, n_splits);
    if (static_cast<int>(blockIdx.y) >= used) return;
    const int64_t split_len = (ctx + used - 1) / used;
    const int64_t s0 = blockIdx.y * split_len, s1 = min(ctx, s0 + split_len);
    const int64_t per_warp = (s1 - s0 + kDecWarps - 1) / kDecWarps;
    const int64_t w0 = s0 + warp * per_warp, w1 = min(s1, w0 + per_warp);
    const int32_t* table = a.block_tables + static_cast<int64_t>(a.token_seq[t]) * a.max_blocks;
    const CT* kc = static_cast<const CT*>(a.k_cache);
    const CT* vc = static_cast<const CT*>(a.v_cache);
    const int64_t kv_dim = a.n_kv_heads * D;

    // Rotary (fused): cos / sin of the pairs of this lane's dims; rot() is the rotated value of the lane's
    // element i, given the element (mine) and its partner half a head away (lane ^ 16, same i).
    float rc[DPL] = {}, rs[DPL] = {};
    if constexpr (FUSED) {
        const int32_t pos = a.positions[t];
#pragma unroll
        for (int i = 0; i < DPL; ++i) rope_cos_sin(pos, (lane * DPL + i) % (D / 2), D, theta, rc[i], rs[i]);
    }
    auto rot = [&](float mine, int i) {
        const float partner = __shfl_xor_sync(0xffffffffu, mine, kWarp / 2);
        return lane < kWarp / 2 ? rope_lo(mine, partner, rc[i], rs[i]) : rope_hi(partner, mine, rc[i], rs[i]);
    };

    float qr[G][DPL], acc[G][DPL], m[G], l[G];
#pragma unroll
    for (int g = 0; g < G; ++g) {
        const float* qp = a.q + (t * a.n_heads + hk * G + g) * D + lane * DPL;
#pragma unroll
        for (int i = 0; i < DPL; ++i) {
            float qv = qp[i];
            if constexpr (FUSED) qv = rot(qv, i);
            qr[g][i] = qv * a.scale;
            acc[g][i] = 0.0f;
        }
        m[g] = -FLT_MAX;
        l[g] = 0.0f;
    }
    if constexpr (FUSED) {
        // The split that holds the new token's key (position ctx - 1) writes its cache row first: warp 0
        // the rotated key, warp 1 the value (a quantized cache: codes and the row's scale, kv_quant.h).
        if (static_cast<int64_t>(blockIdx.y) == (ctx - 1) / split_len) {  // block-uniform
            const int32_t slot = a.slot_mapping[t];
            if (warp < 2 && slot >= 0) {  // a padding token (slot < 0) writes nothing
                const bool is_k = warp == 0;
                const float* src = (is_k ? a.k_new : a.v_new) + (t * a.n_kv_heads + hk) * D + lane * DPL;
                float f[DPL];
#pragma unroll
                for (int i = 0; i < DPL; ++i) f[i] = src[i];
                if (is_k) {  // warp-uniform
#pragma unroll
                    for (int i = 0; i < DPL; ++i) f[i] = rot(f[i], i);
                }
                const int64_t row = static_cast<int64_t>(slot) * a.n_kv_heads + hk;
                if constexpr (kCodes<CT>) {
                    float amax = 0.0f;
#pragma unroll
                    for (int i = 0; i < DPL; ++i) amax = fmaxf(amax, fabsf(f[i]));
                    amax = warp_max(amax);
                    const float inv = kv_row_inv(amax, a.cache_dtype);
                    uint8_t* dst = static_cast<uint8_t*>(is_k ? a.k_cache : a.v_cache) + row * D + lane * DPL;
#pragma unroll
                    for (int i = 0; i < DPL; ++i) dst[i] = kv_encode(f[i], inv, a.cache_dtype);
                    if (lane == 0) (is_k ? a.k_scale : a.v_scale)[row] = kv_row_scale(amax, a.cache_dtype);
                } else {
                    CT* dst = static_cast<CT*>(is_k ? a.k_cache : a.v_cache) + row * D + lane * DPL;
#pragma unroll
                    for (int i = 0; i < DPL; ++i) dst[i] = to_cache<CT>(f[i]);
                }
            }
            __syncthreads();  // the row is read back below, by whichever warp holds the last key
        }
    }
    for (int64_t j0 = w0; j0 < w1; j0 += kDecKeys) {
        float kf[kDecKeys][DPL], vf[kDecKeys][DPL];
        float ksc[kDecKeys], vsc[kDecKeys];  // the rows' scales (quantized cache only)
#pragma unroll
        for (int u = 0; u < kDecKeys; ++u) {
            const int64_t j = min(j0 + u, w1 - 1);  // past the end: reload the last key, weighted 0 below
            const int64_t slot = static_cast<int64_t>(table[j / a.block_size]) * a.block_size + j % a.block_size;
            load_lane<CT, DPL>(kc + slot * kv_dim + hk * D + lane * DPL, kf[u]);
            load_lane<CT, DPL>(vc + slot * kv_dim + hk * D + lane * DPL, vf[u]);
            if constexpr (kCodes<CT>) {
                ksc[u] = a.k_scale[slot * a.n_kv_heads + hk];
                vsc[u] = a.v_scale[slot * a.n_kv_heads + hk];
            }
        }
#pragma unroll
        for (int g = 0; g < G; ++g) {
            float sc[kDecKeys];
#pragma unroll
            for (int u = 0; u < kDecKeys; ++u) {
                float s = 0.0f;
#pragma unroll
                for (int i = 0; i < DPL; ++i) s = fmaf(qr[g][i], kf[u][i], s);
                sc[u] = warp_sum(s);
                if constexpr (kCodes<CT>) sc[u] *= ksc[u];
            }
            float mx = m[g];
#pragma unroll
            for (int u = 0; u < kDecKeys; ++u)
                if (j0 + u < w1) mx = fmaxf(mx, sc[u]);
            const float corr = __expf(m[g] - mx);
            l[g] *= corr;
#pragma unroll
            for (int i = 0; i < DPL; ++i) acc[g][i] *= corr;
#pragma unroll
            for (int u = 0; u < kDecKeys; ++u) {
                const float pexp = j0 + u < w1 ? __expf(sc[u] - mx) : 0.0f;
                l[g] += pexp;
                float pv = pexp;
                if constexpr (kCodes<CT>) pv *= vsc[u];
#pragma unroll
                for (int i = 0; i < DPL; ++i) acc[g][i] = fmaf(pv, vf[u][i], acc[g][i]);
            }
            m[g] = mx;
        }
    }
#pragma unroll
    for (int g = 0; g < G; ++g) {
        if (lane == 0) {
            st[warp][g][0] = w0 < w1 ? m[g] : -FLT_MAX;
            st[warp][g][1] = l[g];
        }
#pragma unroll
        for (int i = 0; i < DPL; ++i) st[warp][g][2 + lane * DPL + i] = acc[g][i];
    }
    __syncthreads();
    // Merge the warps' states: thread (g, d) over the block's threads.
    for (int idx = threadIdx.x; idx < G * D; idx += kDecWarps * kWarp) {
        const int g = idx / D, d = idx % D;
        float mx = -FLT_MAX;
#pragma unroll
        for (int w = 0; w < kDecWarps; ++w)
            if (st[w][g][1] > 0.0f) mx = fmaxf(mx, st[w][g][0]);
        float lsum = 0.0f, o = 0.0f;
#pragma unroll
        for (int w = 0; w < kDecWarps; ++w) {
            const float wt = st[w][g][1] > 0.0f ? __expf(st[w][g][0] - mx) : 0.0f;  // an empty warp weighs 0
            lsum = fmaf(st[w][g][1], wt, lsum);
            o = fmaf(st[w][g][2 + d], wt, o);
        }
        const int64_t h = hk * G + g;
        if (n_splits == 1 || (FUSED && used == 1)) {
            a.out[(t * a.n_heads + h) * D + d] = o / lsum;
            continue;
        }
        float* part = a.partials + ((t * a.n_heads + h) * n_splits + blockIdx.y) * (D + 2);
        if (d == 0) {
            part[0] = mx;
            part[1] = lsum;
        }
        part[2 + d] = o;
    }
    if constexpr (FUSED) {
        if (n_splits == 1 || used == 1) return;
        __shared__ int is_last;
        __shared__ float wts[G][kMaxFusedSplits];
        __shared__ float inv_l[G];
        __threadfence();  // this block's partials reach device scope before it counts itself done
        __syncthreads();
        if (threadIdx.x == 0) is_last = atomicAdd(&counters[blockIdx.x], 1) == used - 1;
        __syncthreads();
        if (!is_last) return;
        __threadfence();
        // The last split block merges the `used` partials of its G heads (as attention_combine_kernel); the
        // other blocks' partials are read from L2 (__ldcg), not from this SM's L1.
        const float* pb = a.partials + (t * a.n_heads + hk * G) * n_splits * (D + 2);
        for (int g = warp; g < G; g += kDecWarps) {
            const float* pg = pb + static_cast<int64_t>(g) * n_splits * (D + 2);
            float mx = -FLT_MAX;
            for (int sp = lane; sp < used; sp += kWarp)
                if (__ldcg(pg + sp * (D + 2) + 1) > 0.0f) mx = fmaxf(mx, __ldcg(pg + sp * (D + 2)));
            mx = warp_max(mx);
            float lsum = 0.0f;
            for (int sp = lane; sp < used; sp += kWarp) {
                const float lv = __ldcg(pg + sp * (D + 2) + 1);
                const float wt = lv > 0.0f ? __expf(__ldcg(pg + sp * (D + 2)) - mx) : 0.0f;  // an empty split: 0
                wts[g][sp] = wt;
                lsum = fmaf(lv, wt, lsum);
            }
            lsum = warp_sum(lsum);
            if (lane == 0) inv_l[g] = 1.0f / lsum;
        }
        __syncthreads();
        for (int idx = threadIdx.x; idx < G * D; idx += kDecWarps * kWarp) {
            const int g = idx / D, d = idx % D;
            const float* pg = pb + static_cast<int64_t>(g) * n_splits * (D + 2) + 2 + d;
            float o = 0.0f;
            for (int sp = 0; sp < used; ++sp) o = fmaf(__ldcg(pg + sp * (D + 2)), wts[g][sp], o);
            a.out[(t * a.n_heads + hk * G + g) * D + d] = o * inv_l[g];
        }
        if (threadIdx.x == 0) counters[blockIdx.x] = 0;  // ready for the next launch (stream order)
    }
}

// grid: token * n_heads; merges the splits' (max, sum, acc) triples. The split weights are computed
// once into shared memory (threads over splits), then threads over head_dim sum the accumulators.
__global__ void attention_combine_kernel(float* out, const float* partials, const int32_t* positions,
                                         int64_t n_heads, int n_launched, int64_t D) {
    extern __shared__ float wts[];  // [n_splits]
    __shared__ float scratch[32];
    const float* p = partials + static_cast<int64_t>(blockIdx.x) * n_launched * (D + 2);
    const int n_splits = splits_used(static_cast<int64_t>(positions[blockIdx.x / n_heads]) + 1, n_launched);
    float mx = -FLT_MAX;
    for (int s = threadIdx.x; s < n_splits; s += blockDim.x)
        if (p[s * (D + 2) + 1] > 0.0f) mx = fmaxf(mx, p[s * (D + 2)]);
    mx = block_max(mx, scratch);
    float lsum = 0.0f;
    for (int s = threadIdx.x; s < n_splits; s += blockDim.x) {
        const float l = p[s * (D + 2) + 1];
        const float w = l > 0.0f ? __expf(p[s * (D + 2)] - mx) : 0.0f;  // an empty split weighs nothing
        wts[s] = w;
        lsum = fmaf(l, w, lsum);
    }
    lsum = block_sum(lsum, scratch);  // its barriers also publish wts
    const float inv = 1.0f / lsum;
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
        float o = 0.0f;
#pragma unroll 8
        for (int s = 0; s < n_splits; ++s) o = fmaf(p[s * (D + 2) + 2 + d], wts[s], o);
        out[static_cast<int64_t>(blockIdx.x) * D + d] = o * inv;
    }
}

int64_t split_target(int sm_count) { return 8 * static_cast<int64_t>(sm_count); }

void launch_kv_write_codes(cudaStream_t s, const AttnLaunch& a) {
    const int64_t rows = a.n * a.n_kv_heads;
    kv_write_codes_kernel<<<static_cast<unsigned>(ceil_div(rows, kQuantRowsPerBlock)), kQuantRowsPerBlock * kWarp, 0,
                            s>>>(static_cast<uint8_t*>(a.k_cache), static_cast<uint8_t*>(a.v_cache), a.k_scale,
                                 a.v_scale, a.k_new, a.v_new, a.slot_mapping, a.n, a.n_kv_heads, a.head_dim,
                                 a.cache_dtype);
    HR_CUDA_LAUNCH_CHECK();
}

template <class CT>
void launch_kv_write(cudaStream_t s, const AttnLaunch& a) {
    const int64_t kv_dim = a.n_kv_heads * a.head_dim;
    const int64_t total = a.n * kv_dim;
    kv_write_kernel<CT><<<static_cast<int>(std::min<int64_t>(ceil_div(total, 256), 132 * 8)), 256, 0, s>>>(
        static_cast<CT*>(a.k_cache), static_cast<CT*>(a.v_cache), a.k_new, a.v_new, a.slot_mapping, a.n, kv_dim);
    HR_CUDA_LAUNCH_CHECK();
}

// Split the keys only when (token, kv head) pairs leave the GPU idle; the split count depends on shapes
// alone (not on positions, which live on the device), so a captured graph stays valid. The splits a token
// uses follow its actual context on the device (splits_used).
int64_t decode_splits(const AttnLaunch& a) {
    const int64_t base = a.n * a.n_kv_heads;
    const int64_t max_ctx = a.max_blocks * a.block_size;
    int64_t splits = 1;
    if (base < split_target(a.sm_count)) {
        splits = std::min(ceil_div(split_target(a.sm_count), base), ceil_div(max_ctx, kMinSplitKeys));
        const int64_t per_split = a.n * a.n_heads * (a.head_dim + 2);
        splits = std::min(splits, a.partial_floats / per_split);
        if (splits < 1) splits = 1;
    }
    return splits;
}

template <class CT>
void launch_split_k(cudaStream_t s, const AttnLaunch& a) {
    const int64_t base = a.n * a.n_kv_heads;
    const int64_t splits = decode_splits(a);
    const dim3 grid(static_cast<unsigned>(base), static_cast<unsigned>(splits));
    const int threads = static_cast<int>(a.n_heads / a.n_kv_heads) * kWarp;
    const int sp = static_cast<int>(splits);
    const int64_t G = a.n_heads / a.n_kv_heads;
    if (a.head_dim == 128 && (G == 1 || G == 2 || G == 4 || G == 8)) {
        const dim3 dblock(kDecWarps * kWarp);
        if (G == 1) attention_decode_kernel<CT, 4, 1, false><<<grid, dblock, 0, s>>>(a, sp, 0.0f, nullptr);
        else if (G == 2) attention_decode_kernel<CT, 4, 2, false><<<grid, dblock, 0, s>>>(a, sp, 0.0f, nullptr);
        else if (G == 4) attention_decode_kernel<CT, 4, 4, false><<<grid, dblock, 0, s>>>(a, sp, 0.0f, nullptr);
        else attention_decode_kernel<CT, 4, 8, false><<<grid, dblock, 0, s>>>(a, sp, 0.0f, nullptr);
    } else if (a.head_dim == 64 && (G == 1 || G == 4 || G == 8)) {
        const dim3 dblock(kDecWarps * kWarp);
        if (G == 1) attention_decode_kernel<CT, 2, 1, false><<<grid, dblock, 0, s>>>(a, sp, 0.0f, nullptr);
        else if (G == 4) attention_decode_kernel<CT, 2, 4, false><<<grid, dblock, 0, s>>>(a, sp, 0.0f, nullptr);
        else attention_decode_kernel<CT, 2, 8, false><<<grid, dblock, 0, s>>>(a, sp, 0.0f, nullptr);
    } else if (a.head_dim <= 32) attention_kernel<CT, 1><<<grid, threads, 0, s>>>(a, sp);
    else if (a.head_dim <= 64) attention_kernel<CT, 2><<<grid, threads, 0, s>>>(a, sp);
    else if (a.head_dim <= 128) attention_kernel<CT, 4><<<grid, threads, 0, s>>>(a, sp);
    else attention_kernel<CT, 8><<<grid, threads, 0, s>>>(a, sp);
    HR_CUDA_LAUNCH_CHECK();
    if (splits > 1) {
        const unsigned blocks = static_cast<unsigned>(a.n * a.n_heads);
        attention_combine_kernel<<<blocks, 128, splits * sizeof(float), s>>>(a.out, a.partials, a.positions,
                                                                             a.n_heads, sp, a.head_dim);
        HR_CUDA_LAUNCH_CHECK();
    }
}

// The fused decode attention of one cache type: false where head_dim / group have no decode kernel.
template <class CT>
bool launch_fused(cudaStream_t s, const AttnLaunch& a, int sp, float theta, int32_t* counters) {
    const dim3 grid(static_cast<unsigned>(a.n * a.n_kv_heads), static_cast<unsigned>(sp));
    const dim3 block(kDecWarps * kWarp);
    const int64_t G = a.n_heads / a.n_kv_heads;
    if (a.head_dim == 128 && G == 1) attention_decode_kernel<CT, 4, 1, true><<<grid, block, 0, s>>>(a, sp, theta, counters);
    else if (a.head_dim == 128 && G == 2) attention_decode_kernel<CT, 4, 2, true><<<grid, block, 0, s>>>(a, sp, theta, counters);
    else if (a.head_dim == 128 && G == 4) attention_decode_kernel<CT, 4, 4, true><<<grid, block, 0, s>>>(a, sp, theta, counters);
    else if (a.head_dim == 128 && G == 8) attention_decode_kernel<CT, 4, 8, true><<<grid, block, 0, s>>>(a, sp, theta, counters);
    else if (a.head_dim == 64 && G == 1) attention_decode_kernel<CT, 2, 1, true><<<grid, block, 0, s>>>(a, sp, theta, counters);
    else if (a.head_dim == 64 && G == 4) attention_decode_kernel<CT, 2, 4, true><<<grid, block, 0, s>>>(a, sp, theta, counters);
    else if (a.head_dim == 64 && G == 8) attention_decode_kernel<CT, 2, 8, true><<<grid, block, 0, s>>>(a, sp, theta, counters);
    else return false;
    HR_CUDA_LAUNCH_CHECK();
    return true;
}

void launch_split_k_any(cudaStream_t s, const AttnLaunch& a) {
    switch (a.cache_dtype) {
        case DType::f32: launch_split_k<float>(s, a); break;
        case DType::f16: launch_split_k<__half>(s, a); break;
        case DType::i8: launch_split_k<int8_t>(s, a); break;
        case DType::f8_e4m3: launch_split_k<uint8_t>(s, a); break;
        default: launch_split_k<__nv_bfloat16>(s, a); break;
    }
}

// The launch restricted to tokens [begin, begin + count) (their cache writes are already done).
AttnLaunch token_range(const AttnLaunch& a, int64_t begin, int64_t count) {
    AttnLaunch b = a;
    const int64_t qrow = a.n_heads * a.head_dim;
    b.out = a.out + begin * qrow;
    b.q = a.q + begin * qrow;
    b.positions = a.positions + begin;
    b.token_seq = a.token_seq + begin;
    b.slot_mapping = a.slot_mapping + begin;
    b.token_seq_host = a.token_seq_host != nullptr ? a.token_seq_host + begin : nullptr;
    b.n = count;
    return b;
}

}  // namespace

int64_t attention_counter_count(int sm_count) { return split_target(sm_count); }  // base < target when split

bool launch_attention_fused(cudaStream_t s, const AttnLaunch& a, float theta, int32_t* counters, int64_t n_counters) {
    if (a.n == 0) return true;
    if (a.n_kv_heads <= 0 || a.n_heads % a.n_kv_heads != 0 || a.head_dim % 2 != 0) return false;
    const int64_t sp = std::min<int64_t>(decode_splits(a), kMaxFusedSplits);
    if (sp > 1 && (counters == nullptr || a.n * a.n_kv_heads > n_counters)) return false;
    const int isp = static_cast<int>(sp);
    switch (a.cache_dtype) {
        case DType::f32: return launch_fused<float>(s, a, isp, theta, counters);
        case DType::f16: return launch_fused<__half>(s, a, isp, theta, counters);
        case DType::bf16: return launch_fused<__nv_bfloat16>(s, a, isp, theta, counters);
        case DType::i8: return launch_fused<int8_t>(s, a, isp, theta, counters);
        case DType::f8_e4m3: return launch_fused<uint8_t>(s, a, isp, theta, counters);
        default: return false;
    }
}

int64_t attention_partial_floats(int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int sm_count) {
    // splits > 1 only when n * n_kv < target, and then n * n_kv * splits < 2 * target.
    return 2 * split_target(sm_count) * (n_heads / n_kv_heads) * (head_dim + 2);
}

void launch_attention(cudaStream_t s, const AttnLaunch& a) {
    if (a.n == 0) return;
    HR_CHECK_MSG(a.n_kv_heads > 0 && a.n_heads % a.n_kv_heads == 0 && a.n_heads / a.n_kv_heads <= 32,
                 std::string("attention: ") + std::to_string(a.n_heads) + " query heads over " +
                     std::to_string(a.n_kv_heads) + " kv heads (expected a multiple, at most 32 per kv head)");
    HR_CHECK_MSG(a.head_dim >= 1 && a.head_dim <= 256,
                 std::string("attention: head_dim ") + std::to_string(a.head_dim) + " (expected 1 to 256)");
    switch (a.cache_dtype) {
        case DType::f32: launch_kv_write<float>(s, a); break;
        case DType::f16: launch_kv_write<__half>(s, a); break;
        case DType::bf16: launch_kv_write<__nv_bfloat16>(s, a); break;
        case DType::i8:
        case DType::f8_e4m3: launch_kv_write_codes(s, a); break;
        default:
            HR_CHECK_MSG(false, std::string("attention: cache dtype ") + std::string(dtype_name(a.cache_dtype)) +
                                    " (expected f32, f16, bf16, int8 or fp8)");
    }
    if (a.token_seq_host == nullptr || !attention_prefill_supported(a)) {
        launch_split_k_any(s, a);
        return;
    }
    // Runs of one sequence's consecutive tokens: long runs (prefill chunks) on the tensor cores, the
    // rest (decode tokens) through split-K, each as one launch over a contiguous token range.
    int64_t seg_begin = 0;
    bool seg_tc = false;
    auto flush = [&](int64_t end) {
        if (end <= seg_begin) return;
        const AttnLaunch r = token_range(a, seg_begin, end - seg_begin);
        if (seg_tc) launch_attention_prefill(s, r);
        else launch_split_k_any(s, r);
    };
    for (int64_t t = 0; t < a.n;) {
        int64_t e = t + 1;
        while (e < a.n && a.token_seq_host[e] == a.token_seq_host[t]) ++e;
        const bool tc = e - t >= kMinTensorCoreRun;
        if (t == 0) seg_tc = tc;
        else if (tc != seg_tc) {
            flush(t);
            seg_begin = t;
            seg_tc = tc;
        }
        t = e;
    }
    flush(a.n);
}

}  // namespace hr::cuda
