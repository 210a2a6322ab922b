// `headroom inspect FILE.gguf [--json]`: GGUF version, metadata (long arrays summarized as type, length and
// the first values; long strings such as the chat template truncated), tensors (name, ggml type, shape,
// bytes) and the total bytes per type. Called by cmd_inspect.cpp for files that start with "GGUF".
#include "inspect_gguf.h"
#include "inspect_gguf_model.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "io/gguf.h"
#include "memory/units.h"

namespace hr::app {

namespace {

using ojson = nlohmann::ordered_json;

constexpr size_t kMaxStringShown = 96;  // characters of a string value shown in the table
constexpr size_t kArrayValuesShown = 5;

// Control characters escaped (names and values come from file bytes), cut to `max` bytes.
std::string shown(std::string_view s, size_t max) {
    std::string out;
    for (size_t i = 0; i < s.size() && out.size() < max; ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c == '\n') {
            out += "\\n";
        } else if (c < 0x20 || c == 0x7f) {
            out += fmt::format("\\x{:02x}", c);
        } else {
            out += static_cast<char>(c);
        }
    }
    if (out.size() >= max && s.size() > max) {
        // note: do not end inside a UTF-8 sequence.
        while (!out.empty() && (static_cast<unsigned char>(out.back()) & 0xc0) == 0x80) out.pop_back();
        if (!out.empty() && static_cast<unsigned char>(out.back()) >= 0xc0) out.pop_back();
        out += "...";
    }
    return out;
}

std::string float_text(double d, uint32_t type) {
    if (type == uint32_t(io::GgufType::F32)) return fmt::format("{}", static_cast<float>(d));
    return fmt::format("{}", d);
}

std::string scalar_text(const io::GgufValue& v, uint32_t type) {
    if (const auto* x = std::get_if<int64_t>(&v)) return fmt::format("{}", *x);
    if (const auto* x = std::get_if<uint64_t>(&v)) return fmt::format("{}", *x);
    if (const auto* x = std::get_if<double>(&v)) return float_text(*x, type);
    if (const auto* x = std::get_if<bool>(&v)) return *x ? "true" : "false";
    if (const auto* x = std::get_if<std::string>(&v)) {
        std::string s = "\"" + shown(*x, kMaxStringShown) + "\"";
        if (x->size() > kMaxStringShown) s += fmt::format(" ({} bytes)", x->size());
        return s;
    }
    return "?";
}

std::string array_text(const io::GgufArray& a) {
    std::string out = fmt::format("[{} x {}]", io::gguf_type_name(a.elem_type), a.size());
    std::vector<std::string> first;
    std::visit(
        [&](const auto& vec) {
            for (size_t i = 0; i < vec.size() && i < kArrayValuesShown; ++i) {
                using E = std::decay_t<decltype(vec[i])>;
                if constexpr (std::is_same_v<E, std::string>) {
                    first.push_back("\"" + shown(vec[i], 32) + "\"");
                } else if constexpr (std::is_same_v<E, double>) {
                    first.push_back(float_text(vec[i], a.elem_type));
                } else if constexpr (std::is_same_v<E, bool> || std::is_same_v<E, std::vector<bool>::const_reference>) {
                    first.push_back(vec[i] ? "true" : "false");
                } else {
                    first.push_back(fmt::format("{}", vec[i]));
                }
            }
        },
        a.values);
    if (!first.empty()) out += fmt::format(" {}{}", fmt::join(first, ", "), a.size() > first.size() ? ", ..." : "");
    return out;
}

std::string value_text(const io::GgufFile& f, const std::string& key) {
    const io::GgufValue& v = f.metadata().find(key)->second;
    if (const auto* a = std::get_if<io::GgufArray>(&v)) return array_text(*a);
    return scalar_text(v, *f.value_type(key));
}

std::string type_label(const io::GgufTensor& t) {
    return std::string(io::ggml_type_name(t.ggml_type));
}

std::string shape_text(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

// JSON value of a metadata entry: scalars in full; arrays as type, length and the first values; strings
// as they are (JSON output is for tools, which may want the whole chat template).
ojson value_json(const io::GgufFile& f, const std::string& key) {
    const io::GgufValue& v = f.metadata().find(key)->second;
    const uint32_t type = *f.value_type(key);
    ojson j;
    j["type"] = std::string(io::gguf_type_name(type));
    if (const auto* a = std::get_if<io::GgufArray>(&v)) {
        j["element_type"] = std::string(io::gguf_type_name(a->elem_type));
        j["length"] = a->size();
        ojson first = ojson::array();
        std::visit(
            [&](const auto& vec) {
                for (size_t i = 0; i < vec.size() && i < kArrayValuesShown; ++i) {
                    using E = std::decay_t<decltype(vec[i])>;
                    if constexpr (std::is_same_v<E, std::string>) {
                        first.push_back(shown(vec[i], 256));
                    } else if constexpr (std::is_same_v<E, std::vector<bool>::const_reference>) {
                        first.push_back(static_cast<bool>(vec[i]));
                    } else {
                        first.push_back(vec[i]);
                    }
                }
            },
            a->values);
        j["first"] = std::move(first);
        return j;
    }
    std::visit(
        [&](const auto& x) {
            using E = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<E, std::string>) {
                // note: strings are not validated as UTF-8 by the reader; escape what JSON cannot carry.
                j["value"] = shown(x, x.size());
            } else if constexpr (std::is_same_v<E, double>) {
                // An f32 as its shortest decimal (1e-05, not 9.999999747378752e-06).
                const std::string f32 = fmt::format("{}", static_cast<float>(x));
                j["value"] = type == uint32_t(io::GgufType::F32) ? std::strtod(f32.c_str(), nullptr) : x;
            } else if constexpr (!std::is_same_v<E, io::GgufArray>) {
                j["value"] = x;
            }
        },
        v);
    return j;
}

}  // namespace

bool looks_like_gguf(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    char magic[4] = {};
    return in.read(magic, 4) && std::memcmp(magic, "GGUF", 4) == 0;
}

int inspect_gguf(const std::string& path, bool json, const std::string& weights) {
    auto r = io::GgufFile::open(path);
    if (!r.ok()) {
        std::fprintf(stderr, "headroom inspect: error: %s\n", r.error().message.c_str());
        return 2;
    }
    // The model view (config, HF names, --weights conversion error): inspect_gguf_model.h.
    auto model = gguf_model_section(path, weights);
    if (!model.ok()) {
        std::fprintf(stderr, "headroom inspect: error: %s\n", model.error().message.c_str());
        return 2;
    }
    const io::GgufFile& f = **r;
    std::map<std::string, std::pair<uint64_t, uint64_t>> by_type;  // ggml type -> (tensors, bytes)
    uint64_t total = 0;
    for (const auto& t : f.tensors()) {
        by_type[type_label(t)].first += 1;
        by_type[type_label(t)].second += t.nbytes;
        total += t.nbytes;
    }
    if (json) {
        ojson out;
        out["path"] = path;
        out["format"] = "gguf";
        out["version"] = f.version();
        out["alignment"] = f.alignment();
        out["n_tensors"] = f.tensors().size();
        out["total_bytes"] = total;
        ojson types = ojson::object();
        for (const auto& [ty, v] : by_type) types[ty] = {{"tensors", v.first}, {"bytes", v.second}};
        out["types"] = std::move(types);
        ojson meta = ojson::object();
        for (const auto& k : f.keys()) meta[shown(k, k.size())] = value_json(f, k);
        out["metadata"] = std::move(meta);
        ojson tensors = ojson::array();
        for (const auto& t : f.tensors()) {
            tensors.push_back({{"name", shown(t.name, t.name.size())},
                               {"type", type_label(t)},
                               {"supported", t.supported},
                               {"shape", t.shape},
                               {"bytes", t.nbytes},
                               {"offset", t.offset}});
        }
        out["tensors"] = std::move(tensors);
        out["model"] = std::move(*model);
        fmt::print("{}\n", out.dump(2, ' ', false, ojson::error_handler_t::replace));
        return 0;
    }

    fmt::print("{}: GGUF version {}, {} metadata keys, {} tensors, alignment {}\n", path, f.version(),
               f.keys().size(), f.tensors().size(), f.alignment());
    size_t w_key = 3;
    for (const auto& k : f.keys()) w_key = std::max(w_key, shown(k, 80).size());
    fmt::print("\nmetadata:\n");
    for (const auto& k : f.keys()) {
        fmt::print("  {:<{}}  {:<6}  {}\n", shown(k, 80), w_key, io::gguf_type_name(*f.value_type(k)),
                   value_text(f, k));
    }
    size_t w_name = 4, w_type = 4, w_shape = 5, w_bytes = 5;
    for (const auto& t : f.tensors()) {
        w_name = std::max(w_name, shown(t.name, 80).size());
        w_type = std::max(w_type, type_label(t).size());
        w_shape = std::max(w_shape, shape_text(t.shape).size());
        w_bytes = std::max(w_bytes, fmt::format("{}", t.nbytes).size());
    }
    fmt::print("\n{:<{}}  {:<{}}  {:<{}}  {:>{}}\n", "name", w_name, "type", w_type, "shape", w_shape, "bytes",
               w_bytes);
    for (const auto& t : f.tensors()) {
        fmt::print("{:<{}}  {:<{}}  {:<{}}  {:>{}}{}\n", shown(t.name, 80), w_name, type_label(t), w_type,
                   shape_text(t.shape), w_shape, t.nbytes, w_bytes,
                   t.supported ? "" : "  (type not supported by headroom)");
    }
    fmt::print("\ntotal: {} tensors, {} bytes ({})\n", f.tensors().size(), total, format_bytes(total));
    for (const auto& [ty, v] : by_type) {
        fmt::print("  {:<{}}  {} tensors, {} bytes ({})\n", ty, w_type, v.first, v.second, format_bytes(v.second));
    }
    print_gguf_model_section(*model);
    return 0;
}

}  // namespace hr::app
