// Weights in a chosen format from a checkpoint: quantize-on-load of one tensor, the metadata and
// strict tensor checks of a pre-quantized directory (docs/formats.md), and the streaming writer
// behind `headroom quantize`. Which dtype each tensor takes is decided by the caller
// (storage_dtype_for() in memory/weight_format.h), so this module does not depend on the planner.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "core/dtype.h"
#include "core/status.h"
#include "io/tensor_store.h"
#include "model/tensor_names.h"

namespace hr {

// __metadata__ keys of a pre-quantized model and the one version this build reads and writes.
inline constexpr const char* kFormatKey = "headroom.format";
inline constexpr const char* kFormatVersionKey = "headroom.format_version";
inline constexpr const char* kFormatVersion = "1";

// What a checkpoint's metadata says its weights are: nullopt for an ordinary checkpoint (no
// headroom.format key), q8 or q4 for a pre-quantized one. A format without a version (or a version
// without a format), an unknown format or an unknown version is an error naming key, value and the
// values supported. `source` names the checkpoint in messages.
Result<std::optional<DType>> prequantized_format(const std::map<std::string, std::string>& metadata,
                                                 const std::string& source);

// The weight format to run a pre-quantized checkpoint with, given --weights (nullopt = auto):
// auto or the file's own format; anything else is an error, because headroom never re-quantizes
// quantized weights (the result would be worse than quantizing the original checkpoint).
Result<DType> weights_for_prequantized(std::optional<DType> requested, DType file_format, const std::string& source);

// The dtype of the tensors that stay unquantized (that of the embedding table): f32, f16 or bf16.
Result<DType> checkpoint_dtype(const io::TensorStore& store);

// A tensor in host memory in its storage dtype; layout of q8/q4 parts in quant/formats.h.
struct HostWeight {
    DType dtype = DType::f32;
    int64_t rows = 0;  // TensorSpec::rows(): 1 for a vector
    int64_t cols = 0;
    const void* data = nullptr;
    uint64_t data_bytes = 0;
    const void* scales = nullptr;  // null unless q8/q4
    uint64_t scale_bytes = 0;
};


// Quantize on load: converts checkpoint tensor `src` (f32, f16 or bf16, shape exactly spec.shape) into
// `storage` (q8, q4, or f32/f16/bf16: a copy or exact-range conversion). data_out holds
// quant::weight_data_bytes(storage, rows, cols) bytes, scales_out weight_scale_bytes(...) (may be null
// for unquantized storage). Errors name the tensor: wrong shape or dtype, non-finite values, values out
// of the range of the target.
Status convert_weight(const io::TensorInfo& src, const TensorSpec& spec, DType storage, void* data_out,
                      void* scales_out);

// The same for rows [row0, row0 + n_rows) of a matrix: data_out / scales_out receive those rows only
// (the storage layouts of quant/formats.h are row by row, so any row range converts exactly as the
// whole tensor would). Errors also name the row range.
Status convert_weight_rows(const io::TensorInfo& src, const TensorSpec& spec, DType storage, int64_t row0,
                           int64_t n_rows, void* data_out, void* scales_out);

// Pre-quantized load: the tensor `spec` as stored in `store` in `storage`, checked strictly (data dtype
// and shape, `<name>.scales` dtype and shape for q8/q4, no scales for other dtypes); views into the
// store's mapping, nothing copied or re-quantized.
Result<HostWeight> stored_weight(const io::TensorStore& store, const TensorSpec& spec, DType storage);

// Every tensor of a pre-quantized store must be a spec's data or a quantized spec's scales: an extra
// tensor is an error naming it (never ignored, never mapped by position). storage[i] is specs[i]'s dtype.
Status check_stored_names(const io::TensorStore& store, std::span<const TensorSpec> specs,
                          std::span<const DType> storage);

struct QuantizeStats {
    int64_t n_quantized = 0;  // tensors written as q8/q4
    int64_t n_kept = 0;       // tensors written in their checkpoint dtype
    uint64_t bytes_in = 0;    // tensor data bytes read
    uint64_t bytes_out = 0;   // tensor data bytes written (data + scales)
};

// `headroom quantize`: writes `out_path` (one safetensors file with kFormatKey/kFormatVersionKey metadata)
// holding every spec in storage[i], from the ordinary checkpoint `src`. One tensor is converted at a
// time, so peak memory is the largest tensor, not the model; the file appears atomically (temporary file,
// fsync, rename) or not at all. Tensors are laid out by decreasing element size so that every tensor of
// the mapped file is aligned to its element size. `progress` (optional) is called after each tensor with
// (tensors done, tensors in all). extra_metadata: more __metadata__ entries (e.g. headroom.expert_hits).
using QuantizeProgress = std::function<void(size_t done, size_t total)>;
Result<QuantizeStats> write_quantized_checkpoint(const io::TensorStore& src, std::span<const TensorSpec> specs,
                                                 std::span<const DType> storage, DType weight_format,
                                                 const std::string& out_path, const QuantizeProgress& progress = {},
                                                 const std::map<std::string, std::string>& extra_metadata = {});

// The same from any source of tensors (a GGUF file's dequantized values): src(i) gives specs[i]'s
// values as a tensor (F32/F16/BF16, shape spec.shape) valid until the next call.
using TensorSource = std::function<Result<io::TensorInfo>(size_t i)>;
Result<QuantizeStats> write_quantized_checkpoint(const TensorSource& src, std::span<const TensorSpec> specs,
                                                 std::span<const DType> storage, DType weight_format,
                                                 const std::string& out_path, const QuantizeProgress& progress = {},
                                                 const std::map<std::string, std::string>& extra_metadata = {});

// The safetensors dtype string headroom stores a DType as: F32, F16, BF16, I8 (q8 data), U8 (q4 data).
std::string_view stored_dtype_string(DType storage);

}  // namespace hr
