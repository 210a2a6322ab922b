// Weight formats in the GEMV kernels: elements per 16-byte chunk, bytes per row, the unpacking of one
// chunk into floats, and the f32 activations of one chunk. Included by the GEMV .cu files only.
#pragma once

#include <cstdint>

#include "backend/cuda/common.cuh"

namespace hr::cuda {

template <DType WT>
struct Fmt;
template <>
struct Fmt<DType::f32> { static constexpr int kPer = 4; };
template <>
struct Fmt<DType::f16> { static constexpr int kPer = 8; };
template <>
struct Fmt<DType::bf16> { static constexpr int kPer = 8; };
template <>
struct Fmt<DType::q8> { static constexpr int kPer = 16; };
template <>
struct Fmt<DType::q4> { static constexpr int kPer = 32; };

template <DType WT>
constexpr int64_t row_bytes(int64_t cols) {
    if constexpr (WT == DType::q4) return (cols + 1) / 2;
    else if constexpr (WT == DType::q8) return cols;
    else if constexpr (WT == DType::f32) return cols * 4;
    else return cols * 2;
}

// Unpacks one 16-byte chunk into kPer floats (without the q8 row scale or the q4 group scale).
template <DType WT>
__device__ __forceinline__ void unpack(const uint4& v, float* f) {
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
    if constexpr (WT == DType::f32) {
#pragma unroll
        for (int i = 0; i < 4; ++i) f[i] = __uint_as_float(w[i]);
    } else if constexpr (WT == DType::bf16) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            f[2 * i] = __uint_as_float(w[i] << 16);
            f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
        }
    } else if constexpr (WT == DType::f16) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const float2 h = __half22float2(*reinterpret_cast<const __half2*>(&w[i]));
            f[2 * i] = h.x;
            f[2 * i + 1] = h.y;
        }
    } else if constexpr (WT == DType::q8) {
        // note: no int->float conversion instructions (quarter rate): the biased byte (q + 128) becomes
        // the mantissa of 2^23 and one subtraction leaves q exactly.
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const uint32_t biased = w[i] ^ 0x80808080u;
#pragma unroll
            for (int b = 0; b < 4; ++b)
                f[4 * i + b] = __uint_as_float(__byte_perm(biased, 0x4B000000u, 0x7540u + b)) - 8388736.0f;
        }
    } else {  // q4: column 2j in the low nibble of byte j; nibble n = q + 8 as the mantissa of 2^23
#pragma unroll
        for (int i = 0; i < 4; ++i) {
#pragma unroll
            for (int b = 0; b < 8; ++b)
                f[8 * i + b] = __uint_as_float(0x4B000000u | ((w[i] >> (4 * b)) & 15u)) - 8388616.0f;
        }
    }
}

// The f32 activations matching one weight chunk: kPer values from p (16-byte aligned).
template <int kPer>
__device__ __forceinline__ void load_x_chunk(const float* p, float* xs) {
    const float4* xv = reinterpret_cast<const float4*>(p);
#pragma unroll
    for (int q = 0; q < kPer / 4; ++q) {
        const float4 xx = __ldg(xv + q);
        xs[4 * q] = xx.x;
        xs[4 * q + 1] = xx.y;
        xs[4 * q + 2] = xx.z;
        xs[4 * q + 3] = xx.w;
    }
}

// int4 weights against int8 activations (dp4a). Unpacking 32 nibbles to f32 and 32 FMAs cost ~5
// instructions per weight, which held the int4 GEMVs to 16-23% of the copy bandwidth (instruction-bound).
// Instead the activation chunk of 32 values is quantized once (absmax / 127, round to nearest) and shared
// by every weight row of the block; a weight chunk then costs 2 mask/shift ops and 2 dp4a per 8 weights
// (~0.5 instructions per weight) with exact integer sums. The only added error is the activations' int8
// rounding (at most d / 2 per element, d = max|x| / 127 of its chunk): tests/parity/tolerances.h,
// kTolInt8Activations.
struct XQ32 {
    int even[4];  // q of columns 8i, 8i+2, 8i+4, 8i+6 as the bytes of even[i] (the low nibbles of w[i])
    int odd[4];   // q of columns 8i+1, 8i+3, 8i+5, 8i+7 (the high nibbles)
    int sum8;     // 8 * sum(q): the weights are stored as n = q_w + 8
    float d;      // x ~= d * q
};

__device__ __forceinline__ uint32_t pack_i8x4(int a, int b, int c, int e) {
    return (static_cast<uint32_t>(a) & 0xffu) | ((static_cast<uint32_t>(b) & 0xffu) << 8) |
           ((static_cast<uint32_t>(c) & 0xffu) << 16) | (static_cast<uint32_t>(e) << 24);
}

// Quantizes the 32 f32 activations at p (16-byte aligned).
__device__ __forceinline__ void quantize_x32(const float* p, XQ32& xq) {
    float xs[32];
    load_x_chunk<32>(p, xs);
    float amax = 0.0f;
#pragma unroll
    for (int i = 0; i < 32; ++i) amax = fmaxf(amax, fabsf(xs[i]));
    xq.d = amax / 127.0f;
    const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    auto q = [&](int i) { return __float2int_rn(xs[i] * inv); };
    int sum = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        xq.even[i] = static_cast<int>(pack_i8x4(q(8 * i), q(8 * i + 2), q(8 * i + 4), q(8 * i + 6)));
        xq.odd[i] = static_cast<int>(pack_i8x4(q(8 * i + 1), q(8 * i + 3), q(8 * i + 5), q(8 * i + 7)));
        sum = __dp4a(xq.even[i], 0x01010101, sum);  // signed bytes summed
        sum = __dp4a(xq.odd[i], 0x01010101, sum);
    }
    xq.sum8 = 8 * sum;
}

// sum_k q_w[k] * q_x[k] over one 16-byte int4 chunk (32 columns), exact in int32.
__device__ __forceinline__ int dot_q4_x32(const uint4& v, const XQ32& xq) {
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
    int acc = -xq.sum8;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        acc = __dp4a(static_cast<int>(w[i] & 0x0f0f0f0fu), xq.even[i], acc);
        acc = __dp4a(static_cast<int>((w[i] >> 4) & 0x0f0f0f0fu), xq.odd[i], acc);
    }
    return acc;
}

// Elements of a weight format per 16-byte chunk (0: not a GEMV format).
inline int per_chunk(DType dt) {
    switch (dt) {
        case DType::f32: return 4;
        case DType::f16:
        case DType::bf16: return 8;
        case DType::q8: return 16;
        case DType::q4: return 32;
        default: return 0;
    }
}

inline bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; }

}  // namespace hr::cuda
