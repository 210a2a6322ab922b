// The warp-level tensor-core product used by the grouped MoE kernels: D (16x8 f32) += A (16x16 f16,
// row-major fragments) x B (16x8 f16, column-major fragments). Included by .cu files only.
#pragma once

#include <cstdint>

namespace hr::cuda {

__device__ __forceinline__ void mma_f16(float* d, const uint32_t* a, const uint32_t* b) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

}  // namespace hr::cuda
