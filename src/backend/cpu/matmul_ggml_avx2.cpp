// AVX2+FMA path of the tiled matmul: the 8-lane vector type and the kernel table; the kernels themselves
// are matmul_ggml_simd.inc. matmul_ggml.cpp calls this path only after checking the CPU.
#include <cstdint>
#include <cstring>

#include "backend/cpu/matmul_ggml_kernels.h"
#include "core/half.h"
#include "quant/formats.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

namespace hr::cpu::detail {
namespace {

struct V256 {
    static constexpr int W = 8;
    using F = __m256;
    using I = __m256i;
    static F zero() { return _mm256_setzero_ps(); }
    static F set1(float x) { return _mm256_set1_ps(x); }
    static F load(const float* p) { return _mm256_loadu_ps(p); }
    static void store(float* p, F v) { _mm256_storeu_ps(p, v); }
    static F add(F a, F b) { return _mm256_add_ps(a, b); }
    static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
    static F fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
    static F fmsub(F a, F b, F c) { return _mm256_fmsub_ps(a, b, c); }
    static float hsum(F v) {
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        s = _mm_add_ss(s, _mm_movehdup_ps(s));
        return _mm_cvtss_f32(s);
    }
    static I u8(const uint8_t* p) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))); }
    static I i8(const int8_t* p) { return _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))); }
    static I u8_dup(const uint8_t* p) {
        int32_t v;
        std::memcpy(&v, p, 4);
        const __m128i b = _mm_cvtsi32_si128(v);
        return _mm256_cvtepu8_epi32(_mm_unpacklo_epi8(b, b));
    }
    static I alt04() { return _mm256_set_epi32(4, 0, 4, 0, 4, 0, 4, 0); }
    static F bf16(const uint16_t* p) {
        const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
    }
    static F f16(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
    static I and_(I a, int m) { return _mm256_and_si256(a, _mm256_set1_epi32(m)); }
    static I or_(I a, I b) { return _mm256_or_si256(a, b); }
    static I srl(I a, int n) { return _mm256_srli_epi32(a, n); }
    static I sll(I a, int n) { return _mm256_slli_epi32(a, n); }
    static I srlv(I a, I n) { return _mm256_srlv_epi32(a, n); }
    static I subi(I a, int n) { return _mm256_sub_epi32(a, _mm256_set1_epi32(n)); }
    static F cvt(I a) { return _mm256_cvtepi32_ps(a); }
};

#include "backend/cpu/matmul_ggml_simd.inc"

constexpr int kNr = 6;  // 6 rows x 2 vectors = 12 accumulators of the 16 registers

}  // namespace

const IsaKernels& avx2_kernels() {
    static const IsaKernels k{kNr, 2 * V256::W, dot_simd<V256>, tile_simd<V256, kNr>, simd_decoder<V256>};
    return k;
}

}  // namespace hr::cpu::detail

#pragma GCC pop_options

#else  // not x86: matmul_ggml.cpp never selects this path.

namespace hr::cpu::detail {
const IsaKernels& avx2_kernels() { return scalar_kernels(); }
}  // namespace hr::cpu::detail

#endif
