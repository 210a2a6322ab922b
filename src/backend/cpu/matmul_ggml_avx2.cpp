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

#include "backend/cpu/simd_avx2.inc"

#include "backend/cpu/matmul_ggml_simd.inc"

constexpr int kNr = 6;  // 6 rows x 2 vectors = 12 accumulators of the 16 registers

// 8 rows of 8 floats (row stride `ld`) transposed into dst (row stride `ldd`).
void transpose8(const float* src, int64_t ld, float* dst, int64_t ldd) {
    __m256 r[8], t[8];
    for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * ld);
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        r[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    // r[0..3] hold columns 0,1,2,3 of rows 0-3 (low lanes) and columns 4..7 (high lanes); likewise r[4..7].
    for (int c = 0; c < 4; ++c) {
        _mm256_storeu_ps(dst + c * ldd, _mm256_permute2f128_ps(r[c], r[c + 4], 0x20));
        _mm256_storeu_ps(dst + (c + 4) * ldd, _mm256_permute2f128_ps(r[c], r[c + 4], 0x31));
    }
}

}  // namespace

void pack_panel_avx2(const float* in, int64_t k, int64_t t0, int64_t m, int P, float* ap) {
    int j = 0;
    for (; j + 8 <= m; j += 8) {
        const float* src = in + (t0 + j) * k;
        int64_t kk = 0;
        for (; kk + 8 <= k; kk += 8) transpose8(src + kk, k, ap + kk * P + j, P);
        for (; kk < k; ++kk)
            for (int i = 0; i < 8; ++i) ap[kk * P + j + i] = src[i * k + kk];
    }
    for (; j < P; ++j) {
        const float* src = in + (t0 + j) * k;
        for (int64_t kk = 0; kk < k; ++kk) ap[kk * P + j] = j < m ? src[kk] : 0.0f;
    }
}

const IsaKernels& avx2_kernels() {
    static const IsaKernels k{kNr, 2 * V256::W, dot_simd<V256>, tile_simd<V256, kNr>, pack_panel_avx2, simd_decoder<V256>};
    return k;
}

}  // namespace hr::cpu::detail

#pragma GCC pop_options

#else  // not x86: matmul_ggml.cpp never selects this path.

namespace hr::cpu::detail {
const IsaKernels& avx2_kernels() { return scalar_kernels(); }
void pack_panel_avx2(const float* in, int64_t k, int64_t t0, int64_t m, int P, float* ap) {
    pack_panel_scalar(in, k, t0, m, P, ap);
}
}  // namespace hr::cpu::detail

#endif
