// AVX-512 (F/BW/VL) path of the tiled matmul: the 16-lane vector type and the kernel table; the kernels
// themselves are matmul_ggml_simd.inc. matmul_ggml.cpp calls this path only after checking the CPU.
#include <cstdint>
#include <cstring>

#include "backend/cpu/matmul_ggml_kernels.h"
#include "core/half.h"
#include "quant/formats.h"

#if defined(__x86_64__) || defined(__i386__)
// note: GCC 12 reports the deliberately undefined start value inside its own AVX-512 widening intrinsics
// (_mm512_cvtepu8_epi32 ...) as maybe-uninitialized; the warning is about the header, not this code.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")

namespace hr::cpu::detail {
namespace {

struct V512 {
    static constexpr int W = 16;
    using F = __m512;
    using I = __m512i;
    static F zero() { return _mm512_setzero_ps(); }
    static F set1(float x) { return _mm512_set1_ps(x); }
    static F load(const float* p) { return _mm512_loadu_ps(p); }
    static void store(float* p, F v) { _mm512_storeu_ps(p, v); }
    static F add(F a, F b) { return _mm512_add_ps(a, b); }
    static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
    static F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
    static F fmsub(F a, F b, F c) { return _mm512_fmsub_ps(a, b, c); }
    static float hsum(F v) { return _mm512_reduce_add_ps(v); }
    static I u8(const uint8_t* p) { return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
    static I i8(const int8_t* p) { return _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
    static I u8_dup(const uint8_t* p) {
        const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
        return _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(b, b));
    }
    static I alt04() { return _mm512_set_epi32(4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0); }
    static F bf16(const uint16_t* p) {
        const __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
        return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
    }
    static F f16(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
    static I and_(I a, int m) { return _mm512_and_si512(a, _mm512_set1_epi32(m)); }
    static I or_(I a, I b) { return _mm512_or_si512(a, b); }
    static I srl(I a, int n) { return _mm512_srli_epi32(a, static_cast<unsigned>(n)); }
    static I sll(I a, int n) { return _mm512_slli_epi32(a, static_cast<unsigned>(n)); }
    static I srlv(I a, I n) { return _mm512_srlv_epi32(a, n); }
    static I subi(I a, int n) { return _mm512_sub_epi32(a, _mm512_set1_epi32(n)); }
    static F cvt(I a) { return _mm512_cvtepi32_ps(a); }
};

#include "backend/cpu/matmul_ggml_simd.inc"

constexpr int kNr = 12;  // 12 rows x 2 vectors = 24 accumulators of the 32 registers

}  // namespace

const IsaKernels& avx512_kernels() {
    static const IsaKernels k{kNr, 2 * V512::W, dot_simd<V512>, tile_simd<V512, kNr>, simd_decoder<V512>};
    return k;
}

}  // namespace hr::cpu::detail

#pragma GCC pop_options

#else  // not x86: matmul_ggml.cpp never selects this path.

namespace hr::cpu::detail {
const IsaKernels& avx512_kernels() { return scalar_kernels(); }
}  // namespace hr::cpu::detail

#endif
