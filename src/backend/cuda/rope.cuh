// Rotary-embedding arithmetic shared by rope_kernel (ops.cu) and the fused decode attention
// (attention.cu): both must produce the very same rotated values, since a quantized KV cache's codes
// and scales are compared bit for bit against the unfused path.
#pragma once

#include <cstdint>

namespace hr::cuda {

// cos and sin of rotation pair i (dims i and i + head_dim/2) at position pos. note: the inverse frequency
// and the angle are f32, as transformers computes them (the CPU oracle does the same); only the sine and
// cosine of that f32 angle are taken in double, so they are correctly rounded.
__device__ __forceinline__ void rope_cos_sin(int32_t pos, int64_t i, int64_t head_dim, float theta, float& c,
                                             float& s) {
    const float expo = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    const float inv_freq = 1.0f / static_cast<float>(pow(static_cast<double>(theta), static_cast<double>(expo)));
    const float ang = static_cast<float>(pos) * inv_freq;
    double sn, cs;
    sincos(static_cast<double>(ang), &sn, &cs);
    c = static_cast<float>(cs);
    s = static_cast<float>(sn);
}

// The rotated pair (x0 = x[i], x1 = x[i + half]): rounded products and sum, no fused multiply-add, so the
// value does not depend on where the compiler inlines it (and matches the CPU's plain f32 arithmetic).
__device__ __forceinline__ float rope_lo(float x0, float x1, float c, float s) {
    return __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, s));
}
__device__ __forceinline__ float rope_hi(float x0, float x1, float c, float s) {
    return __fadd_rn(__fmul_rn(x1, c), __fmul_rn(x0, s));
}

}  // namespace hr::cuda
