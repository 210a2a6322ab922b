// Fragments of the tensor-core GEMVs on quantized weights (mma.sync m16n8k16, f16 operands, f32
// accumulators): the bit tricks that turn one 32-bit word of int4 nibbles or int8 bytes into exact f16
// pairs, and which real column each k index of a lane's A and B fragments holds. Plain C++ with
// __host__ __device__ functions, so tests/unit/quant/tc_frag_test.cpp runs this exact code on the host
// (f16 arithmetic emulated through f32, exact for every value used here) and checks the index math
// against the PTX fragment layout.
//
// mma.m16n8k16 layout (PTX ISA), lane = 4 g + c (g = lane / 4, c = lane % 4):
//   A (16 x 16, row-major) regs: 0 = row g,   k 2c, 2c+1;   1 = row g+8, k 2c, 2c+1;
//                                2 = row g,   k 2c+8, 2c+9; 3 = row g+8, k 2c+8, 2c+9
//   B (16 x 8, col-major)  regs: 0 = k 2c, 2c+1, col g;     1 = k 2c+8, 2c+9, col g
//   D (16 x 8, f32):            0, 1 = row g, cols 2c, 2c+1; 2, 3 = row g+8, cols 2c, 2c+1
// The k index of a fragment need not be the real column: any permutation applied to A and B alike
// leaves the products unchanged. Each lane loads 16 contiguous weight bytes of rows g and g+8 and
// lets the k order follow the bits, and the lane's B fragments take the activations of the same real
// columns (they depend on c only, as the k index does).
#pragma once

#include <cstdint>

#include "core/half.h"

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#endif

// Inlined everywhere (the fragment arrays must stay in registers); loops unrolled on the device.
#if defined(__CUDACC__)
#define HR_TC_FN __host__ __device__ __forceinline__
#else
#define HR_TC_FN inline
#endif
#if defined(__CUDA_ARCH__)
#define HR_TC_UNROLL _Pragma("unroll")
#else
#define HR_TC_UNROLL
#endif

namespace hr::tcfrag {

// --- f16x2 in a 32-bit word (low half = first element) ----------------------------------------------
HR_TC_FN uint32_t pack_h2(uint16_t lo, uint16_t hi) { return static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16); }
HR_TC_FN uint16_t lo_h(uint32_t v) { return static_cast<uint16_t>(v & 0xffffu); }
HR_TC_FN uint16_t hi_h(uint32_t v) { return static_cast<uint16_t>(v >> 16); }

// a - b per half.
HR_TC_FN uint32_t h2_sub(uint32_t a, uint32_t b) {
#if defined(__CUDA_ARCH__)
    const __half2 r = __hsub2(*reinterpret_cast<const __half2*>(&a), *reinterpret_cast<const __half2*>(&b));
    return *reinterpret_cast<const uint32_t*>(&r);
#else
    return pack_h2(f32_to_f16(f16_to_f32(lo_h(a)) - f16_to_f32(lo_h(b))),
                   f32_to_f16(f16_to_f32(hi_h(a)) - f16_to_f32(hi_h(b))));
#endif
}

// a * b + c per half (one rounding; exact for the values used here).
HR_TC_FN uint32_t h2_fma(uint32_t a, uint32_t b, uint32_t c) {
#if defined(__CUDA_ARCH__)
    const __half2 r = __hfma2(*reinterpret_cast<const __half2*>(&a), *reinterpret_cast<const __half2*>(&b),
                              *reinterpret_cast<const __half2*>(&c));
    return *reinterpret_cast<const uint32_t*>(&r);
#else
    return pack_h2(f32_to_f16(f16_to_f32(lo_h(a)) * f16_to_f32(lo_h(b)) + f16_to_f32(lo_h(c))),
                   f32_to_f16(f16_to_f32(hi_h(a)) * f16_to_f32(hi_h(b)) + f16_to_f32(hi_h(c))));
#endif
}

// Two f32 rounded to nearest-even f16, lo in the low half.
HR_TC_FN uint32_t f32x2_to_h2(float lo, float hi) {
#if defined(__CUDA_ARCH__)
    const __half2 r = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&r);
#else
    return pack_h2(f32_to_f16(lo), f32_to_f16(hi));
#endif
}

// PTX prmt (default mode): byte i of the result is byte ((sel >> 4i) & 7) of the pair {b:a}.
HR_TC_FN uint32_t byte_perm(uint32_t a, uint32_t b, uint32_t sel) {
#if defined(__CUDA_ARCH__)
    return __byte_perm(a, b, sel);
#else
    const uint64_t ab = (static_cast<uint64_t>(b) << 32) | a;
    uint32_t r = 0;
    for (int i = 0; i < 4; ++i) r |= static_cast<uint32_t>((ab >> (8 * ((sel >> (4 * i)) & 7u))) & 0xffu) << (8 * i);
    return r;
#endif
}

// --- int4: 8 nibbles per word, nibble b (bits 4b .. 4b+3) is the word's column b, value q = n - 8 ----
// Columns per lane load (16 bytes) and per warp step (4 lanes of a row: 64 bytes = one scale group).
constexpr int kQ4LaneCols = 32;
constexpr int kQ4StepCols = 128;
constexpr int kQ4Tiles = 8;  // k16 tiles per step

constexpr uint32_t kH2Bias1024 = 0x64006400u;  // f16 1024 in both halves: OR a value < 1024 into the mantissa
constexpr uint32_t kH2Q4Sub = 0x64086408u;     // 1032 = 1024 + the nibble bias 8
constexpr uint32_t kH2Sixteenth = 0x2c002c00u; // 1/16
constexpr uint32_t kH2Q4Add = 0xd480d480u;     // -72 = -(1024 / 16 + 8)

// The word's nibbles as four exact f16 pairs of q: out[0] = (q0, q4), out[1] = (q1, q5), out[2] = (q2, q6),
// out[3] = (q3, q7). A mask and an OR per pair (one LOP3 each) put a nibble n or 16 n under the exponent
// of 1024; a subtraction (1024 + n - 1032 = n - 8) or an FMA ((1024 + 16 n) / 16 - 72 = n - 8) leaves q
// exactly. 9 instructions for 8 weights, no int-to-float conversions.
HR_TC_FN void q4_word_to_h2(uint32_t w, uint32_t out[4]) {
    const uint32_t lo0 = (w & 0x000f000fu) | kH2Bias1024;
    const uint32_t hi0 = (w & 0x00f000f0u) | kH2Bias1024;
    w >>= 8;
    const uint32_t lo1 = (w & 0x000f000fu) | kH2Bias1024;
    const uint32_t hi1 = (w & 0x00f000f0u) | kH2Bias1024;
    out[0] = h2_sub(lo0, kH2Q4Sub);
    out[1] = h2_fma(hi0, kH2Sixteenth, kH2Q4Add);
    out[2] = h2_sub(lo1, kH2Q4Sub);
    out[3] = h2_fma(hi1, kH2Sixteenth, kH2Q4Add);
}

// A fragments of k-tiles 2i and 2i + 1 from word i of rows g (wg) and g + 8 (wg8): af[h] for tile 2i + h.
HR_TC_FN void q4_a_frags(uint32_t wg, uint32_t wg8, uint32_t af[2][4]) {
    uint32_t a[4], b[4];
    q4_word_to_h2(wg, a);
    q4_word_to_h2(wg8, b);
    HR_TC_UNROLL
    for (int h = 0; h < 2; ++h) {
        af[h][0] = a[2 * h];
        af[h][1] = b[2 * h];
        af[h][2] = a[2 * h + 1];
        af[h][3] = b[2 * h + 1];
    }
}

// The real column, among the lane's 32, of k-tile t (0..7) and fragment element e (0: k 2c, 1: 2c+1,
// 2: 2c+8, 3: 2c+9). Tile t = 2i + h reads word i: pairs (2h, 2h+4) and (2h+1, 2h+5) of its columns.
HR_TC_FN int q4_col(int t, int e) { return 8 * (t / 2) + 2 * (t % 2) + (e >= 2 ? 1 : 0) + 4 * (e & 1); }

// B fragments of the lane's 32 activations xs (real column order) for the 8 k-tiles of a step.
HR_TC_FN void q4_b_frags(const float* xs, uint32_t bf[kQ4Tiles][2]) {
    HR_TC_UNROLL
    for (int t = 0; t < kQ4Tiles; ++t) {
        bf[t][0] = f32x2_to_h2(xs[q4_col(t, 0)], xs[q4_col(t, 1)]);
        bf[t][1] = f32x2_to_h2(xs[q4_col(t, 2)], xs[q4_col(t, 3)]);
    }
}

// --- int8: 4 bytes per word, byte b is the word's column b ---------------------------------------------
constexpr int kQ8LaneCols = 16;
constexpr int kQ8StepCols = 64;
constexpr int kQ8Tiles = 4;

constexpr uint32_t kH2Q8Sub = 0x64806480u;  // 1152 = 1024 + the byte bias 128

// Bytes 0, 1 (h = 0) or 2, 3 (h = 1) of a word of int8 values as an exact f16 pair: q ^ 0x80 = q + 128
// as the mantissa of 1024 (one PRMT), minus 1152.
HR_TC_FN uint32_t q8_pair_to_h2(uint32_t w, int h) {
    const uint32_t bits = byte_perm(w ^ 0x80808080u, 0x64646464u, h == 0 ? 0x5140u : 0x7362u);
    return h2_sub(bits, kH2Q8Sub);
}

// A fragment of k-tile t from word t of rows g (wg) and g + 8 (wg8).
HR_TC_FN void q8_a_frag(uint32_t wg, uint32_t wg8, uint32_t af[4]) {
    af[0] = q8_pair_to_h2(wg, 0);
    af[1] = q8_pair_to_h2(wg8, 0);
    af[2] = q8_pair_to_h2(wg, 1);
    af[3] = q8_pair_to_h2(wg8, 1);
}

// The real column, among the lane's 16, of k-tile t (0..3) and fragment element e.
HR_TC_FN int q8_col(int t, int e) { return 4 * t + (e >= 2 ? 2 : 0) + (e & 1); }

HR_TC_FN void q8_b_frags(const float* xs, uint32_t bf[kQ8Tiles][2]) {
    HR_TC_UNROLL
    for (int t = 0; t < kQ8Tiles; ++t) {
        bf[t][0] = f32x2_to_h2(xs[q8_col(t, 0)], xs[q8_col(t, 1)]);
        bf[t][1] = f32x2_to_h2(xs[q8_col(t, 2)], xs[q8_col(t, 3)]);
    }
}

}  // namespace hr::tcfrag
