// Quantize-on-load of one tensor, strict checks of pre-quantized checkpoints (format version 1 of
// docs/formats.md) and the streaming writer of `headroom quantize`.
#include "model/quantize_weights.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <set>
#include <vector>

#include <fmt/format.h>

#include "core/half.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "quant/formats.h"
#include "quant/quantize.h"

namespace hr {

namespace {

std::string shape_str(std::span<const int64_t> s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

bool is_plain_float(DType t) { return t == DType::f32 || t == DType::f16 || t == DType::bf16; }
bool is_quantized(DType t) { return t == DType::q8 || t == DType::q4; }

float load_f32(const void* p, DType dt, size_t i) {
    switch (dt) {
        case DType::f32: {
            float v;
            std::memcpy(&v, static_cast<const uint8_t*>(p) + 4 * i, 4);  // note: mapped tensors may be unaligned
            return v;
        }
        case DType::f16:
        case DType::bf16: {
            uint16_t h;
            std::memcpy(&h, static_cast<const uint8_t*>(p) + 2 * i, 2);
            return dt == DType::f16 ? f16_to_f32(h) : bf16_to_f32(h);
        }
        default: HR_CHECK_MSG(false, "load_f32: not a float dtype");
    }
    return 0.0f;
}

// Checks every element of a plain float tensor is finite; the error names tensor, row and column.
Status check_finite(const void* p, DType dt, int64_t rows, int64_t cols, const std::string& name) {
    const size_t n = static_cast<size_t>(rows * cols);
    for (size_t i = 0; i < n; ++i) {
        const float v = load_f32(p, dt, i);
        if (!std::isfinite(v)) {
            return errorf("tensor '{}': expected finite values, found {} at row {}, column {}", name, v,
                          static_cast<int64_t>(i) / cols, static_cast<int64_t>(i) % cols);
        }
    }
    return ok();
}

// Plain float -> plain float, element by element through f32; values beyond the target's range
// are an error, never a silent inf.
Status convert_plain(const void* src, DType src_dt, int64_t rows, int64_t cols, DType dst_dt, void* dst,
                     const std::string& name) {
    const size_t n = static_cast<size_t>(rows * cols);
    if (src_dt == dst_dt) {
        HR_TRY(check_finite(src, src_dt, rows, cols, name));
        std::memcpy(dst, src, n * dtype_size(dst_dt));
        return ok();
    }
    for (size_t i = 0; i < n; ++i) {
        const float v = load_f32(src, src_dt, i);
        float back = v;
        switch (dst_dt) {
            case DType::f32: static_cast<float*>(dst)[i] = v; break;
            case DType::f16: {
                const uint16_t h = f32_to_f16(v);
                static_cast<uint16_t*>(dst)[i] = h;
                back = f16_to_f32(h);
                break;
            }
            case DType::bf16: {
                const uint16_t h = f32_to_bf16(v);
                static_cast<uint16_t*>(dst)[i] = h;
                back = bf16_to_f32(h);
                break;
            }
            default: HR_CHECK_MSG(false, "convert_plain: not a float dtype");
        }
        if (!std::isfinite(back)) {
            return errorf("tensor '{}': expected finite values within the range of {}, found {} at row {}, column {}",
                          name, dtype_name(dst_dt), v, static_cast<int64_t>(i) / cols, static_cast<int64_t>(i) % cols);
        }
    }
    return ok();
}

// The stored data shape of spec in storage (q4 packs two columns a byte).
std::vector<int64_t> stored_data_shape(const TensorSpec& spec, DType storage) {
    if (storage == DType::q4) return {spec.rows(), quant::q4_row_bytes(spec.cols())};
    return spec.shape;
}

std::vector<int64_t> stored_scales_shape(const TensorSpec& spec, DType storage) {
    if (storage == DType::q8) return {spec.rows()};
    return {spec.rows(), quant::q4_groups(spec.cols())};
}

std::string scales_name(const TensorSpec& spec) { return spec.hf_name + ".scales"; }

// Scales of a pre-quantized tensor must be finite and non-negative: a negative or NaN scale would
// silently flip or poison a whole row or group.
Status check_scales(const io::TensorInfo& t, DType storage) {
    const size_t n = static_cast<size_t>(t.numel());
    for (size_t i = 0; i < n; ++i) {
        const float s = storage == DType::q8 ? load_f32(t.data, DType::f32, i) : load_f32(t.data, DType::f16, i);
        if (!std::isfinite(s) || std::signbit(s)) {
            return errorf("{}: tensor '{}': expected finite non-negative scales, found {} at index {}", t.file, t.name,
                          s, i);
        }
    }
    return ok();
}

Status write_at(int fd, const void* p, uint64_t n, uint64_t offset, const std::string& path) {
    const auto* b = static_cast<const uint8_t*>(p);
    while (n > 0) {
        const ssize_t w = ::pwrite(fd, b, std::min<uint64_t>(n, uint64_t{1} << 30), static_cast<off_t>(offset));
        if (w < 0) {
            if (errno == EINTR) continue;
            return errorf("cannot write '{}': {}", path, std::strerror(errno));
        }
        b += w;
        n -= static_cast<uint64_t>(w);
        offset += static_cast<uint64_t>(w);
    }
    return ok();
}

std::string parent_dir(const std::string& path) {
    const size_t slash = path.find_last_of('/');
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

std::string_view stored_dtype_string(DType storage) {
    switch (storage) {
        case DType::f32: return "F32";
        case DType::f16: return "F16";
        case DType::bf16: return "BF16";
        case DType::q8: return "I8";
        case DType::q4: return "U8";
        default: return "?";
    }
}

Result<std::optional<DType>> prequantized_format(const std::map<std::string, std::string>& metadata,
                                                 const std::string& source) {
    const auto f = metadata.find(kFormatKey);
    const auto v = metadata.find(kFormatVersionKey);
    if (f == metadata.end() && v == metadata.end()) return std::optional<DType>{};
    if (f == metadata.end())
        return errorf("{}: metadata has {} = '{}' but no {} (expected both or neither)", source, kFormatVersionKey,
                      v->second, kFormatKey);
    if (v == metadata.end())
        return errorf("{}: metadata has {} = '{}' but no {} (expected version {})", source, kFormatKey, f->second,
                      kFormatVersionKey, kFormatVersion);
    DType fmt_dt;
    if (f->second == "int8") {
        fmt_dt = DType::q8;
    } else if (f->second == "int4") {
        fmt_dt = DType::q4;
    } else {
        return errorf("{}: unknown {} '{}' (expected int8 or int4)", source, kFormatKey, f->second);
    }
    if (v->second != kFormatVersion)
        return errorf("{}: unsupported {} '{}' for format {} (this build reads version {})", source, kFormatVersionKey,
                      v->second, f->second, kFormatVersion);
    return std::optional<DType>{fmt_dt};
}

Result<DType> weights_for_prequantized(std::optional<DType> requested, DType file_format, const std::string& source) {
    if (!requested || *requested == file_format) return file_format;
    return errorf("{}: the checkpoint is pre-quantized to {} but --weights {} was asked; use --weights {} (or auto), "
                  "or load the original bf16/f16/f32 checkpoint to get {}",
                  source, dtype_name(file_format), dtype_name(*requested), dtype_name(file_format),
                  dtype_name(*requested));
}

Result<DType> checkpoint_dtype(const io::TensorStore& store) {
    const char* kEmbed = "model.embed_tokens.weight";
    const io::TensorInfo* t = store.find(kEmbed);
    if (t == nullptr) return errorf("{}: missing tensor '{}'", store.path(), kEmbed);
    HR_ASSIGN(DType dt, io::computable_dtype(*t));
    if (!is_plain_float(dt))
        return errorf("{}: tensor '{}': expected dtype F32, F16 or BF16, found {}", store.path(), kEmbed, t->dtype);
    return dt;
}

Status convert_weight(const io::TensorInfo& src, const TensorSpec& spec, DType storage, void* data_out,
                      void* scales_out) {
    if (src.shape != spec.shape)
        return errorf("{}: tensor '{}': expected shape {}, found {}", src.file, spec.hf_name, shape_str(spec.shape),
                      shape_str(src.shape));
    HR_ASSIGN(DType src_dt, io::computable_dtype(src));
    if (!is_plain_float(src_dt))
        return errorf("{}: tensor '{}': expected dtype F32, F16 or BF16 to convert to {}, found {}", src.file,
                      spec.hf_name, dtype_name(storage), src.dtype);
    const int64_t rows = spec.rows(), cols = spec.cols();
    if (is_quantized(storage)) {
        if (spec.shape.size() != 2)
            return errorf("tensor '{}': only matrices are quantized, found shape {}", spec.hf_name,
                          shape_str(spec.shape));
        Status st = quant::quantize_matrix(storage, src.data, src_dt, rows, cols, data_out, scales_out);
        if (!st.ok()) return errorf("{}: tensor '{}': {}", src.file, spec.hf_name, st.error().message);
        return ok();
    }
    if (!is_plain_float(storage))
        return errorf("tensor '{}': expected a storage dtype f32, f16, bf16, int8 or int4, found {}", spec.hf_name,
                      dtype_name(storage));
    Status st = convert_plain(src.data, src_dt, rows, cols, storage, data_out, spec.hf_name);
    if (!st.ok()) return errorf("{}: {}", src.file, st.error().message);
    return ok();
}

Status convert_weight_rows(const io::TensorInfo& src, const TensorSpec& spec, DType storage, int64_t row0,
                           int64_t n_rows, void* data_out, void* scales_out) {
    if (row0 == 0 && n_rows == spec.rows()) return convert_weight(src, spec, storage, data_out, scales_out);
    if (spec.shape.size() != 2 || src.shape != spec.shape)
        return errorf("{}: tensor '{}': a row range needs a matrix of shape {}, found {}", src.file, spec.hf_name,
                      shape_str(spec.shape), shape_str(src.shape));
    if (row0 < 0 || n_rows <= 0 || row0 + n_rows > spec.rows())
        return errorf("tensor '{}': rows {} to {} are outside its {} rows", spec.hf_name, row0, row0 + n_rows - 1,
                      spec.rows());
    HR_ASSIGN(DType src_dt, io::computable_dtype(src));
    const uint64_t row_bytes = static_cast<uint64_t>(spec.cols()) * dtype_size(src_dt);
    io::TensorInfo part;
    part.name = src.name;
    part.dtype = src.dtype;
    part.file = src.file;
    part.shape = {n_rows, spec.cols()};
    part.data = src.data + static_cast<uint64_t>(row0) * row_bytes;
    part.nbytes = static_cast<uint64_t>(n_rows) * row_bytes;
    TensorSpec ps = spec;
    ps.shape = part.shape;
    Status st = convert_weight(part, ps, storage, data_out, scales_out);
    if (!st.ok())
        return errorf("{} (in rows {} to {} of {})", st.error().message, row0, row0 + n_rows - 1, spec.rows());
    return ok();
}

Result<HostWeight> stored_weight(const io::TensorStore& store, const TensorSpec& spec, DType storage) {
    const io::TensorInfo* t = store.find(spec.hf_name);
    if (t == nullptr) return errorf("{}: missing tensor '{}'", store.path(), spec.hf_name);
    const std::string_view want = stored_dtype_string(storage);
    if (want == "?") return errorf("tensor '{}': no stored form for dtype {}", spec.hf_name, dtype_name(storage));
    if (t->dtype != want)
        return errorf("{}: tensor '{}': expected dtype {} ({} weights), found {}", t->file, spec.hf_name, want,
                      dtype_name(storage), t->dtype);
    const std::vector<int64_t> shape = stored_data_shape(spec, storage);
    if (t->shape != shape)
        return errorf("{}: tensor '{}': expected shape {} for {} weights of logical shape {}, found {}", t->file,
                      spec.hf_name, shape_str(shape), dtype_name(storage), shape_str(spec.shape), shape_str(t->shape));
    HostWeight w;
    w.dtype = storage;
    w.rows = spec.rows();
    w.cols = spec.cols();
    w.data = t->data;
    w.data_bytes = t->nbytes;
    HR_CHECK(t->nbytes == static_cast<uint64_t>(quant::weight_data_bytes(storage, w.rows, w.cols)));
    const io::TensorInfo* s = store.find(scales_name(spec));
    if (!is_quantized(storage)) {
        if (s != nullptr)
            return errorf("{}: tensor '{}' is stored as {} but '{}' exists (scales belong to int8/int4 tensors only)",
                          s->file, spec.hf_name, dtype_name(storage), s->name);
        HR_TRY(check_finite(t->data, storage, w.rows, w.cols, spec.hf_name));
        return w;
    }
    if (s == nullptr) return errorf("{}: missing tensor '{}' (the scales of {})", store.path(), scales_name(spec), spec.hf_name);
    const std::string_view want_s = storage == DType::q8 ? "F32" : "F16";
    const std::vector<int64_t> sshape = stored_scales_shape(spec, storage);
    if (s->dtype != want_s || s->shape != sshape)
        return errorf("{}: tensor '{}': expected {} {}, found {} {}", s->file, s->name, want_s, shape_str(sshape),
                      s->dtype, shape_str(s->shape));
    HR_TRY(check_scales(*s, storage));
    w.scales = s->data;
    w.scale_bytes = s->nbytes;
    return w;
}

Status check_stored_names(const io::TensorStore& store, std::span<const TensorSpec> specs,
                          std::span<const DType> storage) {
    HR_CHECK(specs.size() == storage.size());
    std::set<std::string, std::less<>> allowed;
    for (size_t i = 0; i < specs.size(); ++i) {
        allowed.insert(specs[i].hf_name);
        if (is_quantized(storage[i])) allowed.insert(scales_name(specs[i]));
    }
    for (const auto& t : store.tensors()) {
        if (!allowed.contains(t.name))
            return errorf("{}: unexpected tensor '{}' (not in the model's tensor table for this config and format)",
                          t.file, t.name);
    }
    return ok();
}

Result<QuantizeStats> write_quantized_checkpoint(const io::TensorStore& src, std::span<const TensorSpec> specs,
                                                 std::span<const DType> storage, DType weight_format,
                                                 const std::string& out_path, const QuantizeProgress& progress,
                                                 const std::map<std::string, std::string>& extra_metadata) {
    for (const TensorSpec& spec : specs) {
        if (src.find(spec.hf_name) == nullptr) return errorf("{}: missing tensor '{}'", src.path(), spec.hf_name);
    }
    auto source = [&src, specs](size_t i) -> Result<io::TensorInfo> { return *src.find(specs[i].hf_name); };
    return write_quantized_checkpoint(source, specs, storage, weight_format, out_path, progress, extra_metadata);
}

Result<QuantizeStats> write_quantized_checkpoint(const TensorSource& src, std::span<const TensorSpec> specs,
                                                 std::span<const DType> storage, DType weight_format,
                                                 const std::string& out_path, const QuantizeProgress& progress,
                                                 const std::map<std::string, std::string>& extra_metadata) {
    if (specs.size() != storage.size())
        return errorf("write_quantized_checkpoint: {} tensors but {} storage dtypes", specs.size(), storage.size());
    if (!is_quantized(weight_format))
        return errorf("quantize: expected --weights int8 or int4, found {}", dtype_name(weight_format));

    // One entry per stored tensor: data, and scales for q8/q4.
    struct Entry {
        io::TensorToWrite t;
        size_t spec = 0;
        bool is_scales = false;
        uint64_t offset = 0;
        int elem = 1;
    };
    std::vector<Entry> entries;
    // note: encode_safetensors_header reads names, dtypes, shapes and sizes only; the bytes are
    // produced and written one tensor at a time below, so the header gets a placeholder pointer.
    static const uint8_t kStreamed = 0;
    QuantizeStats stats;
    for (size_t i = 0; i < specs.size(); ++i) {
        const TensorSpec& spec = specs[i];
        const int64_t rows = spec.rows(), cols = spec.cols();
        const DType st = storage[i];
        if (stored_dtype_string(st) == "?")
            return errorf("tensor '{}': no stored form for dtype {}", spec.hf_name, dtype_name(st));
        Entry d;
        d.t = io::TensorToWrite{spec.hf_name, std::string(stored_dtype_string(st)), stored_data_shape(spec, st),
                                &kStreamed, static_cast<uint64_t>(quant::weight_data_bytes(st, rows, cols))};
        d.spec = i;
        d.elem = is_quantized(st) ? 1 : static_cast<int>(dtype_size(st));
        entries.push_back(d);
        if (is_quantized(st)) {
            Entry s;
            s.t = io::TensorToWrite{scales_name(spec), st == DType::q8 ? "F32" : "F16", stored_scales_shape(spec, st),
                                    &kStreamed, static_cast<uint64_t>(quant::weight_scale_bytes(st, rows, cols))};
            s.spec = i;
            s.is_scales = true;
            s.elem = st == DType::q8 ? 4 : 2;
            entries.push_back(s);
        }
    }
    // Decreasing element size keeps every tensor aligned to its element size in the mapped file.
    std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.elem > b.elem; });
    std::vector<io::TensorToWrite> header_list;
    header_list.reserve(entries.size());
    for (const auto& e : entries) header_list.push_back(e.t);
    std::map<std::string, std::string> metadata = extra_metadata;
    metadata[kFormatKey] = std::string(dtype_name(weight_format));  // the format keys are never the caller's
    metadata[kFormatVersionKey] = kFormatVersion;
    HR_ASSIGN(std::string header, io::encode_safetensors_header(header_list, metadata));
    uint64_t off = header.size();
    std::vector<size_t> data_entry(specs.size(), SIZE_MAX), scales_entry(specs.size(), SIZE_MAX);
    for (size_t k = 0; k < entries.size(); ++k) {
        entries[k].offset = off;
        off += entries[k].t.nbytes;
        (entries[k].is_scales ? scales_entry : data_entry)[entries[k].spec] = k;
    }

    const std::string tmp = fmt::format("{}.tmp.{}", out_path, static_cast<long>(::getpid()));
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return errorf("cannot create '{}': {}", tmp, std::strerror(errno));
    auto fail = [&](Error e) -> Error {
        ::close(fd);
        ::unlink(tmp.c_str());
        return e;
    };
    if (Status s = write_at(fd, header.data(), header.size(), 0, tmp); !s.ok()) return fail(s.take_error());
    std::vector<uint8_t> data_buf, scale_buf;
    for (size_t i = 0; i < specs.size(); ++i) {
        const TensorSpec& spec = specs[i];
        Result<io::TensorInfo> tr = src(i);
        if (!tr.ok()) return fail(tr.take_error());
        const io::TensorInfo* t = &*tr;
        const Entry& d = entries[data_entry[i]];
        data_buf.resize(d.t.nbytes);
        scale_buf.resize(is_quantized(storage[i]) ? entries[scales_entry[i]].t.nbytes : 0);
        if (Status s = convert_weight(*t, spec, storage[i], data_buf.data(), scale_buf.data()); !s.ok())
            return fail(s.take_error());
        if (Status s = write_at(fd, data_buf.data(), data_buf.size(), d.offset, tmp); !s.ok())
            return fail(s.take_error());
        if (is_quantized(storage[i])) {
            if (Status s = write_at(fd, scale_buf.data(), scale_buf.size(), entries[scales_entry[i]].offset, tmp);
                !s.ok())
                return fail(s.take_error());
            ++stats.n_quantized;
        } else {
            ++stats.n_kept;
        }
        stats.bytes_in += t->nbytes;
        stats.bytes_out += data_buf.size() + scale_buf.size();
        if (progress) progress(i + 1, specs.size());
    }
    if (::fsync(fd) != 0) return fail(errorf("cannot fsync '{}': {}", tmp, std::strerror(errno)));
    if (::close(fd) != 0) {
        const int e = errno;
        ::unlink(tmp.c_str());
        return errorf("cannot close '{}': {}", tmp, std::strerror(e));
    }
    if (::rename(tmp.c_str(), out_path.c_str()) != 0) {
        const int e = errno;
        ::unlink(tmp.c_str());
        return errorf("cannot rename '{}' to '{}': {}", tmp, out_path, std::strerror(e));
    }
    const int dfd = ::open(parent_dir(out_path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {  // persist the rename; a failure leaves a complete file, so it is not an error
        (void)::fsync(dfd);
        ::close(dfd);
    }
    return stats;
}

}  // namespace hr
