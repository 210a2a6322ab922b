// Scalar pieces of the tiled matmul: the exact row decoders of every weight dtype (the GGUF block formats
// in ggml's arithmetic order, so that the values equal quant::ggml_dequantize bit for bit), a plain dot
// product and a plain micro-kernel. They are the portable path and the definition the SIMD paths match.
#include <cstring>

#include "backend/cpu/matmul_ggml_kernels.h"
#include "core/half.h"
#include "core/status.h"
#include "quant/formats.h"
#include "quant/ggml_blocks.h"

namespace hr::cpu::detail {
namespace {

// note: this file is compiled without FMA, so a * b + c rounds twice, as ggml's reference C does.

float fp16(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return f16_to_f32(h);
}

void dec_q8_0(const uint8_t* b, float* y) {  // d, qs[32]
    const float d = fp16(b);
    const auto* qs = reinterpret_cast<const int8_t*>(b + 2);
    for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(qs[j]) * d;
}

void dec_q4_0(const uint8_t* b, float* y) {  // d, qs[16]
    const float d = fp16(b);
    const uint8_t* qs = b + 2;
    for (int j = 0; j < 16; ++j) {
        y[j] = static_cast<float>((qs[j] & 0x0f) - 8) * d;
        y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
    }
}

void dec_q4_1(const uint8_t* b, float* y) {  // d, m, qs[16]
    const float d = fp16(b), m = fp16(b + 2);
    const uint8_t* qs = b + 4;
    for (int j = 0; j < 16; ++j) {
        y[j] = static_cast<float>(qs[j] & 0x0f) * d + m;
        y[j + 16] = static_cast<float>(qs[j] >> 4) * d + m;
    }
}

void dec_q5_0(const uint8_t* b, float* y) {  // d, qh[4], qs[16]
    const float d = fp16(b);
    uint32_t qh;
    std::memcpy(&qh, b + 2, 4);
    const uint8_t* qs = b + 6;
    for (int j = 0; j < 16; ++j) {
        const uint32_t h0 = ((qh >> j) << 4) & 0x10u, h1 = (qh >> (j + 12)) & 0x10u;
        y[j] = static_cast<float>(static_cast<int>((qs[j] & 0x0fu) | h0) - 16) * d;
        y[j + 16] = static_cast<float>(static_cast<int>((qs[j] >> 4) | h1) - 16) * d;
    }
}

void dec_q5_1(const uint8_t* b, float* y) {  // d, m, qh[4], qs[16]
    const float d = fp16(b), m = fp16(b + 2);
    uint32_t qh;
    std::memcpy(&qh, b + 4, 4);
    const uint8_t* qs = b + 8;
    for (int j = 0; j < 16; ++j) {
        const uint32_t h0 = ((qh >> j) << 4) & 0x10u, h1 = (qh >> (j + 12)) & 0x10u;
        y[j] = static_cast<float>((qs[j] & 0x0fu) | h0) * d + m;
        y[j + 16] = static_cast<float>((qs[j] >> 4) | h1) * d + m;
    }
}

}  // namespace

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K super-block's scales[12].
void k4_scale_min(const uint8_t* s, int j, uint8_t* sc, uint8_t* mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = static_cast<uint8_t>((s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4));
        *mn = static_cast<uint8_t>((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

namespace {

void dec_q4_k(const uint8_t* b, float* y) {  // d, dmin, scales[12], qs[128]
    const float d = fp16(b), dmin = fp16(b + 2);
    const uint8_t* sc = b + 4;
    const uint8_t* q = b + 16;
    for (int j = 0; j < 4; ++j) {
        uint8_t s0, m0, s1, m1;
        k4_scale_min(sc, 2 * j, &s0, &m0);
        k4_scale_min(sc, 2 * j + 1, &s1, &m1);
        const float d1 = d * s0, mm1 = dmin * m0, d2 = d * s1, mm2 = dmin * m1;
        for (int l = 0; l < 32; ++l) y[l] = d1 * static_cast<float>(q[l] & 0x0f) - mm1;
        for (int l = 0; l < 32; ++l) y[l + 32] = d2 * static_cast<float>(q[l] >> 4) - mm2;
        q += 32;
        y += 64;
    }
}

void dec_q5_k(const uint8_t* b, float* y) {  // d, dmin, scales[12], qh[32], qs[128]
    const float d = fp16(b), dmin = fp16(b + 2);
    const uint8_t* sc = b + 4;
    const uint8_t* qh = b + 16;
    const uint8_t* ql = b + 48;
    unsigned u1 = 1, u2 = 2;
    for (int j = 0; j < 4; ++j) {
        uint8_t s0, m0, s1, m1;
        k4_scale_min(sc, 2 * j, &s0, &m0);
        k4_scale_min(sc, 2 * j + 1, &s1, &m1);
        const float d1 = d * s0, mm1 = dmin * m0, d2 = d * s1, mm2 = dmin * m1;
        for (int l = 0; l < 32; ++l)
            y[l] = d1 * static_cast<float>((ql[l] & 0x0f) + ((qh[l] & u1) ? 16 : 0)) - mm1;
        for (int l = 0; l < 32; ++l) y[l + 32] = d2 * static_cast<float>((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - mm2;
        ql += 32;
        y += 64;
        u1 <<= 2;
        u2 <<= 2;
    }
}

void dec_q6_k(const uint8_t* b, float* y) {  // ql[128], qh[64], int8 scales[16], d
    const float d = fp16(b + 208);
    const uint8_t* ql = b;
    const uint8_t* qh = b + 128;
    const auto* sc = reinterpret_cast<const int8_t*>(b + 192);
    for (int n = 0; n < 2; ++n) {
        for (int l = 0; l < 32; ++l) {
            const int is = l / 16;
            const int q1 = ((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32;
            const int q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * static_cast<float>(sc[is + 0]) * static_cast<float>(q1);
            y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
            y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
            y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
        }
        y += 128;
        ql += 64;
        qh += 32;
        sc += 8;
    }
}

template <void (*Block)(const uint8_t*, float*), DType DT>
const float* dec_ggml_row(const Weight& w, int64_t r, float* out) {
    constexpr int64_t qk = quant::ggml_block_elems(DT), bb = quant::ggml_block_bytes(DT);
    const int64_t nb = w.cols / qk;
    const uint8_t* row = static_cast<const uint8_t*>(w.data) + r * nb * bb;
    for (int64_t i = 0; i < nb; ++i) Block(row + i * bb, out + i * qk);
    return out;
}

const float* dec_f32(const Weight& w, int64_t r, float*) { return static_cast<const float*>(w.data) + r * w.cols; }

const float* dec_bf16(const Weight& w, int64_t r, float* out) {
    const uint16_t* s = static_cast<const uint16_t*>(w.data) + r * w.cols;
    for (int64_t i = 0; i < w.cols; ++i) out[i] = bf16_to_f32(s[i]);
    return out;
}

const float* dec_f16(const Weight& w, int64_t r, float* out) {
    const uint16_t* s = static_cast<const uint16_t*>(w.data) + r * w.cols;
    for (int64_t i = 0; i < w.cols; ++i) out[i] = f16_to_f32(s[i]);
    return out;
}

// int8: scale[r] * q (quant::dequantize_row_q8's values).
const float* dec_q8(const Weight& w, int64_t r, float* out) {
    const int8_t* q = static_cast<const int8_t*>(w.data) + r * w.cols;
    const float s = static_cast<const float*>(w.scales)[r];
    for (int64_t i = 0; i < w.cols; ++i) out[i] = s * static_cast<float>(q[i]);
    return out;
}

// int4: scale[r][c / 128] * (nibble - 8), column 2j in the low nibble of byte j.
const float* dec_q4(const Weight& w, int64_t r, float* out) {
    const int64_t c = w.cols;
    const uint8_t* q = static_cast<const uint8_t*>(w.data) + r * quant::q4_row_bytes(c);
    const uint16_t* sc = static_cast<const uint16_t*>(w.scales) + r * quant::q4_groups(c);
    for (int64_t i = 0; i < c; ++i) {
        const uint8_t b = q[i / 2];
        const int v = ((i & 1) ? (b >> 4) : (b & 0x0f)) - 8;
        out[i] = f16_to_f32(sc[i / quant::kQ4Group]) * static_cast<float>(v);
    }
    return out;
}

void dot_scalar(const float* w, int64_t ldw, int nr, int64_t k, const float* x, int nb, float* out, int64_t os) {
    for (int r = 0; r < nr; ++r) {
        for (int t = 0; t < nb; ++t) {
            const float* xt = x + t * k;
            float acc = 0.0f;
            for (int64_t i = 0; i < k; ++i) acc += w[r * ldw + i] * xt[i];
            out[t * os + r] = acc;
        }
    }
}

constexpr int kNr = 4, kP = 8;

void tile_scalar(const float* w, int64_t ldw, const float* ap, int64_t k, int m, int nr, float* out, int64_t ldo) {
    float acc[kNr][kP] = {};
    for (int64_t kk = 0; kk < k; ++kk) {
        for (int i = 0; i < kNr; ++i) {
            const float wv = w[i * ldw + kk];
            for (int j = 0; j < kP; ++j) acc[i][j] += wv * ap[kk * kP + j];
        }
    }
    for (int i = 0; i < nr; ++i)
        for (int j = 0; j < m; ++j) out[j * ldo + i] = acc[i][j];
}

RowDecoder no_fast_decoder(DType) { return nullptr; }

}  // namespace

void pack_panel_scalar(const float* in, int64_t k, int64_t t0, int64_t m, int P, float* ap) {
    for (int j = 0; j < P; ++j) {
        const float* src = in + (t0 + j) * k;
        if (j < m)
            for (int64_t kk = 0; kk < k; ++kk) ap[kk * P + j] = src[kk];
        else
            for (int64_t kk = 0; kk < k; ++kk) ap[kk * P + j] = 0.0f;
    }
}

RowDecoder scalar_decoder(DType dt) {
    switch (dt) {
        case DType::f32: return dec_f32;
        case DType::bf16: return dec_bf16;
        case DType::f16: return dec_f16;
        case DType::q8: return dec_q8;
        case DType::q4: return dec_q4;
        case DType::gg_q8_0: return dec_ggml_row<dec_q8_0, DType::gg_q8_0>;
        case DType::gg_q4_0: return dec_ggml_row<dec_q4_0, DType::gg_q4_0>;
        case DType::gg_q4_1: return dec_ggml_row<dec_q4_1, DType::gg_q4_1>;
        case DType::gg_q5_0: return dec_ggml_row<dec_q5_0, DType::gg_q5_0>;
        case DType::gg_q5_1: return dec_ggml_row<dec_q5_1, DType::gg_q5_1>;
        case DType::gg_q4_k: return dec_ggml_row<dec_q4_k, DType::gg_q4_k>;
        case DType::gg_q5_k: return dec_ggml_row<dec_q5_k, DType::gg_q5_k>;
        case DType::gg_q6_k: return dec_ggml_row<dec_q6_k, DType::gg_q6_k>;
        default: return nullptr;
    }
}

const IsaKernels& scalar_kernels() {
    static const IsaKernels k{kNr, kP, dot_scalar, tile_scalar, pack_panel_scalar, no_fast_decoder};
    return k;
}

}  // namespace hr::cpu::detail
