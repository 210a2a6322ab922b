// TensorStore: every tensor of a model checkpoint, from one safetensors file or a sharded
// directory (model.safetensors.index.json), with the index cross-checked against the shards.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "io/safetensors.h"

namespace hr::io {

inline constexpr const char* kSingleFileName = "model.safetensors";
inline constexpr const char* kIndexFileName = "model.safetensors.index.json";

class TensorStore {
public:
    // `path` is a model directory (model.safetensors, or model.safetensors.index.json with its
    // shards; both present is ambiguous and rejected) or a single .safetensors file.
    static Result<TensorStore> open(const std::string& path);

    const TensorInfo* find(std::string_view name) const;
    const std::vector<TensorInfo>& tensors() const { return tensors_; }  // all shards, sorted by name
    const std::map<std::string, std::string>& metadata() const { return metadata_; }  // of the first/only file
    const std::vector<std::shared_ptr<SafetensorsFile>>& files() const { return files_; }  // sorted by path
    const std::string& path() const { return path_; }
    bool sharded() const { return sharded_; }
    uint64_t total_bytes() const;  // sum of tensor data bytes

private:
    std::string path_;
    bool sharded_ = false;
    // note: the files own the mappings that every TensorInfo::data points into.
    std::vector<std::shared_ptr<SafetensorsFile>> files_;
    std::vector<TensorInfo> tensors_;
    std::map<std::string, std::string> metadata_;
};

}  // namespace hr::io
