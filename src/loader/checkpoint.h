// A checkpoint opened for loading: a Hugging Face directory (safetensors), a pre-quantized one
// (docs/formats.md) or a GGUF file. Its config, the formats of this load (--weights), every tensor's
// storage dtype, and every tensor checked against the config's table before a byte is placed. What
// load_model (loader/load.h) and the tensor-parallel loader (loader/rank_load.h) share.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/status.h"
#include "io/tensor_store.h"
#include "loader/gguf_checkpoint.h"
#include "model/config.h"
#include "model/quantize_weights.h"
#include "model/tensor_names.h"

namespace hr {

struct Checkpoint {
    std::string path;
    ModelConfig cfg;
    DType checkpoint_dtype = DType::bf16;  // float dtype of the unquantized tensors (GGUF: f32)
    DType weight_format = DType::bf16;     // storage of the quantizable matrices
    bool prequantized = false;             // the checkpoint itself holds int8/int4 tensors
    std::vector<TensorSpec> specs;         // expected_tensors(cfg)
    std::vector<DType> storage;            // storage[i]: specs[i]'s dtype in this load
    std::optional<GgufCheckpoint> gguf;    // a GGUF file
    std::optional<io::TensorStore> store;  // otherwise
    std::vector<HostWeight> stored;        // pre-quantized: every spec's bytes in the mapping
    std::vector<const io::TensorInfo*> src;  // ordinary checkpoint: every spec's source tensor

    // `weights`: LoadOptions::weights. `device`: GGUF block formats are refused on CUDA (no kernels yet).
    // Errors name the file and tensor: missing or unexpected tensors, shapes, dtypes, unsupported formats,
    // non-finite values in the embedding, norms, router or head.
    static Result<Checkpoint> open(const std::string& path, std::optional<DType> weights, DeviceKind device);

    // Rows [row0, row0 + n_rows) of specs[i], whole width, in storage[i]: weight_data_bytes(storage, 1,
    // cols) per row to `data`, weight_scale_bytes per row to `scales` (null when 0). A copy of the stored
    // bytes or a conversion of the rows (every storage layout is row by row, so a row range converts
    // exactly as the whole tensor). `scratch` serves GGUF dequantization (n_rows x cols floats).
    Status fill_rows(size_t i, int64_t row0, int64_t n_rows, uint8_t* data, uint8_t* scales,
                     std::vector<float>& scratch) const;

    // specs[i] held in the mapping exactly as it is stored (a pre-quantized tensor, a tensor already in its
    // storage dtype, a GGUF tensor kept in its own dtype whose rows need no reordering): row r's data at
    // data + r * data row bytes, its scales at scales + r * scale row bytes. nullopt: the load converts it.
    struct InPlace {
        const uint8_t* data = nullptr;
        const uint8_t* scales = nullptr;
    };
    std::optional<InPlace> in_place(size_t i) const;
};

}  // namespace hr
