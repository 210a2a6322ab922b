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
