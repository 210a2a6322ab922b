// A row range of a GGUF tensor (see GgufCheckpoint::fill_rows): what a tensor-parallel rank reads, so that
// it never dequantizes or copies the rows of another rank.
#include <cmath>
#include <cstring>

#include "core/half.h"
#include "io/safetensors.h"
#include "loader/gguf_checkpoint.h"
#include "model/quantize_weights.h"
#include "quant/ggml_blocks.h"

namespace hr {

namespace {

// One row of a plain-float or ggml block dtype -> f32 (as GgufCheckpoint::dequantize does the whole tensor).
void row_to_f32(DType dt, const uint8_t* src, int64_t n, float* out) {
    if (is_ggml_block_dtype(dt)) {
        quant::ggml_dequantize(dt, src, out, n);
        return;
    }
    for (int64_t k = 0; k < n; ++k) {
        uint16_t h;
        switch (dt) {
            case DType::f32: std::memcpy(out + k, src + k * 4, 4); break;
            case DType::f16: std::memcpy(&h, src + k * 2, 2); out[k] = f16_to_f32(h); break;
            default: std::memcpy(&h, src + k * 2, 2); out[k] = bf16_to_f32(h); break;
        }
    }
}

}  // namespace

int64_t GgufCheckpoint::file_row(size_t i, int64_t r) const {
    const GgufBinding& b = bindings[i];
    if (b.permuted_heads <= 0) return r;
    // Within a head of head_dim rows, GGUF row 2*j + p holds HF row p * head_dim/2 + j (io/gguf.h).
    const int64_t head_dim = b.rows / b.permuted_heads, half = head_dim / 2;
    const int64_t h = r / head_dim, local = r % head_dim;
    return h * head_dim + 2 * (local % half) + local / half;
}

Status GgufCheckpoint::fill_rows(size_t i, DType storage, int64_t row0, int64_t n_rows, void* data_out,
                                 void* scales_out, std::vector<float>& scratch) const {
    const GgufBinding& b = bindings[i];
    const TensorSpec& s = specs[i];
    if (row0 < 0 || n_rows <= 0 || row0 + n_rows > b.rows)
        return errorf("{}: tensor '{}': rows {} to {} are outside its {} rows", file->path(), b.tensor->name, row0,
                      row0 + n_rows - 1, b.rows);
    if (b.permuted_heads > 0 && b.rows % (2 * b.permuted_heads) != 0)
        return errorf("{}: tensor '{}': {} rows do not split into {} heads of an even size (the Q/K permutation "
                      "cannot be undone)", file->path(), b.tensor->name, b.rows, b.permuted_heads);
    const bool check_values = s.role == TensorRole::embedding || s.role == TensorRole::norm || s.role == TensorRole::router;
    const bool copy = storage == b.dtype;
    if (!copy || check_values) {
        scratch.resize(static_cast<size_t>(n_rows * b.cols));
        for (int64_t r = 0; r < n_rows; ++r) {
            const uint8_t* src = b.data + file_row(i, row0 + r) * b.row_bytes;
            float* out = scratch.data() + r * b.cols;
            row_to_f32(b.dtype, src, b.cols, out);
        }
        if (check_values) {
            for (size_t k = 0; k < scratch.size(); ++k) {
                if (!std::isfinite(scratch[k]))
                    return errorf("{}: tensor '{}' holds a non-finite value at element {}; refusing to load",
                                  file->path(), b.tensor->name, static_cast<int64_t>(k) + row0 * b.cols);
            }
        }
    }
    if (copy) {
        auto* out = static_cast<uint8_t*>(data_out);
        for (int64_t r = 0; r < n_rows; ++r)
            std::memcpy(out + r * b.row_bytes, b.data + file_row(i, row0 + r) * b.row_bytes,
                        static_cast<size_t>(b.row_bytes));
        return ok();
    }
    io::TensorInfo part;
    part.name = s.hf_name;
    part.dtype = "F32";
    part.file = file->path();
    TensorSpec ps = s;
    ps.shape = s.shape.size() == 2 ? std::vector<int64_t>{n_rows, b.cols} : s.shape;
    part.shape = ps.shape;
    part.data = reinterpret_cast<const uint8_t*>(scratch.data());
    part.nbytes = scratch.size() * sizeof(float);
    return convert_weight(part, ps, storage, data_out, scales_out);
}

}  // namespace hr
