// Safetensors reader: a bounds-checked parser over the file bytes (pure, fuzzable) and a
// memory-mapped file wrapper. Every rule of the format is checked; nothing here aborts on input.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/dtype.h"
#include "core/mapped_file.h"
#include "core/status.h"

namespace hr::io {

// Limit from the safetensors reference implementation: a header larger than this is rejected
// before any of it is read.
inline constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// One tensor of a safetensors file. `data` points into the file's bytes (a mapping or the span
// given to parse()); it stays valid as long as the SafetensorsFile (or TensorStore) lives.
// note: `data` is not necessarily aligned (the format allows any header length; HF writers pad
// to 8), so read multi-byte elements with memcpy, not by casting the pointer.
struct TensorInfo {
    std::string name;
    std::string dtype;            // as in the header, e.g. "BF16"
    std::vector<int64_t> shape;   // empty for a 0-rank scalar
    const uint8_t* data = nullptr;
    uint64_t nbytes = 0;
    std::string file;             // path (or name given to parse()) it came from

    int64_t numel() const;
};

// Bits per element of a safetensors dtype string, or 0 when the string is not a dtype of the
// current spec. Sub-byte dtypes (F4, F6_*) return 4 or 6.
uint32_t safetensors_dtype_bits(std::string_view dtype);

// The bytes that `numel` elements of `dtype` occupy: an error when the dtype is unknown, the
// product overflows u64, or sub-byte elements do not fill whole bytes. `what` prefixes messages.
Result<uint64_t> safetensors_nbytes(std::string_view dtype, std::span<const int64_t> shape, const std::string& what);

// The headroom dtype a tensor can be computed in: F32/F16/BF16/I32/I64/U8/I8. Anything else
// (F64, F8_*, BOOL, U16, C64, ...) is an error naming the tensor; never a silent cast.
Result<DType> computable_dtype(const TensorInfo& t);

class SafetensorsFile {
public:
    // Maps `path` read-only and parses it; the mapping lives as long as the returned object.
    static Result<std::shared_ptr<SafetensorsFile>> open(const std::string& path);
    // Parses bytes owned by the caller (no mmap, no copy): for tests and the fuzzer. The bytes
    // must outlive the returned object. `name` stands for the file in messages and TensorInfo::file.
    static Result<std::shared_ptr<SafetensorsFile>> parse(std::span<const uint8_t> bytes, const std::string& name);

    const std::vector<TensorInfo>& tensors() const { return tensors_; }  // sorted by name
    const TensorInfo* find(std::string_view name) const;
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    const std::string& path() const { return path_; }
    uint64_t header_bytes() const { return header_bytes_; }  // N, the JSON header length

private:
    SafetensorsFile() = default;
    std::shared_ptr<MappedFile> mapping_;  // null for parse()
    std::string path_;
    uint64_t header_bytes_ = 0;
    std::vector<TensorInfo> tensors_;
    std::map<std::string, std::string> metadata_;
};

// A name from file bytes made safe for messages and terminals: control bytes become \xNN.
std::string printable_name(std::string_view s);

// Parses JSON text, rejecting invalid UTF-8, duplicate keys in any object (nlohmann keeps the
// last one silently) and nesting deeper than `max_depth`. `what` names the source in messages.
// note: shared with the sharded-index reader (tensor_store.cpp).
Result<nlohmann::json> parse_json_strict(std::string_view text, const std::string& what, int max_depth);

}  // namespace hr::io
