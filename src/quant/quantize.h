// Scalar reference quantize / dequantize for the int8 (q8) and int4 (q4) weight formats of
// quant/formats.h. This is the definition of each format: every kernel is tested against it.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/status.h"

namespace hr::quant {

// note: rounding of w / scale is round-half-away-from-zero (std::round), in f32.
// note: a non-finite input value is an error; the output is then unspecified and must not be used.

// int8, one f32 scale per row: scale = smallest f32 with 127 * scale >= absmax (absmax / 127 in
// practice), q = round(w / scale) in [-127, 127]. An all-zero row gives scale 0 and q = 0.
// w [cols] f32 -> q [cols] int8, *scale
Status quantize_row_q8(const float* w, int64_t cols, int8_t* q, float* scale);
// out [cols] f32 = scale * q
void dequantize_row_q8(const int8_t* q, float scale, int64_t cols, float* out);

// int4, one f16 scale per group of kQ4Group columns (the last group may be shorter):
// the stored scale is the smallest f16 s with 7 * s >= absmax(group), and the group is quantized
// with that stored s, so q = round(w / s) lies in [-7, 7] and |w - s q| <= s / 2 holds exactly as
// dequantize sees it. An all-zero group gives s = 0 and q = 0 (nibble 8). A group whose absmax / 7
// exceeds the f16 range (65504) is an error.
// w [cols] f32 -> q [q4_row_bytes(cols)] packed nibbles, scales_f16 [q4_groups(cols)]
Status quantize_row_q4(const float* w, int64_t cols, uint8_t* q, uint16_t* scales_f16);
// out [cols] f32 = scale[c / 128] * (nibble(c) - 8)
void dequantize_row_q4(const uint8_t* q, const uint16_t* scales_f16, int64_t cols, float* out);

// Quantize a row-major matrix src [rows, cols] of src_dtype (f32, f16 or bf16) into target (q8 or
// q4): data_out holds weight_data_bytes(target, rows, cols) bytes and scales_out
// weight_scale_bytes(target, rows, cols) bytes (layouts in formats.h). Large matrices are split
// over the hardware threads by rows. The error of a non-finite value names its row and column.
Status quantize_matrix(DType target, const void* src, DType src_dtype, int64_t rows, int64_t cols,
                       void* data_out, void* scales_out);

// Dequantize a q8 or q4 matrix back to f32: out [rows, cols]. Checks the dtype (q8|q4).
Status dequantize_matrix(DType dtype, const void* data, const void* scales, int64_t rows, int64_t cols,
                         float* out);

}  // namespace hr::quant
