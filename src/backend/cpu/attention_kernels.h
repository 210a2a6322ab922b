// Internal to the CPU backend: the SIMD core of attention (attention.cpp gathers keys and values, then
// calls these per block of queries). AVX2 in attention_avx2.cpp, AVX-512 in attention_avx512.cpp.
#pragma once

#include <cstdint>

#include "backend/cpu/matmul_ggml.h"

namespace hr::cpu::detail {

// One kv head of one sequence against the queries of `n_tok` tokens of that sequence.
struct AttnBlock {
    const float* kt = nullptr;  // keys transposed [hd][ldk], positions 0..np-1, zero past np
    const float* v = nullptr;   // values [np][hd]
    int64_t ldk = 0;            // a multiple of kAttnKeyStep
    int64_t np = 0;             // keys gathered (max position + 1 over the tokens)
    int64_t hd = 0;             // head dim, a multiple of the vector width
    int group = 0;              // query heads sharing this kv head
    int n_tok = 0;
    const float* const* q = nullptr;  // q[i]: token i's `group` query heads [group][hd]
    float* const* out = nullptr;      // out[i]: [group][hd]
    const int32_t* pos = nullptr;     // token i attends to keys 0..pos[i]
    float scale = 1.0f;
    float* scores = nullptr;  // scratch [4][ldk]
};

constexpr int64_t kAttnKeyStep = 64;

using AttnFn = void (*)(const AttnBlock& b);

// The kernel of `isa`, or nullptr when there is none (scalar) or when hd is not a multiple of its width.
AttnFn attention_kernel(CpuIsa isa, int64_t hd);
AttnFn attention_kernel_avx2(int64_t hd);
AttnFn attention_kernel_avx512(int64_t hd);

}  // namespace hr::cpu::detail
