// GGUF tensors into storage dtypes: exact copies (rows unpermuted) or conversions of the dequantized values.
#include "loader/gguf_checkpoint.h"

#include <cmath>
#include <cstring>

#include "core/half.h"
#include "io/safetensors.h"
#include "memory/weight_format.h"
#include "model/quantize_weights.h"
#include "quant/formats.h"
#include "quant/ggml_blocks.h"
#include "quant/quantize.h"

namespace hr {

namespace {

bool is_plain_float(DType t) { return t == DType::f32 || t == DType::f16 || t == DType::bf16; }

// n values of a plain-float or ggml block dtype -> f32.
void to_f32(DType dt, const uint8_t* src, int64_t n, float* out) {
    if (is_ggml_block_dtype(dt)) {
        quant::ggml_dequantize(dt, src, out, n);
        return;
    }
    for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        switch (dt) {
            case DType::f32: std::memcpy(out + i, src + i * 4, 4); break;
            case DType::f16: std::memcpy(&h, src + i * 2, 2); out[i] = f16_to_f32(h); break;
            default: std::memcpy(&h, src + i * 2, 2); out[i] = bf16_to_f32(h); break;
        }
    }
}

io::TensorInfo f32_view(const std::vector<float>& v, const TensorSpec& spec, const std::string& file) {
    io::TensorInfo t;
    t.name = spec.hf_name;
    t.dtype = "F32";
    t.shape = spec.shape;
    t.data = reinterpret_cast<const uint8_t*>(v.data());
    t.nbytes = v.size() * sizeof(float);
    t.file = file;
    return t;
}

}  // namespace

Result<GgufCheckpoint> GgufCheckpoint::open(const std::string& path) {
    GgufCheckpoint c;
    HR_ASSIGN(c.file, io::GgufFile::open(path));
    HR_ASSIGN(c.cfg, gguf_model_config(*c.file));
    c.specs = expected_tensors(c.cfg);
    HR_ASSIGN(c.bindings, bind_gguf_tensors(*c.file, c.cfg));
    HR_CHECK(c.bindings.size() == c.specs.size());
    return c;
}

Result<DType> GgufCheckpoint::weight_format(std::optional<DType> requested) const {
    if (!requested) return cfg.tensor_dtypes->native;
    const DType w = *requested;
    if (w == cfg.tensor_dtypes->native || is_plain_float(w) || w == DType::q8 || w == DType::q4) return w;
    return errorf("{}: weight format {} is not supported for a GGUF file (expected auto, f32, f16, bf16, int8 or int4)",
                  file->path(), dtype_name(w));
}

Status GgufCheckpoint::dequantize(size_t i, std::vector<float>& out) const {
    const GgufBinding& b = bindings[i];
    out.resize(static_cast<size_t>(b.rows * b.cols));
    to_f32(b.dtype, b.data, b.rows * b.cols, out.data());
    if (b.permuted_heads > 0) {
        Status st = io::unpermute_qk_rows(out.data(), b.rows, b.cols, b.permuted_heads);
        if (!st.ok()) return errorf("{}: tensor '{}': {}", file->path(), b.tensor->name, st.error().message);
    }
    return ok();
}

Status GgufCheckpoint::fill(size_t i, DType storage, void* data_out, void* scales_out,
                            std::vector<float>& scratch) const {
    const GgufBinding& b = bindings[i];
    const TensorSpec& s = specs[i];
    const bool check_values = s.role == TensorRole::embedding || s.role == TensorRole::norm || s.role == TensorRole::router;
    if (storage == b.dtype) {
        if (check_values) {
            HR_TRY(dequantize(i, scratch));
            for (size_t k = 0; k < scratch.size(); ++k) {
                if (!std::isfinite(scratch[k]))
                    return errorf("{}: tensor '{}' holds a non-finite value at element {}; refusing to load", file->path(),
                                  b.tensor->name, k);
            }
        }
        std::memcpy(data_out, b.data, static_cast<size_t>(b.rows * b.row_bytes));
        if (b.permuted_heads > 0) {
            Status st = io::unpermute_qk_row_bytes(data_out, b.rows, b.row_bytes, b.permuted_heads);
            if (!st.ok()) return errorf("{}: tensor '{}': {}", file->path(), b.tensor->name, st.error().message);
        }
        return ok();
    }
    HR_TRY(dequantize(i, scratch));
    if (check_values) {
        for (size_t k = 0; k < scratch.size(); ++k) {
            if (!std::isfinite(scratch[k]))
                return errorf("{}: tensor '{}' holds a non-finite value at element {}; refusing to load", file->path(),
                              b.tensor->name, k);
        }
    }
    return convert_weight(f32_view(scratch, s, file->path()), s, storage, data_out, scales_out);
}

Result<double> conversion_error(const std::vector<float>& w, const TensorSpec& spec, DType storage) {
    const int64_t rows = spec_rows(spec), cols = spec_cols(spec);
    std::vector<uint8_t> data(static_cast<size_t>(quant::weight_data_bytes(storage, rows, cols)));
    std::vector<uint8_t> scales(static_cast<size_t>(quant::weight_scale_bytes(storage, rows, cols)));
    HR_TRY(convert_weight(f32_view(w, spec, "values"), spec, storage, data.data(), scales.empty() ? nullptr : scales.data()));
    std::vector<float> back(w.size());
    if (storage == DType::q8 || storage == DType::q4) {
        HR_TRY(quant::dequantize_matrix(storage, data.data(), scales.data(), rows, cols, back.data()));
    } else if (is_plain_float(storage)) {
        to_f32(storage, data.data(), rows * cols, back.data());
    } else {
        return errorf("tensor '{}': no conversion error for dtype {}", spec.hf_name, dtype_name(storage));
    }
    double num = 0, den = 0;
    for (size_t k = 0; k < w.size(); ++k) {
        const double d = static_cast<double>(back[k]) - w[k];
        num += d * d;
        den += static_cast<double>(w[k]) * w[k];
    }
    return den > 0 ? std::sqrt(num / den) : 0.0;
}

}  // namespace hr
