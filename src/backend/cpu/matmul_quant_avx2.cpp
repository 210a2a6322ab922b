// AVX2+FMA per-row kernels of the quantized matmuls. Every function here carries the target
// attribute, so the rest of the build needs no -mavx2; matmul_quant.cpp calls them only after
// checking the CPU at run time.
#include <algorithm>
#include <cstdint>

#include "backend/cpu/matmul_quant_kernels.h"
#include "core/half.h"
#include "core/status.h"
#include "quant/formats.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define HR_AVX2 __attribute__((target("avx2,fma")))

namespace hr::cpu::detail {
namespace {

HR_AVX2 inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// 8 int8 (the low 8 bytes of b) -> 8 f32.
HR_AVX2 inline __m256 i8x8_to_ps(__m128i b) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b)); }

template <int NB>
HR_AVX2 void q8_rows(const int8_t* w, float scale, int64_t cols, const float* in, int64_t in_stride, float* out,
                     int64_t out_stride) {
    __m256 acc0[NB], acc1[NB];
    for (int t = 0; t < NB; ++t) acc0[t] = acc1[t] = _mm256_setzero_ps();
    int64_t c = 0;
    for (; c + 16 <= cols; c += 16) {
        const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + c));
        const __m256 w0 = i8x8_to_ps(b);
        const __m256 w1 = i8x8_to_ps(_mm_srli_si128(b, 8));
        for (int t = 0; t < NB; ++t) {
            const float* x = in + t * in_stride + c;
            acc0[t] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x), acc0[t]);
            acc1[t] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + 8), acc1[t]);
        }
    }
    if (c + 8 <= cols) {
        const __m256 w0 = i8x8_to_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(w + c)));
        for (int t = 0; t < NB; ++t) acc0[t] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(in + t * in_stride + c), acc0[t]);
        c += 8;
    }
    for (int t = 0; t < NB; ++t) {
        float s = hsum(_mm256_add_ps(acc0[t], acc1[t]));
        const float* x = in + t * in_stride;
        for (int64_t k = c; k < cols; ++k) s += static_cast<float>(w[k]) * x[k];
        out[t * out_stride] = scale * s;
    }
}

// 16 packed bytes (32 columns) -> 4 x 8 f32 weights in column order, nibble - 8.
HR_AVX2 inline void unpack32(const uint8_t* p, __m256 wv[4]) {
    const __m128i mask = _mm_set1_epi8(0x0f);
    const __m128i eight = _mm_set1_epi8(8);
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i lo = _mm_and_si128(b, mask);                     // even columns
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), mask);  // odd columns
    const __m128i v0 = _mm_sub_epi8(_mm_unpacklo_epi8(lo, hi), eight);  // columns 0..15
    const __m128i v1 = _mm_sub_epi8(_mm_unpackhi_epi8(lo, hi), eight);  // columns 16..31
    wv[0] = i8x8_to_ps(v0);
    wv[1] = i8x8_to_ps(_mm_srli_si128(v0, 8));
    wv[2] = i8x8_to_ps(v1);
    wv[3] = i8x8_to_ps(_mm_srli_si128(v1, 8));
}

// 8 packed bytes (16 columns) -> 2 x 8 f32 weights.
HR_AVX2 inline void unpack16(const uint8_t* p, __m256 wv[2]) {
    const __m128i mask = _mm_set1_epi8(0x0f);
    const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    const __m128i lo = _mm_and_si128(b, mask);
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), mask);
    const __m128i v = _mm_sub_epi8(_mm_unpacklo_epi8(lo, hi), _mm_set1_epi8(8));
    wv[0] = i8x8_to_ps(v);
    wv[1] = i8x8_to_ps(_mm_srli_si128(v, 8));
}

template <int NB>
HR_AVX2 void q4_rows(const uint8_t* w, const uint16_t* scales, int64_t cols, const float* in, int64_t in_stride,
                     float* out, int64_t out_stride) {
    __m256 acc[NB];
    float tail[NB];
    for (int t = 0; t < NB; ++t) {
        acc[t] = _mm256_setzero_ps();
        tail[t] = 0.0f;
    }
    const int64_t n_groups = quant::q4_groups(cols);
    for (int64_t g = 0; g < n_groups; ++g) {
        const int64_t c0 = g * quant::kQ4Group;
        const int64_t c1 = std::min<int64_t>(cols, c0 + quant::kQ4Group);
        __m256 gacc[NB];
        float gtail[NB];
        for (int t = 0; t < NB; ++t) {
            gacc[t] = _mm256_setzero_ps();
            gtail[t] = 0.0f;
        }
        // note: c stays even (groups start at multiples of 128), so packed byte c / 2 starts a pair.
        int64_t c = c0;
        for (; c + 32 <= c1; c += 32) {
            __m256 wv[4];
            unpack32(w + c / 2, wv);
            for (int t = 0; t < NB; ++t) {
                const float* x = in + t * in_stride + c;
                __m256 a = _mm256_fmadd_ps(wv[0], _mm256_loadu_ps(x), gacc[t]);
                a = _mm256_fmadd_ps(wv[1], _mm256_loadu_ps(x + 8), a);
                a = _mm256_fmadd_ps(wv[2], _mm256_loadu_ps(x + 16), a);
                gacc[t] = _mm256_fmadd_ps(wv[3], _mm256_loadu_ps(x + 24), a);
            }
        }
        if (c + 16 <= c1) {
            __m256 wv[2];
            unpack16(w + c / 2, wv);
            for (int t = 0; t < NB; ++t) {
                const float* x = in + t * in_stride + c;
                __m256 a = _mm256_fmadd_ps(wv[0], _mm256_loadu_ps(x), gacc[t]);
                gacc[t] = _mm256_fmadd_ps(wv[1], _mm256_loadu_ps(x + 8), a);
            }
            c += 16;
        }
        for (; c < c1; ++c) {
            const uint8_t b = w[c / 2];
            const float wv = static_cast<float>(((c & 1) ? (b >> 4) : (b & 0x0f)) - 8);
            for (int t = 0; t < NB; ++t) gtail[t] += wv * in[t * in_stride + c];
        }
        const float s = f16_to_f32(scales[g]);
        const __m256 vs = _mm256_set1_ps(s);
        for (int t = 0; t < NB; ++t) {
            acc[t] = _mm256_fmadd_ps(gacc[t], vs, acc[t]);
            tail[t] += s * gtail[t];
        }
    }
    for (int t = 0; t < NB; ++t) out[t * out_stride] = hsum(acc[t]) + tail[t];
}

}  // namespace

void q8_rows_avx2(const int8_t* w, float scale, int64_t cols, const float* in, int64_t in_stride, int nb,
                  float* out, int64_t out_stride) {
    switch (nb) {
        case 1: q8_rows<1>(w, scale, cols, in, in_stride, out, out_stride); break;
        case 2: q8_rows<2>(w, scale, cols, in, in_stride, out, out_stride); break;
        case 3: q8_rows<3>(w, scale, cols, in, in_stride, out, out_stride); break;
        case 4: q8_rows<4>(w, scale, cols, in, in_stride, out, out_stride); break;
        default: HR_CHECK_MSG(false, "q8_rows_avx2: nb out of [1, kInBlock]");
    }
}

void q4_rows_avx2(const uint8_t* w, const uint16_t* scales, int64_t cols, const float* in, int64_t in_stride,
                  int nb, float* out, int64_t out_stride) {
    switch (nb) {
        case 1: q4_rows<1>(w, scales, cols, in, in_stride, out, out_stride); break;
        case 2: q4_rows<2>(w, scales, cols, in, in_stride, out, out_stride); break;
        case 3: q4_rows<3>(w, scales, cols, in, in_stride, out, out_stride); break;
        case 4: q4_rows<4>(w, scales, cols, in, in_stride, out, out_stride); break;
        default: HR_CHECK_MSG(false, "q4_rows_avx2: nb out of [1, kInBlock]");
    }
}

}  // namespace hr::cpu::detail

#else  // not x86: the AVX2 path does not exist; matmul_quant.cpp never selects it.

namespace hr::cpu::detail {

void q8_rows_avx2(const int8_t*, float, int64_t, const float*, int64_t, int, float*, int64_t) {
    HR_CHECK_MSG(false, "q8_rows_avx2 called on a non-x86 build");
}
void q4_rows_avx2(const uint8_t*, const uint16_t*, int64_t, const float*, int64_t, int, float*, int64_t) {
    HR_CHECK_MSG(false, "q4_rows_avx2 called on a non-x86 build");
}

}  // namespace hr::cpu::detail

#endif
