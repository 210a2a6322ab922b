// Kernels of the CPU backend as free functions over raw pointers (shared by the op files).
#pragma once

#include <cstdint>

#include "core/half.h"
#include "backend/backend.h"
#include "backend/cpu/matmul_ggml.h"
#include "core/tensor.h"

namespace hr::cpu {

// Element i of a row of a plain (f32/f16/bf16) array, as f32.
inline float load_elem(DType dt, const void* base, int64_t i) {
    switch (dt) {
        case DType::f32: return static_cast<const float*>(base)[i];
        case DType::f16: return f16_to_f32(static_cast<const uint16_t*>(base)[i]);
        case DType::bf16: return bf16_to_f32(static_cast<const uint16_t*>(base)[i]);
        default: HR_CHECK_MSG(false, "load_elem: not a plain float dtype");
    }
    return 0.0f;
}

inline void store_elem(DType dt, void* base, int64_t i, float v) {
    switch (dt) {
        case DType::f32: static_cast<float*>(base)[i] = v; return;
        case DType::f16: static_cast<uint16_t*>(base)[i] = f32_to_f16(v); return;
        case DType::bf16: static_cast<uint16_t*>(base)[i] = f32_to_bf16(v); return;
        default: HR_CHECK_MSG(false, "store_elem: not a plain float dtype");
    }
}

// Converts row r of a weight (any dtype the tiled matmul supports) to its exact f32 values.   out [w.cols]
void weight_row_f32(const Weight& w, int64_t r, float* out);

// out [n, w.rows] = in [n, w.cols] . W^T, any weight dtype.
void matmul_f32(float* out, const float* in, int64_t n, const Weight& w);

// Step 2 of CpuBackend::attention (the cache already holds the new keys and values) on a chosen path:
// scalar is the reference (online softmax per token and head), AVX2/AVX-512 the vector kernels.
void attend_cached(CpuIsa isa, const AttentionArgs& a);

}  // namespace hr::cpu
