// Element types headroom stores and computes with, and their sizes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace hr {

// note: q8 and q4 are weight-only block formats (docs/formats.md); their data bytes are not
// numel * element_size, use weight_bytes() in quant/ for them.
// The gg_* types are GGUF/ggml block formats kept exactly as the file stores them (quant/ggml_blocks.h):
// a Weight of such a dtype has its blocks in `data` (row-major, cols a multiple of the block size) and no
// separate `scales`. Backends either run them natively or refuse them with an error naming the type.
enum class DType : uint8_t {
    f32, f16, bf16, i32, i64, u8, i8, q8, q4,
    gg_q8_0, gg_q4_0, gg_q4_1, gg_q5_0, gg_q5_1, gg_q4_k, gg_q5_k, gg_q6_k,
    f8_e4m3,  // fp8 (1 sign, 4 exponent, 3 mantissa bits; no infinities), the quantized KV cache's (core/kv_quant.h)
};

constexpr bool is_ggml_block_dtype(DType t) {
    return t == DType::gg_q8_0 || t == DType::gg_q4_0 || t == DType::gg_q4_1 || t == DType::gg_q5_0 ||
           t == DType::gg_q5_1 || t == DType::gg_q4_k || t == DType::gg_q5_k || t == DType::gg_q6_k;
}

constexpr size_t dtype_size(DType t) {
    switch (t) {
        case DType::f32: return 4;
        case DType::f16: return 2;
        case DType::bf16: return 2;
        case DType::i32: return 4;
        case DType::i64: return 8;
        case DType::u8: return 1;
        case DType::i8: return 1;
        case DType::q8: return 1;
        case DType::q4: return 0;  // sub-byte: see quant/
        case DType::f8_e4m3: return 1;
        default: return 0;         // gg_* block formats: see quant/ggml_blocks.h
    }
    return 0;
}

constexpr std::string_view dtype_name(DType t) {
    switch (t) {
        case DType::f32: return "f32";
        case DType::f16: return "f16";
        case DType::bf16: return "bf16";
        case DType::i32: return "i32";
        case DType::i64: return "i64";
        case DType::u8: return "u8";
        case DType::i8: return "i8";
        case DType::q8: return "int8";
        case DType::q4: return "int4";
        case DType::gg_q8_0: return "Q8_0";
        case DType::gg_q4_0: return "Q4_0";
        case DType::gg_q4_1: return "Q4_1";
        case DType::gg_q5_0: return "Q5_0";
        case DType::gg_q5_1: return "Q5_1";
        case DType::gg_q4_k: return "Q4_K";
        case DType::gg_q5_k: return "Q5_K";
        case DType::gg_q6_k: return "Q6_K";
        case DType::f8_e4m3: return "fp8";
    }
    return "?";
}

}  // namespace hr
