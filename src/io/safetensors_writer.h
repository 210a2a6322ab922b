// Safetensors writer: validated header encoding, in-memory serialization (tests, fuzzer
// round-trips) and an atomic file write (temporary file + fsync + rename).
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace hr::io {

struct TensorToWrite {
    std::string name;
    std::string dtype;           // a safetensors dtype string, e.g. "BF16"
    std::vector<int64_t> shape;  // empty for a 0-rank scalar
    const void* data = nullptr;  // nbytes bytes, may be null when nbytes == 0
    uint64_t nbytes = 0;
};

// The 8-byte length prefix plus the JSON header, padded with spaces so that the data section
// starts at a multiple of 8. Tensors are laid out contiguously in the order given. Rejects
// empty/duplicate/reserved names, unknown dtypes, negative dims, and nbytes != shape x dtype.
Result<std::string> encode_safetensors_header(std::span<const TensorToWrite> tensors,
                                              const std::map<std::string, std::string>& metadata);

// The whole file in memory (header + data).
Result<std::vector<uint8_t>> serialize_safetensors(std::span<const TensorToWrite> tensors,
                                                   const std::map<std::string, std::string>& metadata);

// Writes `path` atomically: a temporary file in the same directory, fsync, then rename over
// `path`; on any failure the temporary file is removed and `path` is left untouched.
Status write_safetensors(const std::string& path, std::span<const TensorToWrite> tensors,
                         const std::map<std::string, std::string>& metadata);

}  // namespace hr::io
