// GGUF/ggml block formats, kept exactly as a GGUF file stores them (DType::gg_*): sizes, byte layouts and
// the scalar reference dequantizer. The dequantizer reproduces ggml's own values bit for bit (f32
// arithmetic in ggml's order); every faster kernel (CPU SIMD, CUDA) is tested against it.
//
// Layouts (little-endian; `d`, `m`, `dmin` are f16 unless said otherwise); QK = elements per block:
//   Q8_0  QK 32,  34 B: d, int8 qs[32]                               x = d * q
//   Q4_0  QK 32,  18 B: d, u8 qs[16] (low nibbles: 0..15, high: 16..31) x = d * (q - 8)
//   Q4_1  QK 32,  20 B: d, m, u8 qs[16]                               x = d * q + m
//   Q5_0  QK 32,  22 B: d, u8 qh[4] (bit 4 of each q), u8 qs[16]      x = d * (q - 16)
//   Q5_1  QK 32,  24 B: d, m, u8 qh[4], u8 qs[16]                     x = d * q + m
//   Q4_K  QK 256, 144 B: d, dmin, u8 scales[12] (8 x 6-bit scale/min), u8 qs[128]
//                                                                     x = d*sc[j] * q - dmin*mn[j]
//   Q5_K  QK 256, 176 B: d, dmin, u8 scales[12], u8 qh[32], u8 qs[128]
//   Q6_K  QK 256, 210 B: u8 ql[128], u8 qh[64], int8 scales[16], d    x = d * sc[j] * (q - 32)
// note: a row of `cols` elements is cols / QK consecutive blocks; cols must be a multiple of QK.
#pragma once

#include <cstdint>
#include <string>

#include "core/dtype.h"
#include "core/status.h"

namespace hr::quant {

// Elements per block (0 when `t` is not a ggml block dtype).
constexpr int64_t ggml_block_elems(DType t) {
    switch (t) {
        case DType::gg_q8_0:
        case DType::gg_q4_0:
        case DType::gg_q4_1:
        case DType::gg_q5_0:
        case DType::gg_q5_1: return 32;
        case DType::gg_q4_k:
        case DType::gg_q5_k:
        case DType::gg_q6_k: return 256;
        default: return 0;
    }
}

// Bytes per block (0 when `t` is not a ggml block dtype).
constexpr int64_t ggml_block_bytes(DType t) {
    switch (t) {
        case DType::gg_q8_0: return 34;
        case DType::gg_q4_0: return 18;
        case DType::gg_q4_1: return 20;
        case DType::gg_q5_0: return 22;
        case DType::gg_q5_1: return 24;
        case DType::gg_q4_k: return 144;
        case DType::gg_q5_k: return 176;
        case DType::gg_q6_k: return 210;
        default: return 0;
    }
}

// Bytes of one row of `cols` elements; the caller has checked cols % ggml_block_elems(t) == 0.
constexpr int64_t ggml_row_bytes(DType t, int64_t cols) {
    return ggml_block_elems(t) ? cols / ggml_block_elems(t) * ggml_block_bytes(t) : 0;
}

// Dequantizes `n` elements (a multiple of the block size) starting at block-aligned `src` into `dst`.
// Exactly ggml's values (the reference: the `gguf` PyPI package's dequantize, and ggml's
// dequantize_row_* functions; tests/unit/quant/ggml_blocks_test.cpp). Also takes f32, f16 and bf16
// (little-endian bytes). Any other dtype, or n not whole blocks, is a caller bug (HR_CHECK): check the
// tensor with check_ggml_cols first. `src` needs no alignment.
void ggml_dequantize(DType t, const void* src, float* dst, int64_t n);

// An error unless `cols` is a positive multiple of the block size of `t`; `what` names the tensor.
Status check_ggml_cols(DType t, int64_t cols, const std::string& what);

}  // namespace hr::quant
