// GGUF reader (llama.cpp's single-file model format, versions 2 and 3): a bounds-checked parser over the
// file bytes (pure, fuzzable) and a memory-mapped file wrapper. Every length, count, offset and type is
// checked; an error names the key or tensor and the byte offset. Nothing here aborts on input.
//
// File layout: magic "GGUF", u32 version, u64 tensor_count, u64 kv_count, kv_count key/values
// (string key, u32 type, value), tensor_count tensor infos (string name, u32 n_dims, u64 dims[n_dims]
// innermost first, u32 ggml type, u64 offset relative to the data section), padding to
// `general.alignment` (default 32), then the data section.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/dtype.h"
#include "core/mapped_file.h"
#include "core/status.h"

namespace hr::io {

// ggml tensor type ids as stored in GGUF (ggml.h's enum ggml_type).
enum class GgmlType : uint32_t {
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
    I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, BF16 = 30,
};
std::string_view ggml_type_name(uint32_t type);  // "Q4_K", or "unknown" for an id ggml does not define

// Block geometry of every type ggml defines (also those headroom cannot compute, so that such a file can
// still be listed): elements per block and bytes per block; nullopt for an unknown id.
struct GgmlTypeSize {
    int64_t block_elems = 0;
    int64_t block_bytes = 0;
};
std::optional<GgmlTypeSize> ggml_type_size(uint32_t type);

// GGUF metadata value types as stored in the file (gguf.h's enum gguf_type).
enum class GgufType : uint32_t {
    U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7, STRING = 8, ARRAY = 9,
    U64 = 10, I64 = 11, F64 = 12,
};
std::string_view gguf_type_name(uint32_t type);  // "u32", "string", "array", or "unknown"
// Bytes of one encoded scalar value (a string: its 8-byte length prefix); 0 for an array or unknown type.
uint64_t gguf_scalar_bytes(uint32_t type);
bool gguf_is_signed_int(uint32_t type);    // I8, I16, I32, I64
bool gguf_is_unsigned_int(uint32_t type);  // U8, U16, U32, U64

// The headroom dtype that holds a ggml type exactly (F32/F16/BF16 and the gg_* block dtypes), or an
// error naming the type for one headroom cannot hold (Q2_K, Q3_K, IQ*, ...).
Result<DType> dtype_for_ggml(uint32_t type, const std::string& tensor_name);

// One metadata value. Arrays keep their element type; an array of strings is a vector<string>.
struct GgufArray {
    uint32_t elem_type = 0;  // GGUF value type of the elements
    std::variant<std::vector<int64_t>, std::vector<uint64_t>, std::vector<double>, std::vector<std::string>,
                 std::vector<bool>>
        values;
    size_t size() const;
    bool operator==(const GgufArray&) const = default;
};
using GgufValue = std::variant<int64_t, uint64_t, double, bool, std::string, GgufArray>;

struct GgufTensor {
    std::string name;
    std::vector<int64_t> shape;   // outermost first, as headroom and safetensors write it: [rows, cols]
    uint32_t ggml_type = 0;
    // dtype_for_ggml(ggml_type) when `supported`; a type ggml defines but headroom cannot compute (Q2_K,
    // IQ*, ...) parses (so `inspect` can list it) with supported = false and dtype u8 (raw bytes):
    // loaders call dtype_for_ggml(t.ggml_type, t.name) to get the error naming the tensor and type.
    DType dtype = DType::f32;
    bool supported = true;
    const uint8_t* data = nullptr;  // inside the file's bytes
    uint64_t nbytes = 0;
    uint64_t offset = 0;          // absolute offset in the file
};

class GgufFile {
public:
    static Result<std::shared_ptr<GgufFile>> open(const std::string& path);  // memory-mapped
    // Parses caller-owned bytes (tests, fuzzer); they must outlive the result. `name` stands for the file.
    static Result<std::shared_ptr<GgufFile>> parse(std::span<const uint8_t> bytes, const std::string& name);

    uint32_t version() const { return version_; }
    const std::string& path() const { return path_; }
    const std::vector<GgufTensor>& tensors() const { return tensors_; }  // in file order
    const GgufTensor* find(std::string_view name) const;
    const std::map<std::string, GgufValue, std::less<>>& metadata() const { return kv_; }
    const std::vector<std::string>& keys() const { return key_order_; }  // metadata keys in file order
    // The stored GGUF value type of `key` (GgufType; an array's element type is in GgufArray::elem_type),
    // or nullopt when absent. Needed to re-encode a value with its original width.
    std::optional<uint32_t> value_type(std::string_view key) const;
    uint32_t alignment() const { return alignment_; }
    uint64_t data_offset() const { return data_offset_; }  // absolute offset of the data section

    // Typed metadata look-ups: nullopt when the key is absent, an error when it has another type.
    // Integers of any width and signedness convert when the value fits.
    Result<std::optional<int64_t>> get_int(std::string_view key) const;
    Result<std::optional<double>> get_float(std::string_view key) const;  // also accepts integers
    Result<std::optional<bool>> get_bool(std::string_view key) const;
    Result<std::optional<std::string>> get_string(std::string_view key) const;
    const GgufArray* get_array(std::string_view key) const;  // null when absent or not an array

private:
    GgufFile() = default;
    std::shared_ptr<MappedFile> mapping_;
    std::string path_;
    uint32_t version_ = 0;
    std::vector<GgufTensor> tensors_;
    std::map<std::string, size_t, std::less<>> index_;  // name -> position in tensors_
    std::map<std::string, GgufValue, std::less<>> kv_;
    std::map<std::string, uint32_t, std::less<>> kv_type_;
    std::vector<std::string> key_order_;
    uint32_t alignment_ = 32;
    uint64_t data_offset_ = 0;
};

// Undoes llama.cpp's convert_hf_to_gguf permutation of the Q and K projection rows (it reorders each
// head's rows from HF's rotate_half pairing to the interleaved pairing ggml's rope uses). `rows` x `cols`
// f32 matrix in place; n_head is the head count of that projection (n_kv_heads for K).
// Within each head of head_dim = rows / n_head rows, GGUF row 2*i + p holds HF row p * head_dim/2 + i.
// An error (nothing changed) unless rows is a positive multiple of 2 * n_head.
Status unpermute_qk_rows(float* w, int64_t rows, int64_t cols, int64_t n_head);
// The same row permutation on rows of `row_bytes` bytes each: rows of a ggml block type are independent
// (cols / QK whole blocks each), so the blocks of a quantized Q/K weight can be reordered exactly.
Status unpermute_qk_row_bytes(void* rows_data, int64_t rows, int64_t row_bytes, int64_t n_head);

}  // namespace hr::io
