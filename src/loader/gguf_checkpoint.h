// A GGUF file as a checkpoint for the loader: its config, every Hugging Face tensor bound to its bytes in
// the mapping (model/gguf_config.h), and the conversion of one tensor into its storage dtype: the file's
// own bytes (with llama.cpp's Q/K row permutation undone), or the dequantized values converted to
// f32/f16/bf16/int8/int4.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "io/gguf.h"
#include "model/config.h"
#include "model/gguf_config.h"
#include "model/tensor_names.h"

namespace hr {

struct GgufCheckpoint {
    std::shared_ptr<io::GgufFile> file;  // owns the mapping every binding points into
    ModelConfig cfg;
    std::vector<TensorSpec> specs;       // expected_tensors(cfg)
    std::vector<GgufBinding> bindings;   // bindings[i] holds specs[i]

    static Result<GgufCheckpoint> open(const std::string& path);

    // The weight format of a load: nullopt (auto) is the file's own (cfg.tensor_dtypes->native); an
    // explicit one must be f32, f16, bf16, int8 or int4 (the conversion of the dequantized values).
    Result<DType> weight_format(std::optional<DType> requested) const;

    // Writes specs[i] in `storage` (storage_dtype_for with cfg.tensor_dtypes) to data_out
    // (quant::weight_data_bytes) and scales_out (weight_scale_bytes; null when 0). A storage equal to
    // the file's dtype copies the bytes; any other is converted from the dequantized f32 values.
    // `scratch` is reused between calls. Non-finite values in embedding, norms and router are an error.
    Status fill(size_t i, DType storage, void* data_out, void* scales_out, std::vector<float>& scratch) const;

    // Rows [row0, row0 + n_rows) of specs[i] in `storage`, as fill() writes them for the whole tensor
    // (every storage layout is row by row, so a row range converts exactly as the whole tensor does): the
    // file's rows gathered in Hugging Face order (file_row) and copied, or dequantized into `scratch`
    // (n_rows x cols floats) and converted. Tensor-parallel ranks read only their rows with it
    // (loader/gguf_rows.cpp).
    Status fill_rows(size_t i, DType storage, int64_t row0, int64_t n_rows, void* data_out, void* scales_out,
                     std::vector<float>& scratch) const;
    // The file row holding Hugging Face row r of specs[i]: r itself, or for a Q/K projection llama.cpp
    // permuted, the row io::unpermute_qk_row_bytes would move to r.
    int64_t file_row(size_t i, int64_t r) const;

    // The f32 values of specs[i] in Hugging Face row order ([rows, cols]).
    Status dequantize(size_t i, std::vector<float>& out) const;
};

// Relative L2 error ||w' - w|| / ||w|| of storing values `w` in `storage` (f32/f16/bf16/int8/int4) with
// the loader's conversion; 0 for f32. `spec` gives the shape ([rows, cols]).
Result<double> conversion_error(const std::vector<float>& w, const TensorSpec& spec, DType storage);

}  // namespace hr
