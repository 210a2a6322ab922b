// Safetensors reader: header validation (lengths, UTF-8, strict JSON, dtypes, shapes, offsets,
// full coverage of the data section) over caller-owned bytes, and the mmap-backed open().
#include "io/safetensors.h"

#include <algorithm>
#include <array>
#include <cstring>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/json_check.h"

namespace hr::io {

using nlohmann::json;

namespace {

struct DTypeBits {
    std::string_view name;
    uint32_t bits;
};

// The dtypes of the current safetensors spec (huggingface/safetensors Dtype enum).
constexpr std::array<DTypeBits, 22> kDTypes{{
    {"BOOL", 8},    {"F4", 4},           {"F6_E2M3", 6},      {"F6_E3M2", 6}, {"U8", 8},   {"I8", 8},
    {"F8_E5M2", 8}, {"F8_E4M3", 8},      {"F8_E8M0", 8},      {"F8_E4M3FNUZ", 8},          {"F8_E5M2FNUZ", 8},
    {"I16", 16},    {"U16", 16},         {"F16", 16},         {"BF16", 16},   {"I32", 32}, {"U32", 32},
    {"F32", 32},    {"C64", 64},         {"F64", 64},         {"I64", 64},    {"U64", 64},
}};

std::string known_dtypes_list() {
    std::string s;
    for (const auto& d : kDTypes) {
        if (!s.empty()) s += ", ";
        s += d.name;
    }
    return s;
}

std::string printable(std::string_view s) { return printable_name(s); }

std::string shape_str(std::span<const int64_t> shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

uint64_t read_le64(const uint8_t* p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

// Offset of the first byte that is not part of well-formed UTF-8 (no overlongs, no surrogates,
// nothing above U+10FFFF), or npos.
size_t find_invalid_utf8(std::string_view s) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const size_t n = s.size();
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c < 0x80) {
            ++i;
            continue;
        }
        size_t len = 0;
        uint32_t min = 0;
        uint32_t cp = 0;
        if ((c & 0xe0) == 0xc0) {
            len = 2, min = 0x80, cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, min = 0x800, cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, min = 0x10000, cp = c & 0x07;
        } else {
            return i;
        }
        if (n - i < len) return i;
        for (size_t k = 1; k < len; ++k) {
            if ((p[i + k] & 0xc0) != 0x80) return i;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
        i += len;
    }
    return std::string_view::npos;
}

const char* json_type(const json& j) { return j.type_name(); }

// A non-negative integer that fits in int64 (shape entries, offsets); `what` names the field.
Result<uint64_t> json_nonneg_int(const json& j, const std::string& what) {
    if (j.is_number_unsigned()) {
        uint64_t v = j.get<uint64_t>();
        if (v > static_cast<uint64_t>(INT64_MAX)) {
            return errorf("{}: expected a non-negative integer below 2^63, found {}", what, v);
        }
        return v;
    }
    if (j.is_number_integer()) return errorf("{}: expected a non-negative integer, found {}", what, j.get<int64_t>());
    if (j.is_number_float()) return errorf("{}: expected a non-negative integer, found {}", what, j.dump());
    return errorf("{}: expected a non-negative integer, found a JSON {}", what, json_type(j));
}

struct Entry {
    TensorInfo info;
    uint64_t begin = 0;
    uint64_t end = 0;
};

Result<Entry> parse_tensor_entry(const std::string& file, const std::string& name, const json& v) {
    const std::string ctx = fmt::format("{}: tensor '{}'", file, printable(name));
    if (name.empty()) return errorf("{}: expected a non-empty tensor name, found \"\"", file);
    if (!v.is_object()) {
        return errorf("{}: expected an object with dtype, shape and data_offsets, found a JSON {}", ctx, json_type(v));
    }
    for (const auto& [k, _] : v.items()) {
        if (k != "dtype" && k != "shape" && k != "data_offsets") {
            return errorf("{}: unexpected key '{}' (expected only dtype, shape, data_offsets)", ctx, printable(k));
        }
    }
    for (const char* k : {"dtype", "shape", "data_offsets"}) {
        if (!v.contains(k)) return errorf("{}: missing key '{}' (expected dtype, shape and data_offsets)", ctx, k);
    }
    Entry e;
    e.info.name = name;
    e.info.file = file;

    const json& dt = v["dtype"];
    if (!dt.is_string()) return errorf("{}: dtype: expected a string, found a JSON {}", ctx, json_type(dt));
    e.info.dtype = dt.get<std::string>();
    if (safetensors_dtype_bits(e.info.dtype) == 0) {
        return errorf("{}: unknown dtype '{}' (expected one of {})", ctx, printable(e.info.dtype), known_dtypes_list());
    }

    const json& sh = v["shape"];
    if (!sh.is_array()) return errorf("{}: shape: expected an array, found a JSON {}", ctx, json_type(sh));
    e.info.shape.reserve(sh.size());
    for (size_t i = 0; i < sh.size(); ++i) {
        HR_ASSIGN(uint64_t d, json_nonneg_int(sh[i], fmt::format("{}: shape[{}]", ctx, i)));
        e.info.shape.push_back(static_cast<int64_t>(d));
    }
    HR_ASSIGN(e.info.nbytes, safetensors_nbytes(e.info.dtype, e.info.shape, ctx));

    const json& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2) {
        return errorf("{}: data_offsets: expected an array [begin, end], found {}", ctx,
                      off.is_array() ? fmt::format("an array of {} elements", off.size())
                                     : fmt::format("a JSON {}", json_type(off)));
    }
    HR_ASSIGN(e.begin, json_nonneg_int(off[0], ctx + ": data_offsets[0]"));
    HR_ASSIGN(e.end, json_nonneg_int(off[1], ctx + ": data_offsets[1]"));
    if (e.end < e.begin) {
        return errorf("{}: invalid data_offsets: expected end >= begin, found [{}, {}]", ctx, e.begin, e.end);
    }
    if (e.end - e.begin != e.info.nbytes) {
        return errorf("{}: data_offsets [{}, {}] span {} bytes, expected {} bytes for {} x {}", ctx, e.begin, e.end,
                      e.end - e.begin, e.info.nbytes, e.info.dtype, shape_str(e.info.shape));
    }
    return e;
}

}  // namespace

std::string printable_name(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (unsigned char c : s) {
        if (c < 0x20 || c == 0x7f) {
            out += fmt::format("\\x{:02x}", c);
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

int64_t TensorInfo::numel() const {
    // note: a prefix product may exceed int64 when a later dim is 0 ([2^32, 2^32-1, 0] passes the
    // u64 check at parse time), so zero is handled first; otherwise nbytes bounds the product.
    for (int64_t d : shape) {
        if (d == 0) return 0;
    }
    uint64_t n = 1;
    for (int64_t d : shape) n *= static_cast<uint64_t>(d);
    return static_cast<int64_t>(n);
}

uint32_t safetensors_dtype_bits(std::string_view dtype) {
    for (const auto& d : kDTypes) {
        if (d.name == dtype) return d.bits;
    }
    return 0;
}

Result<uint64_t> safetensors_nbytes(std::string_view dtype, std::span<const int64_t> shape, const std::string& what) {
    const uint32_t bits = safetensors_dtype_bits(dtype);
    if (bits == 0) {
        return errorf("{}: unknown dtype '{}' (expected one of {})", what, printable(dtype), known_dtypes_list());
    }
    uint64_t numel = 1;
    for (int64_t d : shape) {
        if (d < 0) return errorf("{}: expected non-negative dimensions, found shape {}", what, shape_str(shape));
        if (__builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel)) {
            return errorf("{}: shape {} has more elements than fit in 64 bits", what, shape_str(shape));
        }
    }
    uint64_t total_bits = 0;
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(bits), &total_bits)) {
        return errorf("{}: shape {} x {} ({} bits each) overflows a 64-bit byte count", what, shape_str(shape), dtype,
                      bits);
    }
    if (total_bits % 8 != 0) {
        return errorf("{}: shape {} x {} is {} bits, expected a whole number of bytes", what, shape_str(shape), dtype,
                      total_bits);
    }
    return total_bits / 8;
}

Result<DType> computable_dtype(const TensorInfo& t) {
    static constexpr std::pair<std::string_view, DType> kMap[] = {
        {"F32", DType::f32}, {"F16", DType::f16}, {"BF16", DType::bf16}, {"I32", DType::i32},
        {"I64", DType::i64}, {"U8", DType::u8},   {"I8", DType::i8},
    };
    for (const auto& [name, dt] : kMap) {
        if (t.dtype == name) return dt;
    }
    return errorf("{}: tensor '{}': dtype {} cannot be computed by headroom (expected one of F32, F16, BF16, I32, "
                  "I64, U8, I8; no silent conversion)",
                  t.file, printable(t.name), printable(t.dtype));
}

Result<json> parse_json_strict(std::string_view text, const std::string& what, int max_depth) {
    if (size_t bad = find_invalid_utf8(text); bad != std::string_view::npos) {
        return errorf("{}: expected UTF-8 text, found an invalid byte 0x{:02x} at offset {}", what,
                      static_cast<unsigned char>(text[bad]), bad);
    }
    // Depth and duplicate keys first, in one linear SAX pass; then a plain parse (no callback).
    const JsonCheck check = check_json_structure(text, max_depth);
    if (check.kind == JsonCheck::Kind::too_deep) {
        return errorf("{}: JSON nested deeper than {} levels (expected at most {})", what, max_depth, max_depth);
    }
    if (check.kind == JsonCheck::Kind::duplicate_key) {
        return errorf("{}: duplicate JSON key '{}' (expected each key once in an object)", what, printable(check.key));
    }
    try {
        return json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/true, /*ignore_comments=*/false);
    } catch (const json::exception& e) {
        return errorf("{}: expected valid JSON, found a syntax error: {}", what, e.what());
    } catch (const std::exception& e) {
        return errorf("{}: cannot parse JSON: {}", what, e.what());
    }
}

Result<std::shared_ptr<SafetensorsFile>> SafetensorsFile::open(const std::string& path) {
    HR_ASSIGN(auto mapping, MappedFile::open(path));
    HR_ASSIGN(auto file, parse(mapping->bytes(), path));
    file->mapping_ = std::move(mapping);
    return file;
}

Result<std::shared_ptr<SafetensorsFile>> SafetensorsFile::parse(std::span<const uint8_t> bytes, const std::string& name) {
    const uint64_t size = bytes.size();
    if (size < 8) {
        return errorf("{}: not a safetensors file: expected at least 8 bytes (the header length), found {} bytes",
                      name, size);
    }
    const uint64_t n = read_le64(bytes.data());
    if (n > kMaxHeaderBytes) {
        return errorf("{}: header length {} exceeds the limit of {} bytes (corrupt or not a safetensors file)", name, n,
                      kMaxHeaderBytes);
    }
    uint64_t header_end = 0;
    if (__builtin_add_overflow(uint64_t{8}, n, &header_end) || header_end > size) {
        return errorf("{}: file is incomplete: the header length says {} bytes of header, so at least {} bytes, but "
                      "the file has {} bytes",
                      name, n, uint64_t{8} + n, size);
    }
    std::string_view text(reinterpret_cast<const char*>(bytes.data()) + 8, n);
    if (text.empty() || text.front() != '{') {
        return errorf("{}: header: expected a JSON object starting with '{{', found {}", name,
                      text.empty() ? std::string("an empty header") : fmt::format("byte 0x{:02x}", uint8_t(text[0])));
    }
    // note: the spec allows trailing 0x20 padding only; any other trailing byte must be the '}'.
    size_t last = text.find_last_not_of(' ');
    if (text[last] != '}') {
        return errorf("{}: header: expected the JSON object to end with '}}' followed only by spaces (0x20), found "
                      "byte 0x{:02x} at offset {}",
                      name, uint8_t(text[last]), 8 + last);
    }
    // Depth 3: root object -> tensor object -> shape / data_offsets array.
    HR_ASSIGN(json root, parse_json_strict(text.substr(0, last + 1), name + ": header", 3));
    if (!root.is_object()) return errorf("{}: header: expected a JSON object, found a JSON {}", name, json_type(root));

    auto f = std::shared_ptr<SafetensorsFile>(new SafetensorsFile());
    f->path_ = name;
    f->header_bytes_ = n;
    std::vector<Entry> entries;
    entries.reserve(root.size());
    for (const auto& [key, value] : root.items()) {
        if (key == "__metadata__") {
            if (!value.is_object()) {
                return errorf("{}: __metadata__: expected an object of strings, found a JSON {}", name,
                              json_type(value));
            }
            for (const auto& [mk, mv] : value.items()) {
                if (!mv.is_string()) {
                    return errorf("{}: __metadata__ key '{}': expected a string value, found a JSON {}", name,
                                  printable(mk), json_type(mv));
                }
                f->metadata_.emplace(mk, mv.get<std::string>());
            }
            continue;
        }
        HR_ASSIGN(Entry e, parse_tensor_entry(name, key, value));
        entries.push_back(std::move(e));
    }

    // The tensors, sorted by offset, must tile the data section exactly: from 0, no gap, no
    // overlap, nothing after the last one (a polyglot or a bad writer), nothing missing (truncated).
    std::vector<const Entry*> by_offset;
    by_offset.reserve(entries.size());
    for (const auto& e : entries) by_offset.push_back(&e);
    std::sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
        if (a->begin != b->begin) return a->begin < b->begin;
        if (a->end != b->end) return a->end < b->end;
        return a->info.name < b->info.name;
    });
    const uint64_t data_size = size - header_end;
    uint64_t expected = 0;
    const Entry* prev = nullptr;
    for (const Entry* e : by_offset) {
        const std::string ctx = fmt::format("{}: tensor '{}'", name, printable(e->info.name));
        if (e->begin > expected) {
            return errorf("{}: invalid data_offsets: expected it to begin at byte {} ({}), found {} (a gap of {} "
                          "bytes that no tensor covers)",
                          ctx, expected,
                          prev ? fmt::format("where tensor '{}' ends", printable(prev->info.name))
                               : std::string("the start of the data section"),
                          e->begin, e->begin - expected);
        }
        if (e->begin < expected) {
            return errorf("{}: invalid data_offsets: expected it to begin at byte {} where tensor '{}' ends, found {} "
                          "(the tensors overlap)",
                          ctx, expected, prev ? printable(prev->info.name) : std::string(), e->begin);
        }
        if (e->end > data_size) {
            return errorf("{}: file is incomplete (truncated download?): data_offsets end at byte {} of the data "
                          "section, but the file holds only {} data bytes ({} bytes in all, {} expected)",
                          ctx, e->end, data_size, size, header_end + by_offset.back()->end);
        }
        expected = e->end;
        prev = e;
    }
    if (expected != data_size) {
        return errorf("{}: unexpected trailing bytes: expected the data section to end at byte {}{}, found {} more "
                      "bytes after it",
                      name, expected,
                      prev ? fmt::format(" where the last tensor '{}' ends", printable(prev->info.name))
                           : std::string(" (no tensors)"),
                      data_size - expected);
    }

    const uint8_t* data_base = bytes.data() + header_end;
    f->tensors_.reserve(entries.size());
    for (auto& e : entries) {
        e.info.data = data_base + e.begin;
        f->tensors_.push_back(std::move(e.info));
    }
    std::sort(f->tensors_.begin(), f->tensors_.end(),
              [](const TensorInfo& a, const TensorInfo& b) { return a.name < b.name; });
    return f;
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
    auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                               [](const TensorInfo& t, std::string_view n) { return t.name < n; });
    if (it == tensors_.end() || it->name != name) return nullptr;
    return &*it;
}

}  // namespace hr::io
