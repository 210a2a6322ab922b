// The true labels of a document set (headroom classify --manifest): JSONL, one object a line with
// "label" and either "file" (a path relative to the manifest's folder) or "id" (a JSONL input's id), and
// optionally "split" (e.g. "tune" / "heldout"). Looked up by a document's file (canonical path) or id.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "classify/batch_inputs.h"

namespace hr {

struct ManifestEntry {
    std::string name;   // "file" or "id" as written
    std::string label;
    std::string split;  // "" when not given
};

class Manifest {
public:
    static Result<Manifest> load(const std::string& path);
    // The entry for this document, or nullptr.
    const ManifestEntry* find(const BatchDocument& d) const;
    size_t size() const { return entries_.size(); }
    const std::string& path() const { return path_; }

private:
    std::string path_;
    std::vector<ManifestEntry> entries_;
    std::map<std::string, size_t> by_path_, by_id_;
};

}  // namespace hr
