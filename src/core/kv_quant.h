// The quantized KV cache formats: int8 and fp8 (e4m3), each row of head_dim values (one token's key or
// value for one kv head) stored as 1-byte codes with one f32 scale: value = code * scale.
//   int8: symmetric, scale = max|x| / 127, code = round(x / scale) in [-127, 127];
//   fp8:  scale = max|x| / 448 (e4m3's largest finite value), code = e4m3(x / scale), nearest even.
// note: per (token, head) rows, not per tensor: a scale fixed before the keys are seen would have to come
// from calibration, and RoPE'd keys of a few heads carry outliers that would flatten every other row.
// These functions are the same code on the host and on the GPU (HR_HD), so the CUDA backend writes the
// very bytes the CPU oracle writes (the parity tests compare the caches exactly).
#pragma once

#include <math.h>

#include <cstdint>
#include <cstring>

#include "core/dtype.h"
#include "core/half.h"

namespace hr {

constexpr bool is_quantized_kv(DType t) { return t == DType::i8 || t == DType::f8_e4m3; }

// The largest code magnitude of a quantized KV dtype.
HR_HD float kv_code_max(DType t) { return t == DType::i8 ? 127.0f : 448.0f; }

// f32 -> e4m3 (the "fn" variant: no infinities, 0x7f/0xff are NaN), round to nearest even, saturating to
// +-448 (what cvt.rn.satfinite does on sm_89+).
HR_HD uint8_t f32_to_e4m3(float x) {
    uint32_t u;
    std::memcpy(&u, &x, 4);
    const uint8_t sign = static_cast<uint8_t>((u >> 24) & 0x80u);
    const uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return static_cast<uint8_t>(sign | 0x7fu);  // NaN
    if (a >= 0x43e00000u) return static_cast<uint8_t>(sign | 0x7eu);  // >= 448: the largest finite
    if (a < 0x3c800000u) {  // below 2^-6: subnormal, multiples of 2^-9 (8 * 2^-9 is the smallest normal, 0x08)
        float f;
        std::memcpy(&f, &a, 4);
        return static_cast<uint8_t>(sign | static_cast<uint8_t>(rintf(f * 512.0f)));
    }
    // Normal: round the 23 mantissa bits to 3 (nearest even); a carry moves into the exponent.
    const uint32_t r = a + 0x7ffffu + ((a >> 20) & 1u);
    const uint32_t e = (r >> 23) - 120u;  // exponent bias 127 -> 7
    return static_cast<uint8_t>(sign | ((e << 3) | ((r >> 20) & 7u)));
}

// e4m3 -> f32, exact. note: subnormals decoded explicitly, not through an f32 denormal (a host running
// with denormals-are-zero would read them as 0). The cache never holds NaN codes unless a NaN was written.
HR_HD float e4m3_to_f32(uint8_t b) {
    const uint32_t mag = b & 0x7fu;
    float f;
    if (mag == 0x7fu) {
        const uint32_t nan = 0x7fc00000u;
        std::memcpy(&f, &nan, 4);
    } else if (mag & 0x78u) {
        const uint32_t u = (mag + (120u << 3)) << 20;  // exponent bias 7 -> 127
        std::memcpy(&f, &u, 4);
    } else {
        f = static_cast<float>(mag) * 0x1p-9f;
    }
    return (b & 0x80u) ? -f : f;
}

// A row's scale from its largest magnitude (0 for an all-zero row: every code is 0 then).
HR_HD float kv_row_scale(float amax, DType t) { return amax / kv_code_max(t); }
// What values are multiplied by before rounding to a code.
HR_HD float kv_row_inv(float amax, DType t) { return amax > 0.0f ? kv_code_max(t) / amax : 0.0f; }

HR_HD uint8_t kv_encode(float x, float inv, DType t) {
    const float y = x * inv;
    if (t == DType::i8) {
        const float r = fminf(fmaxf(rintf(y), -127.0f), 127.0f);
        return static_cast<uint8_t>(static_cast<int8_t>(static_cast<int>(r)));
    }
    return f32_to_e4m3(y);
}

// A code as f32, before the row's scale.
HR_HD float kv_decode(uint8_t code, DType t) {
    return t == DType::i8 ? static_cast<float>(static_cast<int8_t>(code)) : e4m3_to_f32(code);
}

// Host: one row of n values into codes and its scale.
inline void kv_quantize_row(const float* x, int64_t n, DType t, uint8_t* codes, float* scale) {
    float amax = 0.0f;
    for (int64_t i = 0; i < n; ++i) amax = fmaxf(amax, fabsf(x[i]));
    const float inv = kv_row_inv(amax, t);
    for (int64_t i = 0; i < n; ++i) codes[i] = kv_encode(x[i], inv, t);
    *scale = kv_row_scale(amax, t);
}

// Host: one row back to f32.
inline void kv_dequantize_row(const uint8_t* codes, float scale, int64_t n, DType t, float* out) {
    for (int64_t i = 0; i < n; ++i) out[i] = kv_decode(codes[i], t) * scale;
}

}  // namespace hr
