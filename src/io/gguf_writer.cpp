// GGUF writer: encodes metadata and raw tensor bytes in GGUF's little-endian layout (see io/gguf.h),
// tensors in the given order, each at the next multiple of the alignment.
#include "io/gguf_writer.h"

#include <cstdio>
#include <cstring>
#include <set>

#include <fmt/format.h>

namespace hr::io {

namespace {

class Out {
public:
    std::vector<uint8_t> b;
    void uint(uint64_t v, int bytes) {
        for (int i = 0; i < bytes; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
    }
    void str(const std::string& s) {
        uint(s.size(), 8);
        b.insert(b.end(), s.begin(), s.end());
    }
};

// Bytes of one integer value of type t (the reader's table: gguf.h).
int width(uint32_t t) { return static_cast<int>(gguf_scalar_bytes(t)); }

Status check_signed(int64_t v, uint32_t t, const std::string& key) {
    const int bits = 8 * width(t);
    if (bits < 64 && (v < -(int64_t{1} << (bits - 1)) || v >= (int64_t{1} << (bits - 1)))) {
        return errorf("gguf writer: key '{}': value {} does not fit {}", key, v, gguf_type_name(t));
    }
    return ok();
}
Status check_unsigned(uint64_t v, uint32_t t, const std::string& key) {
    const int bits = 8 * width(t);
    if (bits < 64 && v >= (uint64_t{1} << bits)) {
        return errorf("gguf writer: key '{}': value {} does not fit {}", key, v, gguf_type_name(t));
    }
    return ok();
}

void put_float(Out& o, double d, uint32_t t) {
    if (t == uint32_t(GgufType::F32)) {
        const float f = static_cast<float>(d);
        uint32_t u;
        std::memcpy(&u, &f, 4);
        o.uint(u, 4);
    } else {
        uint64_t u;
        std::memcpy(&u, &d, 8);
        o.uint(u, 8);
    }
}

Status put_array(Out& o, const GgufArray& a, const std::string& key) {
    const uint32_t et = a.elem_type;
    o.uint(et, 4);
    o.uint(a.size(), 8);
    auto mismatch = [&] {
        return errorf("gguf writer: key '{}': array of {} holds values of another kind", key, gguf_type_name(et));
    };
    if (gguf_is_signed_int(et)) {
        const auto* v = std::get_if<std::vector<int64_t>>(&a.values);
        if (!v) return mismatch();
        for (int64_t x : *v) {
            HR_TRY(check_signed(x, et, key));
            o.uint(static_cast<uint64_t>(x), width(et));
        }
    } else if (gguf_is_unsigned_int(et)) {
        const auto* v = std::get_if<std::vector<uint64_t>>(&a.values);
        if (!v) return mismatch();
        for (uint64_t x : *v) {
            HR_TRY(check_unsigned(x, et, key));
            o.uint(x, width(et));
        }
    } else if (et == uint32_t(GgufType::F32) || et == uint32_t(GgufType::F64)) {
        const auto* v = std::get_if<std::vector<double>>(&a.values);
        if (!v) return mismatch();
        for (double x : *v) put_float(o, x, et);
    } else if (et == uint32_t(GgufType::BOOL)) {
        const auto* v = std::get_if<std::vector<bool>>(&a.values);
        if (!v) return mismatch();
        for (bool x : *v) o.uint(x ? 1 : 0, 1);
    } else if (et == uint32_t(GgufType::STRING)) {
        const auto* v = std::get_if<std::vector<std::string>>(&a.values);
        if (!v) return mismatch();
        for (const auto& x : *v) o.str(x);
    } else {
        return errorf("gguf writer: key '{}': unsupported array element type {}", key, et);
    }
    return ok();
}

Status put_value(Out& o, const GgufKV& kv) {
    const uint32_t t = kv.type;
    auto mismatch = [&] {
        return errorf("gguf writer: key '{}': a {} value holds another kind of value", kv.key, gguf_type_name(t));
    };
    if (gguf_is_signed_int(t)) {
        const auto* v = std::get_if<int64_t>(&kv.value);
        if (!v) return mismatch();
        HR_TRY(check_signed(*v, t, kv.key));
        o.uint(static_cast<uint64_t>(*v), width(t));
        return ok();
    }
    if (gguf_is_unsigned_int(t)) {
        const auto* v = std::get_if<uint64_t>(&kv.value);
        if (!v) return mismatch();
        HR_TRY(check_unsigned(*v, t, kv.key));
        o.uint(*v, width(t));
        return ok();
    }
    switch (static_cast<GgufType>(t)) {
        case GgufType::F32:
        case GgufType::F64: {
            const auto* v = std::get_if<double>(&kv.value);
            if (!v) return mismatch();
            put_float(o, *v, t);
            return ok();
        }
        case GgufType::BOOL: {
            const auto* v = std::get_if<bool>(&kv.value);
            if (!v) return mismatch();
            o.uint(*v ? 1 : 0, 1);
            return ok();
        }
        case GgufType::STRING: {
            const auto* v = std::get_if<std::string>(&kv.value);
            if (!v) return mismatch();
            o.str(*v);
            return ok();
        }
        case GgufType::ARRAY: {
            const auto* v = std::get_if<GgufArray>(&kv.value);
            if (!v) return mismatch();
            return put_array(o, *v, kv.key);
        }
        default: return errorf("gguf writer: key '{}': unknown value type {}", kv.key, t);
    }
}

}  // namespace

Result<std::vector<uint8_t>> serialize_gguf(const std::vector<GgufKV>& kvs,
                                            const std::vector<GgufTensorToWrite>& tensors,
                                            const GgufWriteOptions& opts, GgufLayout* layout) {
    GgufLayout lay;
    uint64_t align = 32;
    for (const auto& kv : kvs) {
        if (kv.key != "general.alignment") continue;
        const auto* v = std::get_if<uint64_t>(&kv.value);
        if (v && *v > 0 && (*v & (*v - 1)) == 0 && *v <= (uint64_t{1} << 31)) {
            align = *v;
        } else if (opts.validate) {
            return make_error("gguf writer: general.alignment: expected a u32 power of two");
        }
    }
    lay.alignment = static_cast<uint32_t>(align);

    std::vector<uint64_t> nbytes_padded;
    if (opts.validate) {
        std::set<std::string> keys;
        for (const auto& kv : kvs) {
            if (kv.key.empty() || !keys.insert(kv.key).second) {
                return errorf("gguf writer: key '{}': expected a unique, non-empty key", kv.key);
            }
        }
        std::set<std::string> names;
        for (const auto& t : tensors) {
            if (t.name.empty() || !names.insert(t.name).second) {
                return errorf("gguf writer: tensor '{}': expected a unique, non-empty name", t.name);
            }
            auto sz = ggml_type_size(t.ggml_type);
            if (!sz) return errorf("gguf writer: tensor '{}': unknown ggml type {}", t.name, t.ggml_type);
            if (t.shape.empty() || t.shape.size() > 4) {
                return errorf("gguf writer: tensor '{}': expected 1 to 4 dimensions", t.name);
            }
            uint64_t numel = 1;
            for (int64_t d : t.shape) {
                if (d <= 0 || __builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel)) {
                    return errorf("gguf writer: tensor '{}': expected positive dimensions with a 64-bit product",
                                  t.name);
                }
            }
            if (t.shape.back() % sz->block_elems != 0) {
                return errorf("gguf writer: tensor '{}': row length {} is not a multiple of the block size {}",
                              t.name, t.shape.back(), sz->block_elems);
            }
            uint64_t want = 0;
            if (__builtin_mul_overflow(numel / sz->block_elems, static_cast<uint64_t>(sz->block_bytes), &want) ||
                want != t.nbytes) {
                return errorf("gguf writer: tensor '{}': expected {} bytes for its shape and type, given {}", t.name,
                              want, t.nbytes);
            }
        }
    }

    Out o;
    o.b.insert(o.b.end(), {'G', 'G', 'U', 'F'});
    o.uint(opts.version, 4);
    o.uint(tensors.size(), 8);
    o.uint(kvs.size(), 8);
    for (const auto& kv : kvs) {
        lay.key_at.push_back(o.b.size());
        o.str(kv.key);
        o.uint(kv.type, 4);
        HR_TRY(put_value(o, kv));
    }
    uint64_t offset = 0;
    for (const auto& t : tensors) {
        lay.tensor_info_at.push_back(o.b.size());
        o.str(t.name);
        o.uint(t.shape.size(), 4);
        for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) o.uint(static_cast<uint64_t>(*it), 8);
        lay.tensor_type_at.push_back(o.b.size());
        o.uint(t.ggml_type, 4);
        lay.tensor_offset_at.push_back(o.b.size());
        o.uint(offset, 8);
        offset += (t.nbytes + align - 1) / align * align;
    }
    // Without tensors there is no data section and no padding (the reader does not need one).
    if (!tensors.empty()) o.b.resize((o.b.size() + align - 1) / align * align, 0);
    lay.data_offset = o.b.size();
    for (size_t i = 0, at = o.b.size(); i < tensors.size(); ++i) {
        lay.tensor_data_at.push_back(at);
        at += (tensors[i].nbytes + align - 1) / align * align;
    }
    if (opts.header_only) {
        if (layout) *layout = std::move(lay);
        return std::move(o.b);
    }
    for (const auto& t : tensors) {
        if (t.nbytes > 0 && t.data) o.b.insert(o.b.end(), t.data, t.data + t.nbytes);
        else o.b.resize(o.b.size() + t.nbytes, 0);
        o.b.resize((o.b.size() + align - 1) / align * align, 0);
    }
    if (layout) *layout = std::move(lay);
    return std::move(o.b);
}

Status write_gguf(const std::string& path, const std::vector<GgufKV>& kvs,
                  const std::vector<GgufTensorToWrite>& tensors, const GgufWriteOptions& opts) {
    HR_ASSIGN(auto bytes, serialize_gguf(kvs, tensors, opts));
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) return errorf("{}: cannot open for writing", path);
    const size_t n = std::fwrite(bytes.data(), 1, bytes.size(), f);
    const bool closed = std::fclose(f) == 0;
    if (n != bytes.size() || !closed) return errorf("{}: write failed ({} of {} bytes)", path, n, bytes.size());
    return ok();
}

GgufKV gguf_kv_u32(std::string key, uint32_t v) { return {std::move(key), uint32_t(GgufType::U32), uint64_t{v}}; }
GgufKV gguf_kv_i32(std::string key, int32_t v) { return {std::move(key), uint32_t(GgufType::I32), int64_t{v}}; }
GgufKV gguf_kv_u64(std::string key, uint64_t v) { return {std::move(key), uint32_t(GgufType::U64), v}; }
GgufKV gguf_kv_f32(std::string key, float v) {
    return {std::move(key), uint32_t(GgufType::F32), static_cast<double>(v)};
}
GgufKV gguf_kv_bool(std::string key, bool v) { return {std::move(key), uint32_t(GgufType::BOOL), v}; }
GgufKV gguf_kv_str(std::string key, std::string v) {
    return {std::move(key), uint32_t(GgufType::STRING), std::move(v)};
}
GgufKV gguf_kv_str_array(std::string key, std::vector<std::string> v) {
    GgufArray a;
    a.elem_type = uint32_t(GgufType::STRING);
    a.values = std::move(v);
    return {std::move(key), uint32_t(GgufType::ARRAY), std::move(a)};
}
GgufKV gguf_kv_i32_array(std::string key, std::vector<int64_t> v) {
    GgufArray a;
    a.elem_type = uint32_t(GgufType::I32);
    a.values = std::move(v);
    return {std::move(key), uint32_t(GgufType::ARRAY), std::move(a)};
}
GgufKV gguf_kv_f32_array(std::string key, std::vector<double> v) {
    GgufArray a;
    a.elem_type = uint32_t(GgufType::F32);
    a.values = std::move(v);
    return {std::move(key), uint32_t(GgufType::ARRAY), std::move(a)};
}

}  // namespace hr::io
