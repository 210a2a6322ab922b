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

#include "backend/cpu/simd_avx512.inc"

#include "backend/cpu/matmul_ggml_simd.inc"

constexpr int kNr = 12;  // 12 rows x 2 vectors = 24 accumulators of the 32 registers

}  // namespace

const IsaKernels& avx512_kernels() {
    static const IsaKernels k{kNr, 2 * V512::W, dot_simd<V512>, tile_simd<V512, kNr>, pack_panel_avx2, simd_decoder<V512>};
    return k;
}

}  // namespace hr::cpu::detail

#pragma GCC pop_options

#else  // not x86: matmul_ggml.cpp never selects this path.

namespace hr::cpu::detail {
const IsaKernels& avx512_kernels() { return scalar_kernels(); }
}  // namespace hr::cpu::detail

#endif
