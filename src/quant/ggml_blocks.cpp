// Scalar reference dequantizer for the ggml block formats (layouts in ggml_blocks.h). Each value is
// computed with the same f32 operations in the same order as ggml and gguf-py (scale products first,
// then one multiply and one add or subtract), so results are bit-identical to theirs.
// note: products and sums are separate statements so that no compiler fuses them into an FMA (clang
// contracts within one expression by default; g++ in ISO mode, as built here, never contracts).
#include "quant/ggml_blocks.h"

#include <cstring>

#include "core/half.h"

namespace hr::quant {

namespace {

float f16_at(const uint8_t* p) {
    return f16_to_f32(static_cast<uint16_t>(p[0] | (p[1] << 8)));
}

// x = d * q + m, never fused.
inline float mul_add(float d, float q, float m) {
    const float p = d * q;
    return p + m;
}
inline float mul_sub(float d, float q, float m) {
    const float p = d * q;
    return p - m;
}

void dequant_q8_0(const uint8_t* b, float* y) {
    const float d = f16_at(b);
    for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<int8_t>(b[2 + j])) * d;
}

// Q4_0 / Q4_1: element j < 16 is the low nibble of qs[j], element j + 16 the high nibble.
void dequant_q4_0(const uint8_t* b, float* y) {
    const float d = f16_at(b);
    const uint8_t* qs = b + 2;
    for (int j = 0; j < 16; ++j) {
        y[j] = static_cast<float>((qs[j] & 0x0f) - 8) * d;
        y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
    }
}

void dequant_q4_1(const uint8_t* b, float* y) {
    const float d = f16_at(b);
    const float m = f16_at(b + 2);
    const uint8_t* qs = b + 4;
    for (int j = 0; j < 16; ++j) {
        y[j] = mul_add(d, static_cast<float>(qs[j] & 0x0f), m);
        y[j + 16] = mul_add(d, static_cast<float>(qs[j] >> 4), m);
    }
}

// Q5_*: the fifth bit of element j is bit j of the little-endian u32 qh.
uint32_t le32(const uint8_t* p) {
    return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
           (static_cast<uint32_t>(p[3]) << 24);
}

void dequant_q5_0(const uint8_t* b, float* y) {
    const float d = f16_at(b);
    const uint32_t qh = le32(b + 2);
    const uint8_t* qs = b + 6;
    for (int j = 0; j < 16; ++j) {
        const int lo = (qs[j] & 0x0f) | static_cast<int>(((qh >> j) & 1u) << 4);
        const int hi = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
        y[j] = static_cast<float>(lo - 16) * d;
        y[j + 16] = static_cast<float>(hi - 16) * d;
    }
}

void dequant_q5_1(const uint8_t* b, float* y) {
    const float d = f16_at(b);
    const float m = f16_at(b + 2);
    const uint32_t qh = le32(b + 4);
    const uint8_t* qs = b + 8;
    for (int j = 0; j < 16; ++j) {
        const int lo = (qs[j] & 0x0f) | static_cast<int>(((qh >> j) & 1u) << 4);
        const int hi = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
        y[j] = mul_add(d, static_cast<float>(lo), m);
        y[j + 16] = mul_add(d, static_cast<float>(hi), m);
    }
}

// The 8 six-bit scales and mins of a Q4_K/Q5_K super-block, packed in 12 bytes: sub-blocks 0-3 use the low
// 6 bits of bytes 0-3 (scale) and 4-7 (min); sub-blocks 4-7 take their low 4 bits from bytes 8-11 (scale:
// low nibble, min: high nibble) and their top 2 bits from the top bits of bytes 0-3 (scale) and 4-7 (min).
void k_scale_min(const uint8_t* s, int j, int* sc, int* mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
        *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

// Q4_K: sub-block j (32 elements) takes nibble (j % 2) of qs[32 * (j / 2) + i].
void dequant_q4_k(const uint8_t* b, float* y) {
    const float d = f16_at(b);
    const float dmin = f16_at(b + 2);
    const uint8_t* scales = b + 4;
    const uint8_t* qs = b + 16;
    for (int j = 0; j < 8; ++j) {
        int sc = 0, mn = 0;
        k_scale_min(scales, j, &sc, &mn);
        const float d1 = d * static_cast<float>(sc);
        const float m1 = dmin * static_cast<float>(mn);
        const uint8_t* q = qs + 32 * (j / 2);
        const int shift = 4 * (j % 2);
        for (int i = 0; i < 32; ++i) y[32 * j + i] = mul_sub(d1, static_cast<float>((q[i] >> shift) & 0x0f), m1);
    }
}

// Q5_K: as Q4_K, plus the fifth bit of sub-block j's element i: bit j of qh[i].
void dequant_q5_k(const uint8_t* b, float* y) {
    const float d = f16_at(b);
    const float dmin = f16_at(b + 2);
    const uint8_t* scales = b + 4;
    const uint8_t* qh = b + 16;
    const uint8_t* qs = b + 48;
    for (int j = 0; j < 8; ++j) {
        int sc = 0, mn = 0;
        k_scale_min(scales, j, &sc, &mn);
        const float d1 = d * static_cast<float>(sc);
        const float m1 = dmin * static_cast<float>(mn);
        const uint8_t* q = qs + 32 * (j / 2);
        const int shift = 4 * (j % 2);
        for (int i = 0; i < 32; ++i) {
            const int v = ((q[i] >> shift) & 0x0f) | (((qh[i] >> j) & 1) << 4);
            y[32 * j + i] = mul_sub(d1, static_cast<float>(v), m1);
        }
    }
}

// Q6_K: two halves of 128 elements; element r of half h: low 4 bits from nibble (r / 64) of
// ql[64h + r % 64], high 2 bits from bits 2 * (r / 32) of qh[32h + r % 32]; scale index (128h + r) / 16.
void dequant_q6_k(const uint8_t* b, float* y) {
    const uint8_t* ql = b;
    const uint8_t* qh = b + 128;
    const auto* sc = reinterpret_cast<const int8_t*>(b + 192);
    const float d = f16_at(b + 208);
    for (int h = 0; h < 2; ++h) {
        for (int r = 0; r < 128; ++r) {
            const int lo = (ql[64 * h + r % 64] >> (4 * (r / 64))) & 0x0f;
            const int hi = (qh[32 * h + r % 32] >> (2 * (r / 32))) & 0x03;
            const int e = 128 * h + r;
            const float ds = d * static_cast<float>(sc[e / 16]);
            y[e] = ds * static_cast<float>((lo | (hi << 4)) - 32);
        }
    }
}

}  // namespace

void ggml_dequantize(DType t, const void* src, float* dst, int64_t n) {
    const auto* p = static_cast<const uint8_t*>(src);
    switch (t) {
        case DType::f32:
            std::memcpy(dst, p, static_cast<size_t>(n) * 4);
            return;
        case DType::f16:
            for (int64_t i = 0; i < n; ++i) dst[i] = f16_at(p + 2 * i);
            return;
        case DType::bf16:
            for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(static_cast<uint16_t>(p[2 * i] | (p[2 * i + 1] << 8)));
            return;
        default:
            break;
    }
    void (*fn)(const uint8_t*, float*) = nullptr;
    switch (t) {
        case DType::gg_q8_0: fn = dequant_q8_0; break;
        case DType::gg_q4_0: fn = dequant_q4_0; break;
        case DType::gg_q4_1: fn = dequant_q4_1; break;
        case DType::gg_q5_0: fn = dequant_q5_0; break;
        case DType::gg_q5_1: fn = dequant_q5_1; break;
        case DType::gg_q4_k: fn = dequant_q4_k; break;
        case DType::gg_q5_k: fn = dequant_q5_k; break;
        case DType::gg_q6_k: fn = dequant_q6_k; break;
        default: break;
    }
    const int64_t qk = ggml_block_elems(t);
    HR_CHECK_MSG(fn != nullptr && n % qk == 0,
                 fmt::format("ggml_dequantize: dtype {} with {} elements (expected a ggml block dtype, f32, f16 or "
                             "bf16 and whole blocks)",
                             dtype_name(t), n));
    const int64_t bytes = ggml_block_bytes(t);
    for (int64_t b = 0; b < n / qk; ++b) fn(p + b * bytes, dst + b * qk);
}

Status check_ggml_cols(DType t, int64_t cols, const std::string& what) {
    const int64_t qk = ggml_block_elems(t);
    if (qk == 0) {
        return errorf("{}: dtype {} is not a ggml block format (expected Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K or "
                      "Q6_K)",
                      what, dtype_name(t));
    }
    if (cols <= 0 || cols % qk != 0) {
        return errorf("{}: {} rows must hold whole blocks of {} elements, found {} columns", what, dtype_name(t), qk,
                      cols);
    }
    return ok();
}

}  // namespace hr::quant
