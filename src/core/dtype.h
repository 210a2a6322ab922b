// Element types headroom stores and computes with, and their sizes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace hr {

// note: q8 and q4 are weight-only block formats (docs/formats.md); their data bytes are not
// numel * element_size, use weight_bytes() in quant/ for them.
enum class DType : uint8_t { f32, f16, bf16, i32, i64, u8, i8, q8, q4 };

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
    }
    return "?";
}

}  // namespace hr
