// Storage dtypes per tensor and their byte sizes (see weight_format.h for the decisions).
#include "memory/weight_format.h"

#include "model/activations.h"
#include "quant/formats.h"

namespace hr {

Result<std::optional<DType>> parse_weight_format(std::string_view s) {
    if (s == "auto") return std::optional<DType>{};
    if (s == "bf16") return std::optional<DType>{DType::bf16};
    if (s == "f16") return std::optional<DType>{DType::f16};
    if (s == "int8") return std::optional<DType>{DType::q8};
    if (s == "int4") return std::optional<DType>{DType::q4};
    return errorf("--weights: expected one of bf16, f16, int8, int4, auto; found '{}'", std::string(s));
}

Result<DType> parse_kv_dtype(std::string_view s) {
    if (s == "f16") return DType::f16;
    if (s == "bf16") return DType::bf16;
    if (s == "f32") return DType::f32;
    if (s == "int8") return DType::i8;
    if (s == "fp8") return DType::f8_e4m3;
    return errorf("--kv-cache: expected one of f16, bf16, f32, int8, fp8; found '{}'", std::string(s));
}

bool is_kv_dtype(DType t) {
    return t == DType::f16 || t == DType::bf16 || t == DType::f32 || t == DType::i8 || t == DType::f8_e4m3;
}

std::string_view kv_dtype_name(DType t) { return t == DType::i8 ? "int8" : dtype_name(t); }

bool is_weight_format(DType t) {
    return t == DType::bf16 || t == DType::f16 || t == DType::q8 || t == DType::q4;
}

DType storage_dtype_for(const TensorSpec& t, DType weight_format, DType checkpoint_dtype) {
    if (!t.quantizable) return checkpoint_dtype;
    if (t.role == TensorRole::output_head && weight_format == DType::q4) return DType::q8;
    return weight_format;
}

DType storage_dtype_for(const TensorSpec& t, DType weight_format, DType checkpoint_dtype,
                        const CheckpointDtypes* per_tensor) {
    if (!per_tensor) return storage_dtype_for(t, weight_format, checkpoint_dtype);
    const auto it = per_tensor->by_name.find(t.hf_name);
    const DType file = it == per_tensor->by_name.end() ? checkpoint_dtype : it->second;
    if (weight_format == per_tensor->native) return file;
    const bool plain = file == DType::f32 || file == DType::f16 || file == DType::bf16;
    return storage_dtype_for(t, weight_format, plain ? file : DType::f32);
}

TensorBytes stored_tensor_bytes(const TensorSpec& t, DType storage) {
    const int64_t rows = t.rows(), cols = t.cols();
    TensorBytes b;
    b.data = align_up(static_cast<uint64_t>(quant::weight_data_bytes(storage, rows, cols)));
    const int64_t scales = quant::weight_scale_bytes(storage, rows, cols);
    b.scales = scales > 0 ? align_up(static_cast<uint64_t>(scales)) : 0;
    return b;
}

}  // namespace hr
