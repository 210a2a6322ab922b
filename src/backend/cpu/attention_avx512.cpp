// AVX-512 path of the CPU attention core (attention_simd.inc); attention.cpp calls it only after
// checking the CPU.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "backend/cpu/attention_kernels.h"
#include "core/half.h"

#if defined(__x86_64__) || defined(__i386__)
// note: GCC 12 warns about the undefined start value inside its own AVX-512 intrinsics (see matmul_ggml_avx512.cpp).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")

namespace hr::cpu::detail {
namespace {

#include "backend/cpu/simd_avx512.inc"
#include "backend/cpu/attention_simd.inc"

}  // namespace

AttnFn attention_kernel_avx512(int64_t hd) { return attn_kernel_for<V512>(hd); }

}  // namespace hr::cpu::detail

#pragma GCC pop_options

#else

namespace hr::cpu::detail {
AttnFn attention_kernel_avx512(int64_t) { return nullptr; }
}  // namespace hr::cpu::detail

#endif
