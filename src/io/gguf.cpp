// GGUF reader: a bounds-checked parser over the file bytes (versions 2 and 3, little-endian), the
// mmap-backed open(), typed metadata getters, the ggml type table and the Q/K row un-permutation.
#include "io/gguf.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>

#include <fmt/format.h>

namespace hr::io {

namespace {

// Caps that keep memory bounded whatever the counts say (each count is also checked against the bytes
// left, which bounds it by the file size). Real files: ~300-1000 tensors, ~40 keys, arrays of <= 1M.
constexpr uint64_t kMaxTensors = 1u << 20;
constexpr uint64_t kMaxKeys = 1u << 16;
constexpr uint64_t kMaxArrayElems = 1u << 24;       // per array (the largest vocabularies: ~262k)
constexpr uint64_t kMaxTotalArrayElems = 1u << 25;  // all arrays: at most ~1 GiB of decoded values
constexpr uint64_t kMaxStringBytes = 1u << 30;  // a chat template or a JSON blob; never more
constexpr uint32_t kMaxDims = 4;                 // GGML_MAX_DIMS
constexpr uint32_t kDefaultAlignment = 32;

struct TypeEntry {
    uint32_t id;
    std::string_view name;
    int64_t block_elems;
    int64_t block_bytes;
};

// ggml's type table (ggml.h enum ggml_type; sizes as in gguf-py's GGML_QUANT_SIZES). Ids 4, 5, 31-33
// and 36-38 were removed from ggml and are unknown here too.
constexpr std::array<TypeEntry, 34> kTypes{{
    {0, "F32", 1, 4},          {1, "F16", 1, 2},        {2, "Q4_0", 32, 18},     {3, "Q4_1", 32, 20},
    {6, "Q5_0", 32, 22},       {7, "Q5_1", 32, 24},     {8, "Q8_0", 32, 34},     {9, "Q8_1", 32, 40},
    {10, "Q2_K", 256, 84},     {11, "Q3_K", 256, 110},  {12, "Q4_K", 256, 144},  {13, "Q5_K", 256, 176},
    {14, "Q6_K", 256, 210},    {15, "Q8_K", 256, 292},  {16, "IQ2_XXS", 256, 66}, {17, "IQ2_XS", 256, 74},
    {18, "IQ3_XXS", 256, 98},  {19, "IQ1_S", 256, 50},  {20, "IQ4_NL", 32, 18},  {21, "IQ3_S", 256, 110},
    {22, "IQ2_S", 256, 82},    {23, "IQ4_XS", 256, 136}, {24, "I8", 1, 1},       {25, "I16", 1, 2},
    {26, "I32", 1, 4},         {27, "I64", 1, 8},       {28, "F64", 1, 8},       {29, "IQ1_M", 256, 56},
    {30, "BF16", 1, 2},        {34, "TQ1_0", 256, 54},  {35, "TQ2_0", 256, 66},  {39, "MXFP4", 32, 17},
    {40, "NVFP4", 64, 36},     {41, "Q1_0", 128, 18},
}};

const TypeEntry* find_type(uint32_t id) {
    for (const auto& t : kTypes) {
        if (t.id == id) return &t;
    }
    return nullptr;
}

// Control bytes escaped, so that a hostile name cannot garble a terminal or a log line.
std::string printable(std::string_view s) {
    std::string out;
    const size_t n = std::min<size_t>(s.size(), 200);
    out.reserve(n);
    for (size_t i = 0; i < n; ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x20 || c == 0x7f) {
            out += fmt::format("\\x{:02x}", c);
        } else {
            out += static_cast<char>(c);
        }
    }
    if (s.size() > n) out += fmt::format("... ({} bytes)", s.size());
    return out;
}

// Little-endian reads with every length checked against the bytes left. `what` strings name the field
// for the error; `pos` is the absolute offset of the next byte.
class Cursor {
public:
    Cursor(std::span<const uint8_t> b, const std::string& file) : b_(b), file_(file) {}
    uint64_t pos() const { return pos_; }
    uint64_t left() const { return b_.size() - pos_; }

    Result<uint64_t> uint(int bytes, const std::string& what) {
        if (left() < static_cast<uint64_t>(bytes)) {
            return errorf("{}: {} at byte {}: file is truncated: expected {} bytes, found {}", file_, what, pos_,
                          bytes, left());
        }
        uint64_t v = 0;
        for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | b_[pos_ + i];
        pos_ += bytes;
        return v;
    }
    Result<uint32_t> u32(const std::string& what) {
        HR_ASSIGN(uint64_t v, uint(4, what));
        return static_cast<uint32_t>(v);
    }
    Result<uint64_t> u64(const std::string& what) { return uint(8, what); }

    Result<std::string> str(const std::string& what) {
        const uint64_t at = pos_;
        HR_ASSIGN(uint64_t n, u64(what + " (string length)"));
        if (n > left() || n > kMaxStringBytes) {
            return errorf("{}: {} at byte {}: string length {} exceeds the {} bytes left in the file{}", file_, what,
                          at, n, left(), n > kMaxStringBytes ? fmt::format(" (limit {})", kMaxStringBytes) : "");
        }
        std::string s(reinterpret_cast<const char*>(b_.data() + pos_), n);
        pos_ += n;
        return s;
    }

private:
    std::span<const uint8_t> b_;
    const std::string& file_;
    uint64_t pos_ = 0;
};


int int_bytes(uint32_t t) {
    switch (static_cast<GgufType>(t)) {
        case GgufType::U8:
        case GgufType::I8: return 1;
        case GgufType::U16:
        case GgufType::I16: return 2;
        case GgufType::U32:
        case GgufType::I32: return 4;
        default: return 8;
    }
}

int64_t sign_extend(uint64_t v, int bytes) {
    if (bytes == 8) return static_cast<int64_t>(v);
    const int shift = 64 - 8 * bytes;
    return static_cast<int64_t>(v << shift) >> shift;
}

Result<double> read_float(Cursor& c, uint32_t t, const std::string& what) {
    if (t == uint32_t(GgufType::F32)) {
        HR_ASSIGN(uint32_t u, c.u32(what));
        float f;
        std::memcpy(&f, &u, 4);
        return static_cast<double>(f);
    }
    HR_ASSIGN(uint64_t u, c.u64(what));
    double d;
    std::memcpy(&d, &u, 8);
    return d;
}

Result<bool> read_bool(Cursor& c, const std::string& what) {
    const uint64_t at = c.pos();
    HR_ASSIGN(uint64_t v, c.uint(1, what));
    if (v > 1) return errorf("{} at byte {}: expected a bool (0 or 1), found byte {}", what, at, v);
    return v == 1;
}

std::string key_ctx(const std::string& file, const std::string& key) {
    return fmt::format("{}: key '{}'", file, printable(key));
}

// `budget`: array elements the rest of the file may still decode (kMaxTotalArrayElems in all), so that
// many arrays of 1-byte elements cannot expand to 8x or 32x the file size in memory without bound.
Result<GgufArray> read_array(Cursor& c, const std::string& file, const std::string& key, uint64_t& budget) {
    const std::string ctx = key_ctx(file, key);
    const uint64_t at = c.pos();
    HR_ASSIGN(uint32_t et, c.u32(fmt::format("key '{}': array element type", printable(key))));
    if (et == uint32_t(GgufType::ARRAY)) {
        return errorf("{} at byte {}: arrays of arrays are not supported (expected an array of scalars or strings)",
                      ctx, at);
    }
    const uint64_t min_bytes = gguf_scalar_bytes(et);
    if (min_bytes == 0) {
        return errorf("{} at byte {}: unknown array element type {} (expected 0-8 or 10-12)", ctx, at, et);
    }
    const uint64_t count_at = c.pos();
    HR_ASSIGN(uint64_t n, c.u64(fmt::format("key '{}': array length", printable(key))));
    if (n > kMaxArrayElems || n > c.left() / min_bytes) {
        return errorf("{} at byte {}: array of {} {} elements needs at least {} bytes, but {} bytes are left{}", ctx,
                      count_at, n, gguf_type_name(et),
                      n > std::numeric_limits<uint64_t>::max() / min_bytes ? std::string("> 2^64")
                                                                            : fmt::format("{}", n * min_bytes),
                      c.left(), n > kMaxArrayElems ? fmt::format(" (limit {} elements)", kMaxArrayElems) : "");
    }
    if (n > budget) {
        return errorf("{} at byte {}: array of {} elements exceeds the limit of {} array elements in one file", ctx,
                      count_at, n, kMaxTotalArrayElems);
    }
    budget -= n;
    GgufArray a;
    a.elem_type = et;
    const std::string what = fmt::format("key '{}': array element", printable(key));
    if (gguf_is_signed_int(et)) {
        std::vector<int64_t> v(n);
        for (auto& x : v) {
            HR_ASSIGN(uint64_t u, c.uint(int_bytes(et), what));
            x = sign_extend(u, int_bytes(et));
        }
        a.values = std::move(v);
    } else if (gguf_is_unsigned_int(et)) {
        std::vector<uint64_t> v(n);
        for (auto& x : v) {
            HR_ASSIGN(x, c.uint(int_bytes(et), what));
        }
        a.values = std::move(v);
    } else if (et == uint32_t(GgufType::F32) || et == uint32_t(GgufType::F64)) {
        std::vector<double> v(n);
        for (auto& x : v) {
            HR_ASSIGN(x, read_float(c, et, what));
        }
        a.values = std::move(v);
    } else if (et == uint32_t(GgufType::BOOL)) {
        std::vector<bool> v(n);
        for (uint64_t i = 0; i < n; ++i) {
            HR_ASSIGN(bool b, read_bool(c, file + ": " + what));
            v[i] = b;
        }
        a.values = std::move(v);
    } else {
        std::vector<std::string> v;
        v.reserve(n);
        for (uint64_t i = 0; i < n; ++i) {
            HR_ASSIGN(std::string s, c.str(fmt::format("key '{}': string element {}", printable(key), i)));
            v.push_back(std::move(s));
        }
        a.values = std::move(v);
    }
    return a;
}

Result<GgufValue> read_value(Cursor& c, uint32_t t, const std::string& file, const std::string& key,
                             uint64_t type_at, uint64_t& array_budget) {
    const std::string what = fmt::format("key '{}': value", printable(key));
    if (gguf_is_signed_int(t)) {
        HR_ASSIGN(uint64_t u, c.uint(int_bytes(t), what));
        return GgufValue(sign_extend(u, int_bytes(t)));
    }
    if (gguf_is_unsigned_int(t)) {
        HR_ASSIGN(uint64_t u, c.uint(int_bytes(t), what));
        return GgufValue(u);
    }
    switch (static_cast<GgufType>(t)) {
        case GgufType::F32:
        case GgufType::F64: {
            HR_ASSIGN(double d, read_float(c, t, what));
            return GgufValue(d);
        }
        case GgufType::BOOL: {
            HR_ASSIGN(bool b, read_bool(c, file + ": " + what));
            return GgufValue(b);
        }
        case GgufType::STRING: {
            HR_ASSIGN(std::string s, c.str(what));
            return GgufValue(std::move(s));
        }
        case GgufType::ARRAY: {
            HR_ASSIGN(GgufArray a, read_array(c, file, key, array_budget));
            return GgufValue(std::move(a));
        }
        default:
            return errorf("{} at byte {}: unknown value type {} (expected 0-12)", key_ctx(file, key), type_at, t);
    }
}

std::string dims_str(std::span<const uint64_t> dims) { return fmt::format("[{}]", fmt::join(dims, ", ")); }

struct Placed {
    size_t index;
    uint64_t begin;
    uint64_t end;
};

}  // namespace

uint64_t gguf_scalar_bytes(uint32_t t) {
    switch (static_cast<GgufType>(t)) {
        case GgufType::U8:
        case GgufType::I8:
        case GgufType::BOOL: return 1;
        case GgufType::U16:
        case GgufType::I16: return 2;
        case GgufType::U32:
        case GgufType::I32:
        case GgufType::F32: return 4;
        case GgufType::U64:
        case GgufType::I64:
        case GgufType::F64:
        case GgufType::STRING: return 8;
        default: return 0;
    }
}

bool gguf_is_signed_int(uint32_t t) {
    return t == uint32_t(GgufType::I8) || t == uint32_t(GgufType::I16) || t == uint32_t(GgufType::I32) ||
           t == uint32_t(GgufType::I64);
}
bool gguf_is_unsigned_int(uint32_t t) {
    return t == uint32_t(GgufType::U8) || t == uint32_t(GgufType::U16) || t == uint32_t(GgufType::U32) ||
           t == uint32_t(GgufType::U64);
}

std::string_view ggml_type_name(uint32_t type) {
    const TypeEntry* t = find_type(type);
    return t ? t->name : std::string_view("unknown");
}

std::optional<GgmlTypeSize> ggml_type_size(uint32_t type) {
    const TypeEntry* t = find_type(type);
    if (!t) return std::nullopt;
    return GgmlTypeSize{t->block_elems, t->block_bytes};
}

std::string_view gguf_type_name(uint32_t type) {
    static constexpr std::array<std::string_view, 13> kNames{"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                                             "bool", "string", "array", "u64", "i64", "f64"};
    return type < kNames.size() ? kNames[type] : std::string_view("unknown");
}

Result<DType> dtype_for_ggml(uint32_t type, const std::string& tensor_name) {
    switch (static_cast<GgmlType>(type)) {
        case GgmlType::F32: return DType::f32;
        case GgmlType::F16: return DType::f16;
        case GgmlType::BF16: return DType::bf16;
        case GgmlType::Q8_0: return DType::gg_q8_0;
        case GgmlType::Q4_0: return DType::gg_q4_0;
        case GgmlType::Q4_1: return DType::gg_q4_1;
        case GgmlType::Q5_0: return DType::gg_q5_0;
        case GgmlType::Q5_1: return DType::gg_q5_1;
        case GgmlType::Q4_K: return DType::gg_q4_k;
        case GgmlType::Q5_K: return DType::gg_q5_k;
        case GgmlType::Q6_K: return DType::gg_q6_k;
        default: break;
    }
    if (!find_type(type)) {
        return errorf("tensor '{}': unknown ggml type id {} (not a type ggml defines)", printable(tensor_name), type);
    }
    return errorf("tensor '{}': ggml type {} (id {}) is not supported by headroom (expected one of F32, F16, BF16, "
                  "Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K; re-quantize the model to one of these)",
                  printable(tensor_name), ggml_type_name(type), type);
}

size_t GgufArray::size() const {
    return std::visit([](const auto& v) { return v.size(); }, values);
}

Result<std::shared_ptr<GgufFile>> GgufFile::open(const std::string& path) {
    HR_ASSIGN(auto mapping, MappedFile::open(path));
    HR_ASSIGN(auto file, parse(mapping->bytes(), path));
    file->mapping_ = std::move(mapping);
    return file;
}

Result<std::shared_ptr<GgufFile>> GgufFile::parse(std::span<const uint8_t> bytes, const std::string& name) {
    Cursor c(bytes, name);
    if (bytes.size() < 4 || std::memcmp(bytes.data(), "GGUF", 4) != 0) {
        std::string found = bytes.size() < 4 ? fmt::format("a file of {} bytes", bytes.size())
                                             : fmt::format("bytes {:02x} {:02x} {:02x} {:02x}", bytes[0], bytes[1],
                                                           bytes[2], bytes[3]);
        return errorf("{}: not a GGUF file: expected the magic \"GGUF\" at byte 0, found {}", name, found);
    }
    HR_ASSIGN(uint64_t magic, c.uint(4, "magic"));
    (void)magic;
    HR_ASSIGN(uint32_t version, c.u32("version"));
    if (version == 1) {
        return errorf("{}: GGUF version 1 is not supported (expected version 2 or 3; version 1 used 32-bit lengths "
                      "and was replaced in 2023: re-convert the model with a current llama.cpp)",
                      name);
    }
    if (version != 2 && version != 3) {
        const uint32_t swapped = __builtin_bswap32(version);
        if (swapped >= 1 && swapped <= 3) {
            return errorf("{}: big-endian GGUF file (version bytes {:08x} at byte 4): expected a little-endian file",
                          name, version);
        }
        return errorf("{}: unsupported GGUF version {} at byte 4 (expected 2 or 3)", name, version);
    }
    HR_ASSIGN(uint64_t n_tensors, c.u64("tensor count"));
    HR_ASSIGN(uint64_t n_kv, c.u64("metadata key/value count"));
    // Each key/value takes at least 8 (key length) + 4 (type) + 1 bytes; each tensor info at least
    // 8 (name length) + 4 (n_dims) + 8 (one dim) + 4 (type) + 8 (offset).
    if (n_kv > kMaxKeys || n_kv > c.left() / 13) {
        return errorf("{}: metadata key/value count {} at byte 16 is impossible: {} bytes are left (limit {} keys)",
                      name, n_kv, c.left(), kMaxKeys);
    }
    if (n_tensors > kMaxTensors || n_tensors > c.left() / 32) {
        return errorf("{}: tensor count {} at byte 8 is impossible: {} bytes are left (limit {} tensors)", name,
                      n_tensors, c.left(), kMaxTensors);
    }

    auto f = std::shared_ptr<GgufFile>(new GgufFile());
    f->path_ = name;
    f->version_ = version;
    f->key_order_.reserve(n_kv);
    uint64_t array_budget = kMaxTotalArrayElems;
    for (uint64_t i = 0; i < n_kv; ++i) {
        const uint64_t key_at = c.pos();
        HR_ASSIGN(std::string key, c.str(fmt::format("metadata key {} of {}", i, n_kv)));
        if (key.empty()) return errorf("{}: metadata key {} at byte {}: expected a non-empty key", name, i, key_at);
        if (f->kv_.count(key)) {
            return errorf("{}: duplicate key at byte {} (expected each metadata key once)", key_ctx(name, key),
                          key_at);
        }
        const uint64_t type_at = c.pos();
        HR_ASSIGN(uint32_t type, c.u32(fmt::format("key '{}': value type", printable(key))));
        HR_ASSIGN(GgufValue value, read_value(c, type, name, key, type_at, array_budget));
        f->kv_type_.emplace(key, type);
        f->kv_.emplace(key, std::move(value));
        f->key_order_.push_back(std::move(key));
    }

    // general.alignment: a u32 power of two (gguf.h), default 32.
    if (auto it = f->kv_.find("general.alignment"); it != f->kv_.end()) {
        const uint32_t t = f->kv_type_.at(it->first);
        const auto* v = std::get_if<uint64_t>(&it->second);
        if (t != uint32_t(GgufType::U32) || !v) {
            return errorf("{}: general.alignment: expected a u32, found a {}", key_ctx(name, "general.alignment"),
                          gguf_type_name(t));
        }
        if (*v == 0 || (*v & (*v - 1)) != 0) {
            return errorf("{}: expected a power of two, found {}", key_ctx(name, "general.alignment"), *v);
        }
        f->alignment_ = static_cast<uint32_t>(*v);
    } else {
        f->alignment_ = kDefaultAlignment;
    }
    const uint64_t align = f->alignment_;

    struct Info {
        GgufTensor t;
        uint64_t info_at;
        uint64_t rel_offset;
    };
    std::vector<Info> infos;
    infos.reserve(n_tensors);
    std::map<std::string_view, size_t> seen;
    for (uint64_t i = 0; i < n_tensors; ++i) {
        Info info;
        info.info_at = c.pos();
        HR_ASSIGN(info.t.name, c.str(fmt::format("tensor info {} of {}: name", i, n_tensors)));
        GgufTensor& t = info.t;
        const std::string ctx = fmt::format("{}: tensor '{}' (info at byte {})", name, printable(t.name), info.info_at);
        if (t.name.empty()) return errorf("{}: expected a non-empty tensor name", ctx);
        HR_ASSIGN(uint32_t n_dims, c.u32(fmt::format("tensor '{}': n_dims", printable(t.name))));
        if (n_dims == 0 || n_dims > kMaxDims) {
            return errorf("{}: expected 1 to {} dimensions, found n_dims = {}", ctx, kMaxDims, n_dims);
        }
        std::vector<uint64_t> dims(n_dims);
        for (auto& d : dims) {
            HR_ASSIGN(d, c.u64(fmt::format("tensor '{}': dimension", printable(t.name))));
        }
        HR_ASSIGN(t.ggml_type, c.u32(fmt::format("tensor '{}': type", printable(t.name))));
        HR_ASSIGN(info.rel_offset, c.u64(fmt::format("tensor '{}': offset", printable(t.name))));

        uint64_t numel = 1;
        for (uint64_t d : dims) {
            if (d == 0 || d > static_cast<uint64_t>(INT64_MAX)) {
                return errorf("{}: expected positive dimensions below 2^63, found dims {} (innermost first)", ctx,
                              dims_str(dims));
            }
            if (__builtin_mul_overflow(numel, d, &numel) || numel > static_cast<uint64_t>(INT64_MAX)) {
                return errorf("{}: dims {} have more elements than fit in 63 bits", ctx, dims_str(dims));
            }
        }
        const TypeEntry* te = find_type(t.ggml_type);
        if (!te) {
            return errorf("{}: unknown ggml type id {} (not a type ggml defines; newer than this headroom?)", ctx,
                          t.ggml_type);
        }
        if (dims[0] % static_cast<uint64_t>(te->block_elems) != 0) {
            return errorf("{}: row length {} (innermost dimension) is not a multiple of the {} block size {}", ctx,
                          dims[0], te->name, te->block_elems);
        }
        // numel is a multiple of block_elems; its byte count must fit in 64 bits.
        if (__builtin_mul_overflow(numel / te->block_elems, static_cast<uint64_t>(te->block_bytes), &t.nbytes)) {
            return errorf("{}: {} x {} overflows a 64-bit byte count", ctx, te->name, dims_str(dims));
        }
        if (info.rel_offset % align != 0) {
            return errorf("{}: data offset {} is not a multiple of the alignment {}", ctx, info.rel_offset, align);
        }
        auto r = dtype_for_ggml(t.ggml_type, t.name);
        t.supported = r.ok();
        t.dtype = r.ok() ? *r : DType::u8;
        t.shape.assign(dims.rbegin(), dims.rend());
        infos.push_back(std::move(info));
    }
    for (size_t i = 0; i < infos.size(); ++i) {
        auto [it, inserted] = seen.emplace(infos[i].t.name, i);
        if (!inserted) {
            return errorf("{}: duplicate tensor name '{}' (infos at bytes {} and {}; expected each name once)", name,
                          printable(infos[i].t.name), infos[it->second].info_at, infos[i].info_at);
        }
    }

    // The data section begins at the end of the infos, padded to the alignment.
    const uint64_t infos_end = c.pos();
    const uint64_t data_offset = (infos_end + align - 1) / align * align;  // infos_end < 2^62: no overflow
    f->data_offset_ = data_offset;
    const uint64_t size = bytes.size();
    if (!infos.empty() && data_offset > size) {
        return errorf("{}: file is truncated: the data section should start at byte {} (after the tensor infos, "
                      "padded to {}), but the file has {} bytes",
                      name, data_offset, align, size);
    }
    const uint64_t data_size = infos.empty() ? 0 : size - data_offset;

    std::vector<Placed> placed;
    placed.reserve(infos.size());
    for (size_t i = 0; i < infos.size(); ++i) {
        const Info& in = infos[i];
        uint64_t end = 0;
        if (__builtin_add_overflow(in.rel_offset, in.t.nbytes, &end) || end > data_size) {
            uint64_t abs = 0;
            const bool abs_overflows = __builtin_add_overflow(data_offset, in.rel_offset, &abs);
            return errorf("{}: tensor '{}' (info at byte {}): its {} bytes at offset {} of the data section (file "
                          "byte {}) run past the end of the file: the data section holds {} bytes (file truncated?)",
                          name, printable(in.t.name), in.info_at, in.t.nbytes, in.rel_offset,
                          abs_overflows ? std::string(">= 2^64") : std::to_string(abs), data_size);
        }
        placed.push_back({i, in.rel_offset, end});
    }
    std::sort(placed.begin(), placed.end(), [](const Placed& a, const Placed& b) {
        return a.begin != b.begin ? a.begin < b.begin : a.index < b.index;
    });
    for (size_t k = 1; k < placed.size(); ++k) {
        const Placed& a = placed[k - 1];
        const Placed& b = placed[k];
        if (b.begin < a.end) {
            return errorf("{}: tensor '{}' (info at byte {}): data at offset {} overlaps tensor '{}' (offset {}, {} "
                          "bytes)",
                          name, printable(infos[b.index].t.name), infos[b.index].info_at, b.begin,
                          printable(infos[a.index].t.name), a.begin, a.end - a.begin);
        }
    }

    f->tensors_.reserve(infos.size());
    for (auto& in : infos) {
        in.t.offset = data_offset + in.rel_offset;
        in.t.data = bytes.data() + in.t.offset;
        f->tensors_.push_back(std::move(in.t));
    }
    for (size_t i = 0; i < f->tensors_.size(); ++i) f->index_.emplace(f->tensors_[i].name, i);
    return f;
}

const GgufTensor* GgufFile::find(std::string_view name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &tensors_[it->second];
}

std::optional<uint32_t> GgufFile::value_type(std::string_view key) const {
    auto it = kv_type_.find(key);
    if (it == kv_type_.end()) return std::nullopt;
    return it->second;
}

Result<std::optional<int64_t>> GgufFile::get_int(std::string_view key) const {
    auto it = kv_.find(key);
    if (it == kv_.end()) return std::optional<int64_t>();
    if (const auto* s = std::get_if<int64_t>(&it->second)) return std::optional<int64_t>(*s);
    if (const auto* u = std::get_if<uint64_t>(&it->second)) {
        if (*u > static_cast<uint64_t>(INT64_MAX)) {
            return errorf("{}: key '{}': value {} does not fit a signed 64-bit integer", path_, printable(key), *u);
        }
        return std::optional<int64_t>(static_cast<int64_t>(*u));
    }
    return errorf("{}: key '{}': expected an integer, found a {}", path_, printable(key),
                  gguf_type_name(kv_type_.find(key)->second));
}

Result<std::optional<double>> GgufFile::get_float(std::string_view key) const {
    auto it = kv_.find(key);
    if (it == kv_.end()) return std::optional<double>();
    if (const auto* d = std::get_if<double>(&it->second)) return std::optional<double>(*d);
    if (const auto* s = std::get_if<int64_t>(&it->second)) return std::optional<double>(static_cast<double>(*s));
    if (const auto* u = std::get_if<uint64_t>(&it->second)) return std::optional<double>(static_cast<double>(*u));
    return errorf("{}: key '{}': expected a number, found a {}", path_, printable(key),
                  gguf_type_name(kv_type_.find(key)->second));
}

Result<std::optional<bool>> GgufFile::get_bool(std::string_view key) const {
    auto it = kv_.find(key);
    if (it == kv_.end()) return std::optional<bool>();
    if (const auto* b = std::get_if<bool>(&it->second)) return std::optional<bool>(*b);
    return errorf("{}: key '{}': expected a bool, found a {}", path_, printable(key),
                  gguf_type_name(kv_type_.find(key)->second));
}

Result<std::optional<std::string>> GgufFile::get_string(std::string_view key) const {
    auto it = kv_.find(key);
    if (it == kv_.end()) return std::optional<std::string>();
    if (const auto* s = std::get_if<std::string>(&it->second)) return std::optional<std::string>(*s);
    return errorf("{}: key '{}': expected a string, found a {}", path_, printable(key),
                  gguf_type_name(kv_type_.find(key)->second));
}

const GgufArray* GgufFile::get_array(std::string_view key) const {
    auto it = kv_.find(key);
    if (it == kv_.end()) return nullptr;
    return std::get_if<GgufArray>(&it->second);
}

Status unpermute_qk_row_bytes(void* rows_data, int64_t rows, int64_t row_bytes, int64_t n_head) {
    if (n_head <= 0 || rows <= 0 || rows % (2 * n_head) != 0 || row_bytes < 0) {
        return errorf("unpermute_qk_rows: expected rows to be a positive multiple of 2 * n_head, found rows = {}, "
                      "n_head = {}",
                      rows, n_head);
    }
    auto* base = static_cast<uint8_t*>(rows_data);
    const int64_t head_dim = rows / n_head;
    const int64_t half = head_dim / 2;
    std::vector<uint8_t> tmp(static_cast<size_t>(head_dim * row_bytes));
    for (int64_t h = 0; h < n_head; ++h) {
        uint8_t* head = base + h * head_dim * row_bytes;
        // GGUF row 2*i + p of the head holds HF row p * half + i.
        for (int64_t i = 0; i < half; ++i) {
            for (int64_t p = 0; p < 2; ++p) {
                std::memcpy(tmp.data() + (p * half + i) * row_bytes, head + (2 * i + p) * row_bytes,
                            static_cast<size_t>(row_bytes));
            }
        }
        std::memcpy(head, tmp.data(), tmp.size());
    }
    return ok();
}

Status unpermute_qk_rows(float* w, int64_t rows, int64_t cols, int64_t n_head) {
    if (cols < 0 || cols > INT64_MAX / 4) return errorf("unpermute_qk_rows: invalid column count {}", cols);
    return unpermute_qk_row_bytes(w, rows, cols * static_cast<int64_t>(sizeof(float)), n_head);
}

}  // namespace hr::io
