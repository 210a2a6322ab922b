// Weight-only quantized formats as specifications: byte layouts and sizes. The scalar reference
// quantize/dequantize (quantize.h) is the definition every kernel is tested against.
// docs/formats.md describes the same layouts in prose.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "quant/ggml_blocks.h"

namespace hr::quant {

// int8: symmetric absmax per output row.   w[r][c] ~= scale[r] * q[r][c], q in [-127, 127]
//   data   int8 [rows, cols] row-major
//   scales f32  [rows]
constexpr int kQ8Max = 127;

// int4: symmetric absmax per group of 128 consecutive inputs of a row.
//   w[r][c] ~= scale[r][c / 128] * q, q in [-8, 7], stored as the nibble (q + 8).
//   data   u8  [rows, ceil(cols / 2)]: column 2j in the low nibble of byte j, 2j+1 in the high nibble;
//              an odd last column leaves the high nibble 0 (decodes as q = -8, times a weight never read).
//   scales f16 [rows, ceil(cols / 128)]; the last group may be shorter than 128.
constexpr int kQ4Group = 128;
constexpr int kQ4Max = 7;

constexpr int64_t q4_row_bytes(int64_t cols) { return (cols + 1) / 2; }
constexpr int64_t q4_groups(int64_t cols) { return (cols + kQ4Group - 1) / kQ4Group; }

// Bytes of the data part of a [rows, cols] weight in a storage dtype.
constexpr int64_t weight_data_bytes(DType dt, int64_t rows, int64_t cols) {
    switch (dt) {
        case DType::q4: return rows * q4_row_bytes(cols);
        case DType::q8: return rows * cols;
        default:
            if (is_ggml_block_dtype(dt)) return rows * ggml_row_bytes(dt, cols);
            return rows * cols * static_cast<int64_t>(dtype_size(dt));
    }
}

// Bytes of the scales part (0 for unquantized dtypes).
constexpr int64_t weight_scale_bytes(DType dt, int64_t rows, int64_t cols) {
    switch (dt) {
        case DType::q4: return rows * q4_groups(cols) * 2;
        case DType::q8: return rows * 4;
        default: return 0;
    }
}

}  // namespace hr::quant
