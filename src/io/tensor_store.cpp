// TensorStore: opens a single safetensors file or a sharded checkpoint and checks that the
// index (weight_map) and the shards agree tensor by tensor.
#include "io/tensor_store.h"

#include <algorithm>
#include <filesystem>
#include <set>
#include <system_error>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace hr::io {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The index is small (names and file names); anything near this size is not an index.
constexpr uint64_t kMaxIndexBytes = 100'000'000;

// A shard name from the index must name a file inside the model directory.
Status check_shard_name(const std::string& index_path, const std::string& tensor, const std::string& shard) {
    auto bad = [&](const char* why) {
        return errorf("{}: tensor '{}': shard '{}': expected a plain file name in the model directory, found {}",
                      index_path, printable_name(tensor), printable_name(shard), why);
    };
    if (shard.empty()) return bad("an empty name");
    if (shard.find('/') != std::string::npos || shard.find('\\') != std::string::npos) return bad("a path separator");
    if (shard.find("..") != std::string::npos) return bad("'..'");
    for (unsigned char c : shard) {
        if (c < 0x20) return bad("a control character");
    }
    return ok();
}

bool is_regular(const fs::path& p) {
    std::error_code ec;
    return fs::is_regular_file(p, ec);
}

Result<std::map<std::string, std::string>> read_weight_map(const std::string& index_path) {
    HR_ASSIGN(auto mapping, MappedFile::open(index_path));
    if (mapping->size() > kMaxIndexBytes) {
        return errorf("{}: expected an index of at most {} bytes, found {} bytes", index_path, kMaxIndexBytes,
                      mapping->size());
    }
    std::string_view text(reinterpret_cast<const char*>(mapping->data()), mapping->size());
    HR_ASSIGN(json root, parse_json_strict(text, index_path, 16));
    if (!root.is_object()) return errorf("{}: expected a JSON object, found a JSON {}", index_path, root.type_name());
    if (root.contains("metadata") && !root["metadata"].is_object() && !root["metadata"].is_null()) {
        return errorf("{}: metadata: expected an object, found a JSON {}", index_path, root["metadata"].type_name());
    }
    if (!root.contains("weight_map")) return errorf("{}: missing key 'weight_map' (expected tensor -> shard)", index_path);
    const json& wm = root["weight_map"];
    if (!wm.is_object()) return errorf("{}: weight_map: expected an object, found a JSON {}", index_path, wm.type_name());
    if (wm.empty()) return errorf("{}: weight_map: expected at least one tensor, found none", index_path);
    std::map<std::string, std::string> out;
    for (const auto& [tensor, shard] : wm.items()) {
        if (!shard.is_string()) {
            return errorf("{}: weight_map: tensor '{}': expected a shard file name (string), found a JSON {}",
                          index_path, printable_name(tensor), shard.type_name());
        }
        std::string s = shard.get<std::string>();
        HR_TRY(check_shard_name(index_path, tensor, s));
        out.emplace(tensor, std::move(s));
    }
    return out;
}

}  // namespace

uint64_t TensorStore::total_bytes() const {
    uint64_t total = 0;
    for (const auto& t : tensors_) total += t.nbytes;
    return total;
}

const TensorInfo* TensorStore::find(std::string_view name) const {
    auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                               [](const TensorInfo& t, std::string_view n) { return t.name < n; });
    if (it == tensors_.end() || it->name != name) return nullptr;
    return &*it;
}

Result<TensorStore> TensorStore::open(const std::string& path) {
    TensorStore store;
    store.path_ = path;
    std::error_code ec;
    const fs::path p(path);
    if (!fs::exists(p, ec)) return errorf("'{}': no such file or directory (expected a model directory or a .safetensors file)", path);

    if (!fs::is_directory(p, ec)) {
        HR_ASSIGN(auto file, SafetensorsFile::open(path));
        store.metadata_ = file->metadata();
        store.tensors_ = file->tensors();
        store.files_.push_back(std::move(file));
        return store;
    }

    const fs::path single = p / kSingleFileName;
    const fs::path index = p / kIndexFileName;
    const bool has_single = is_regular(single);
    const bool has_index = is_regular(index);
    if (has_single && has_index) {
        return errorf("'{}': found both {} and {}; expected one (remove the stale one)", path, kSingleFileName,
                      kIndexFileName);
    }
    if (has_single) {
        HR_ASSIGN(auto file, SafetensorsFile::open(single.string()));
        store.metadata_ = file->metadata();
        store.tensors_ = file->tensors();
        store.files_.push_back(std::move(file));
        return store;
    }
    if (!has_index) {
        return errorf("'{}': expected {} or {} in the model directory, found neither", path, kSingleFileName,
                      kIndexFileName);
    }

    // Sharded: the index and the shards must agree exactly, in both directions.
    store.sharded_ = true;
    const std::string index_path = index.string();
    HR_ASSIGN(auto weight_map, read_weight_map(index_path));
    std::set<std::string> shard_names;
    for (const auto& [tensor, shard] : weight_map) shard_names.insert(shard);

    std::map<std::string, std::string> found_in;  // tensor -> shard it was found in
    for (const auto& shard : shard_names) {
        const fs::path shard_path = p / shard;
        if (!is_regular(shard_path)) {
            // Name one tensor that needs it, so the message says what is lost.
            std::string needed_by;
            for (const auto& [tensor, s] : weight_map) {
                if (s == shard) {
                    needed_by = tensor;
                    break;
                }
            }
            return errorf("{}: tensor '{}': shard '{}' is missing (expected the file {})", index_path,
                          printable_name(needed_by), shard, shard_path.string());
        }
        HR_ASSIGN(auto file, SafetensorsFile::open(shard_path.string()));
        for (const auto& t : file->tensors()) {
            auto [it, inserted] = found_in.emplace(t.name, shard);
            if (!inserted) {
                return errorf("{}: tensor '{}' is present in two shards, '{}' and '{}' (expected exactly one)",
                              index_path, printable_name(t.name), it->second, shard);
            }
            auto w = weight_map.find(t.name);
            if (w == weight_map.end()) {
                return errorf("{}: tensor '{}' is in shard '{}' but the index does not list it (expected every "
                              "shard tensor in weight_map)",
                              index_path, printable_name(t.name), shard);
            }
            if (w->second != shard) {
                return errorf("{}: tensor '{}' is in shard '{}' but the index maps it to shard '{}'", index_path,
                              printable_name(t.name), shard, w->second);
            }
        }
        store.files_.push_back(std::move(file));
    }
    for (const auto& [tensor, shard] : weight_map) {
        if (!found_in.contains(tensor)) {
            return errorf("{}: tensor '{}': the index maps it to shard '{}', but that shard has no such tensor",
                          index_path, printable_name(tensor), shard);
        }
    }
    for (const auto& f : store.files_) {
        store.tensors_.insert(store.tensors_.end(), f->tensors().begin(), f->tensors().end());
    }
    std::sort(store.tensors_.begin(), store.tensors_.end(),
              [](const TensorInfo& a, const TensorInfo& b) { return a.name < b.name; });
    store.metadata_ = store.files_.front()->metadata();
    return store;
}

}  // namespace hr::io
