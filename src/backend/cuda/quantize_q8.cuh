// Quantize-on-load to int8 on the device: rows of an f32/f16/bf16 source (in pinned host memory the
// device reads directly, or device memory) into int8 data and f32 scales, bit-identical to the host
// reference quant::quantize_row_q8 (same absmax, same scale search, IEEE division, round half away).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/dtype.h"

namespace hr::cuda {

// Largest row the kernel takes (the row is kept in shared memory as f32); longer rows stay on the host.
inline constexpr int64_t kQuantizeQ8MaxCols = 32768;

// src [rows, cols] (f32, f16 or bf16) -> q [rows, cols] int8, scales [rows] f32. A row holding a
// non-finite value sets *bad to 1 and leaves that row unwritten (the caller redoes it on the host for
// the error message).
void launch_quantize_q8_rows(cudaStream_t s, const void* src, DType src_dtype, int64_t rows, int64_t cols, int8_t* q,
                             float* scales, int* bad);

}  // namespace hr::cuda
