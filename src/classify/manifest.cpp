// Reading the true-label manifest and finding a document's entry (see manifest.h).
#include "classify/manifest.h"

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

namespace hr {

namespace fs = std::filesystem;

namespace {
std::string canonical_or_self(const fs::path& p) {
    std::error_code ec;
    fs::path c = fs::weakly_canonical(p, ec);
    return ec ? p.string() : c.string();
}
}  // namespace

Result<Manifest> Manifest::load(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return errorf("--manifest {}: cannot open it", path);
    Manifest m;
    m.path_ = path;
    const fs::path dir = fs::path(path).parent_path();
    std::string line;
    int64_t n = 0;
    while (std::getline(f, line)) {
        ++n;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        if (line.size() > 1 << 20) return errorf("{} line {}: longer than 1 MiB", path, n);
        nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
        const auto expected = [&] {
            return errorf("{} line {}: expected {{\"file\" or \"id\": ..., \"label\": ..., \"split\"?: ...}} (strings)",
                          path, n);
        };
        if (j.is_discarded() || !j.is_object()) return expected();
        auto label = j.find("label");
        auto file = j.find("file");
        auto id = j.find("id");
        if (label == j.end() || !label->is_string() || label->get<std::string>().empty()) return expected();
        if ((file == j.end()) == (id == j.end())) return expected();
        ManifestEntry e;
        e.label = label->get<std::string>();
        if (auto s = j.find("split"); s != j.end()) {
            if (!s->is_string()) return expected();
            e.split = s->get<std::string>();
        }
        const size_t idx = m.entries_.size();
        if (file != j.end()) {
            if (!file->is_string()) return expected();
            e.name = file->get<std::string>();
            if (!m.by_path_.emplace(canonical_or_self(dir / e.name), idx).second)
                return errorf("{} line {}: file '{}' is listed twice", path, n, e.name);
        } else {
            if (!(id->is_string() || id->is_number_integer())) return expected();
            e.name = id->is_string() ? id->get<std::string>() : id->dump();
            if (!m.by_id_.emplace(e.name, idx).second) return errorf("{} line {}: id '{}' is listed twice", path, n, e.name);
        }
        m.entries_.push_back(std::move(e));
    }
    if (m.entries_.empty()) return errorf("--manifest {}: no entries", path);
    return m;
}

const ManifestEntry* Manifest::find(const BatchDocument& d) const {
    if (!d.path.empty()) {
        if (auto it = by_path_.find(canonical_or_self(d.path)); it != by_path_.end()) return &entries_[it->second];
    }
    if (auto it = by_id_.find(d.id); it != by_id_.end()) return &entries_[it->second];
    return nullptr;
}

}  // namespace hr
