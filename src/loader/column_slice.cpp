// A column slice of a checkpoint tensor (see column_slice.h). Three ways, cheapest first:
//   1. stored as it is loaded (pre-quantized int8/int4, a tensor already in its storage dtype, a GGUF
//      tensor kept in its own ggml type): the slice's bytes of each row are copied from the mapping;
//   2. converted from a safetensors float tensor to a float dtype or to int4: only the slice's values are
//      read and converted (every value, or every int4 group of 128, converts independently of the rest
//      of its row, and the cut falls on a group boundary);
//   3. everything else converts WHOLE rows, then keeps the rank's columns:
//      - int8 quantize-on-load: a row's one scale is the absmax of the whole row, so a slice quantized on
//        its own would get another scale (and other int8 values) than the whole model's row;
//      - GGUF conversions (--weights int8/int4/f32/... of a ggml file): the file's blocks need not align
//        with the cut, and int8 needs the row's scale as above.
//      Every rank then reads all of wo's and w2's rows (their share of the model is 1/3 of the FFN and
//      1/4 of attention at most), converted into a scratch of n_rows whole rows.
#include "loader/column_slice.h"

#include <cstring>

#include "core/mapped_file.h"
#include "io/safetensors.h"
#include "quant/formats.h"

namespace hr {

namespace {

// Columns [c0, c0 + w) of n rows of a [*, cols] weight in dt, rows at src_data / src_scales.
void keep_columns(DType dt, int64_t cols, const uint8_t* src_data, const uint8_t* src_scales, int64_t n, int64_t c0,
                  int64_t w, uint8_t* data, uint8_t* scales) {
    const auto row_d = static_cast<uint64_t>(quant::weight_data_bytes(dt, 1, cols));
    const auto off = static_cast<uint64_t>(quant::weight_data_bytes(dt, 1, c0));
    const auto len = static_cast<uint64_t>(quant::weight_data_bytes(dt, 1, w));
    for (int64_t r = 0; r < n; ++r) std::memcpy(data + r * len, src_data + r * row_d + off, len);
    const auto row_s = static_cast<uint64_t>(quant::weight_scale_bytes(dt, 1, cols));
    if (!scales || row_s == 0) return;
    // int8: the row's one scale, shared by every column; int4: the slice's groups.
    const auto soff = dt == DType::q4 ? static_cast<uint64_t>(quant::weight_scale_bytes(dt, 1, c0)) : 0;
    const auto slen = static_cast<uint64_t>(quant::weight_scale_bytes(dt, 1, w));
    for (int64_t r = 0; r < n; ++r) std::memcpy(scales + r * slen, src_scales + r * row_s + soff, slen);
}

}  // namespace

Status fill_column_slice(const Checkpoint& ck, size_t i, int64_t c0, int64_t n_cols, int64_t row0, int64_t n_rows,
                         uint8_t* data, uint8_t* scales, LoadMemory* memory) {
    const TensorSpec& s = ck.specs[i];
    const DType st = ck.storage[i];
    const int64_t cols = s.cols();
    if (c0 < 0 || n_cols <= 0 || c0 + n_cols > cols)
        return errorf("tensor '{}': columns {} to {} are outside its {} columns", s.hf_name, c0, c0 + n_cols - 1, cols);
    const auto row_d = static_cast<uint64_t>(quant::weight_data_bytes(st, 1, cols));
    const auto row_s = static_cast<uint64_t>(quant::weight_scale_bytes(st, 1, cols));
    if (const auto p = ck.in_place(i)) {  // 1
        advise_willneed(p->data + static_cast<uint64_t>(row0) * row_d, static_cast<uint64_t>(n_rows) * row_d);
        keep_columns(st, cols, p->data + static_cast<uint64_t>(row0) * row_d,
                     p->scales ? p->scales + static_cast<uint64_t>(row0) * row_s : nullptr, n_rows, c0, n_cols, data,
                     scales);
        return ok();
    }
    if (!ck.gguf && st != DType::q8) {  // 2
        const io::TensorInfo& t = *ck.src[i];
        HR_ASSIGN(DType src_dt, io::computable_dtype(t));
        const uint64_t es = dtype_size(src_dt), len = static_cast<uint64_t>(n_cols) * es;
        ScratchBuffer buf(memory, static_cast<uint64_t>(n_rows) * len);
        for (int64_t r = 0; r < n_rows; ++r)
            std::memcpy(buf.data() + r * len, t.data + (static_cast<uint64_t>(row0 + r) * cols + c0) * es, len);
        io::TensorInfo part;
        part.name = t.name;
        part.dtype = t.dtype;
        part.file = t.file;
        part.shape = s.shape.size() == 2 ? std::vector<int64_t>{n_rows, n_cols} : std::vector<int64_t>{n_cols};
        part.data = buf.data();
        part.nbytes = static_cast<uint64_t>(n_rows) * len;
        TensorSpec ps = s;
        ps.shape = part.shape;
        Status r = convert_weight(part, ps, st, data, scales);
        if (!r.ok())
            return errorf("{} (in columns {} to {} of rows {} to {})", r.error().message, c0, c0 + n_cols - 1, row0,
                          row0 + n_rows - 1);
        return ok();
    }
    // 3
    ScratchBuffer rows(memory, static_cast<uint64_t>(n_rows) * (row_d + row_s));
    uint8_t* row_scales = rows.data() + static_cast<uint64_t>(n_rows) * row_d;
    std::vector<float> f32;
    const CountedBytes f32_bytes(memory, ck.gguf ? static_cast<uint64_t>(n_rows * cols) * sizeof(float) : 0);
    HR_TRY(ck.fill_rows(i, row0, n_rows, rows.data(), row_s ? row_scales : nullptr, f32));
    keep_columns(st, cols, rows.data(), row_scales, n_rows, c0, n_cols, data, scales);
    return ok();
}

}  // namespace hr
