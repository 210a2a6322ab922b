// How each checkpoint tensor is stored under a chosen weight format, and how many bytes it takes.
// The planner sizes weights with these functions and the loader places tensors with the same ones,
// so the planned weight bytes are the loaded weight bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "core/dtype.h"
#include "core/status.h"
#include "model/config.h"
#include "model/tensor_names.h"

namespace hr {

// Parses --weights: "bf16", "f16", "int8", "int4", or "auto" (nullopt: the best quality that fits).
Result<std::optional<DType>> parse_weight_format(std::string_view text);
// Parses --kv-cache: "f16", "bf16", "f32", "int8" (DType::i8) or "fp8" (DType::f8_e4m3); the last two
// are the quantized caches of core/kv_quant.h.
Result<DType> parse_kv_dtype(std::string_view text);
bool is_kv_dtype(DType t);
// The --kv-cache spelling of a KV dtype ("int8" for i8).
std::string_view kv_dtype_name(DType t);
bool is_weight_format(DType t);  // bf16, f16, q8 (int8), q4 (int4)

// The storage dtype of one tensor when the model is loaded in `weight_format`.
//   - quantizable matrices (attention, experts/MLP) take the weight format;
//   - the output head takes the weight format, except that int4 weights keep an int8 head: the head
//     turns the last hidden state into every logit, and 4-bit error there moves the sampled token
//     directly, while its cost (vocab x dim) is small next to the layers;
//   - everything else (embedding table, norms, router) stays in the checkpoint dtype.
// note: the loader calls this too; change it here and both follow.
DType storage_dtype_for(const TensorSpec& t, DType weight_format, DType checkpoint_dtype);
// The same for a checkpoint whose tensors each have their own dtype (GGUF: cfg.tensor_dtypes; null
// gives the rule above). With weight_format == per_tensor->native (what `--weights auto` means for such
// a file) every tensor keeps the file's dtype exactly (Q4_1 stays Q4_1, a Q8_0 embedding stays Q8_0).
// With any other format the quantizable matrices follow the rule above, converted from their
// dequantized values; the other tensors keep a plain-float file dtype, and a block-quantized one
// (e.g. a Q8_0 embedding) becomes f32, which holds its values exactly.
DType storage_dtype_for(const TensorSpec& t, DType weight_format, DType checkpoint_dtype,
                        const CheckpointDtypes* per_tensor);

// Bytes of one stored tensor, each part rounded up to 256 bytes because the loader places every
// tensor's data and then its scales at 256-byte aligned offsets of the weights region.
struct TensorBytes {
    uint64_t data = 0;
    uint64_t scales = 0;
    uint64_t total() const { return data + scales; }
};
TensorBytes stored_tensor_bytes(const TensorSpec& t, DType storage);
// note: a tensor's rows and columns as a weight matrix are TensorSpec::rows()/cols() (model/tensor_names.h).

}  // namespace hr
