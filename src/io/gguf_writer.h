// GGUF writer (version 3, or 2 on request) for tests and the fuzzer: metadata of every value type
// (arrays of scalars and of strings included), tensors of any ggml type given as raw bytes, data padded to
// `general.alignment` (default 32). With validate = false it writes what it is given (duplicate names,
// wrong byte counts) so that tests can make malformed files; `layout` tells where each field landed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "io/gguf.h"

namespace hr::io {

// One metadata entry: `type` is the GgufType to encode (for ARRAY: GgufType::ARRAY, the element type is
// GgufArray::elem_type). The value's variant must match: signed types take int64_t, unsigned uint64_t,
// F32/F64 double, BOOL bool, STRING std::string, ARRAY GgufArray; integers must fit their width.
struct GgufKV {
    std::string key;
    uint32_t type = 0;
    GgufValue value;
};

struct GgufTensorToWrite {
    std::string name;
    std::vector<int64_t> shape;  // outermost first ([rows, cols]); written innermost first
    uint32_t ggml_type = 0;      // GgmlType id
    const uint8_t* data = nullptr;
    uint64_t nbytes = 0;
};

struct GgufWriteOptions {
    uint32_t version = 3;
    bool validate = true;  // false: no checks of names, types or byte counts (malformed files for tests)
    // true: stop at the start of the data section (tensor bytes not copied; `data` may be null), for a
    // writer that streams tensors larger than memory to GgufLayout::tensor_data_at itself.
    bool header_only = false;
};

// Where things landed in the output (absolute byte offsets), for tests that patch a field.
struct GgufLayout {
    std::vector<uint64_t> key_at;           // each metadata entry's key length field
    std::vector<uint64_t> tensor_info_at;   // each tensor info's name length field
    std::vector<uint64_t> tensor_type_at;   // each tensor info's ggml type field
    std::vector<uint64_t> tensor_offset_at; // each tensor info's offset field
    uint64_t data_offset = 0;               // start of the data section
    std::vector<uint64_t> tensor_data_at;   // each tensor's first data byte (absolute, aligned)
    uint32_t alignment = 32;
};

Result<std::vector<uint8_t>> serialize_gguf(const std::vector<GgufKV>& kvs,
                                            const std::vector<GgufTensorToWrite>& tensors,
                                            const GgufWriteOptions& opts = {}, GgufLayout* layout = nullptr);
Status write_gguf(const std::string& path, const std::vector<GgufKV>& kvs,
                  const std::vector<GgufTensorToWrite>& tensors, const GgufWriteOptions& opts = {});

// Builders for the common cases.
GgufKV gguf_kv_u32(std::string key, uint32_t v);
GgufKV gguf_kv_i32(std::string key, int32_t v);
GgufKV gguf_kv_u64(std::string key, uint64_t v);
GgufKV gguf_kv_f32(std::string key, float v);
GgufKV gguf_kv_bool(std::string key, bool v);
GgufKV gguf_kv_str(std::string key, std::string v);
GgufKV gguf_kv_str_array(std::string key, std::vector<std::string> v);
GgufKV gguf_kv_i32_array(std::string key, std::vector<int64_t> v);
GgufKV gguf_kv_f32_array(std::string key, std::vector<double> v);

}  // namespace hr::io
