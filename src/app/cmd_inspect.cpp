// `headroom inspect FILE_OR_DIR [--json]`: the tensors of a checkpoint (name, dtype, shape, bytes),
// totals, safetensors metadata and, for a model directory with config.json, the parsed config.
// GGUF files (magic "GGUF") are listed by inspect_gguf.cpp.
// Exit 0 on success, 2 on bad input (message on stderr).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "inspect_gguf.h"
#include "io/tensor_store.h"
#include "memory/expert_hits.h"
#include "memory/units.h"
#include "model/config.h"

namespace hr::app {

namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

constexpr int kExitOk = 0;
constexpr int kExitBadInput = 2;

struct InspectArgs {
    std::string path;
    bool json = false;
    std::string weights;  // GGUF only: show the conversion error to this format
};

std::string shape_text(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

std::string file_label(const io::TensorInfo& t) { return fs::path(t.file).filename().string(); }

// Names and metadata come from file bytes: keep control characters out of the terminal.
std::string printable(std::string_view s) { return io::printable_name(s); }

ojson config_json(const ModelConfig& c) {
    ojson j;
    j["architecture"] = std::string(architecture_name(c.arch));
    j["vocab_size"] = c.vocab_size;
    j["dim"] = c.dim;
    j["ffn_dim"] = c.ffn_dim;
    j["n_layers"] = c.n_layers;
    j["n_heads"] = c.n_heads;
    j["n_kv_heads"] = c.n_kv_heads;
    j["head_dim"] = c.head_dim;
    j["n_experts"] = c.n_experts;
    j["n_experts_active"] = c.n_experts_active;
    if (c.is_moe()) {
        j["expert_ffn_dim"] = c.expert_ffn_dim();
        j["n_moe_layers"] = c.n_moe_layers();
        j["renormalize_topk"] = c.routing == MoeRouting::softmax_topk_renorm;
    }
    j["qkv_bias"] = c.qkv_bias;
    j["qk_norm"] = c.qk_norm;
    j["max_position_embeddings"] = c.max_position_embeddings;
    j["rope_theta"] = c.rope_theta;
    j["norm_eps"] = c.norm_eps;
    j["tie_word_embeddings"] = c.tie_word_embeddings;
    j["sliding_window"] = c.sliding_window;
    j["bos_token_id"] = c.bos_token_id;
    j["eos_token_id"] = c.eos_token_id;
    j["torch_dtype"] = std::string(dtype_name(c.torch_dtype));
    return j;
}

void print_json(const InspectArgs& a, const io::TensorStore& store, const std::optional<ModelConfig>& cfg) {
    ojson out;
    out["path"] = a.path;
    out["sharded"] = store.sharded();
    ojson files = ojson::array();
    for (const auto& f : store.files()) files.push_back({{"path", f->path()}, {"tensors", f->tensors().size()}});
    out["files"] = std::move(files);
    out["n_tensors"] = store.tensors().size();
    out["total_bytes"] = store.total_bytes();
    std::map<std::string, std::pair<uint64_t, uint64_t>> by_dtype;  // dtype -> (tensors, bytes)
    ojson tensors = ojson::array();
    for (const auto& t : store.tensors()) {
        tensors.push_back({{"name", t.name}, {"dtype", t.dtype}, {"shape", t.shape}, {"bytes", t.nbytes},
                           {"file", file_label(t)}});
        by_dtype[t.dtype].first += 1;
        by_dtype[t.dtype].second += t.nbytes;
    }
    ojson dtypes = ojson::object();
    for (const auto& [dt, v] : by_dtype) dtypes[dt] = {{"tensors", v.first}, {"bytes", v.second}};
    out["dtypes"] = std::move(dtypes);
    ojson meta = ojson::object();
    for (const auto& [k, v] : store.metadata()) meta[k] = v;
    out["metadata"] = std::move(meta);
    out["config"] = cfg ? config_json(*cfg) : ojson(nullptr);
    // Router statistics (`headroom quantize --calibrate`), checked against config.json: p(l, e) per layer.
    out["expert_hits"] = ojson(nullptr);
    if (cfg) {
        if (Result<std::shared_ptr<const ExpertHits>> h = expert_hits_of(store.metadata(), *cfg, a.path); h.ok() && *h) {
            ojson freq = ojson::array();
            for (int64_t l = 0; l < cfg->n_layers; ++l) {
                ojson row = ojson::array();
                for (int64_t e = 0; e < static_cast<int64_t>((*h)->layers[static_cast<size_t>(l)].size()); ++e)
                    row.push_back((*h)->frequency(l, e));
                freq.push_back(std::move(row));
            }
            out["expert_hits"] = {{"tokens", (*h)->tokens}, {"layers", (*h)->layers}, {"frequency", std::move(freq)}};
        }
    }
    out["tensors"] = std::move(tensors);
    // note: names and metadata were validated as UTF-8 by the reader, so dump() cannot throw here.
    fmt::print("{}\n", out.dump(2));
}

// The router statistics as selection frequencies per layer, and the coldest experts (those
// --offload-experts keeps in host memory first). Statistics that do not match config.json say why.
void print_expert_hits(const io::TensorStore& store, const ModelConfig& cfg, const std::string& path) {
    Result<std::shared_ptr<const ExpertHits>> r = expert_hits_of(store.metadata(), cfg, path);
    if (!r.ok()) {
        fmt::print("\nrouter statistics: unusable: {}\n", printable(r.error().message));
        return;
    }
    if (!*r) return;
    const ExpertHits& h = **r;
    fmt::print("\nrouter statistics ({}): {} calibration tokens; share of tokens selecting each expert "
               "(uniform routing: k/E = {:.3f})\n",
               kExpertHitsKey, h.tokens,
               static_cast<double>(cfg.n_experts_active) / static_cast<double>(std::max<int64_t>(cfg.n_experts, 1)));
    struct Cold {
        double p;
        int64_t l, e;
    };
    std::vector<Cold> all;
    for (int64_t l = 0; l < cfg.n_layers; ++l) {
        const auto& row = h.layers[static_cast<size_t>(l)];
        if (row.empty()) continue;
        std::string line;
        for (int64_t e = 0; e < static_cast<int64_t>(row.size()); ++e) {
            line += fmt::format(" {:.3f}", h.frequency(l, e));
            all.push_back({h.frequency(l, e), l, e});
        }
        fmt::print("  layer {:>3}:{}\n", l, line);
    }
    std::stable_sort(all.begin(), all.end(), [](const Cold& a, const Cold& b) { return a.p < b.p; });
    std::string cold;
    for (size_t i = 0; i < std::min<size_t>(all.size(), 8); ++i)
        cold += fmt::format("{}layer {} expert {} ({:.3f})", i ? ", " : "", all[i].l, all[i].e, all[i].p);
    fmt::print("  coldest: {}\n", cold);
}

void print_table(const InspectArgs& a, const io::TensorStore& store, const std::optional<ModelConfig>& cfg) {
    size_t w_name = 4, w_dtype = 5, w_shape = 5, w_bytes = 5;
    for (const auto& t : store.tensors()) {
        w_name = std::max(w_name, printable(t.name).size());
        w_dtype = std::max(w_dtype, t.dtype.size());
        w_shape = std::max(w_shape, shape_text(t.shape).size());
        w_bytes = std::max(w_bytes, fmt::format("{}", t.nbytes).size());
    }
    const bool show_file = store.sharded();
    fmt::print("{}: {} tensors in {} file{}\n\n", a.path, store.tensors().size(), store.files().size(),
               store.files().size() == 1 ? "" : "s");
    fmt::print("{:<{}}  {:<{}}  {:<{}}  {:>{}}{}\n", "name", w_name, "dtype", w_dtype, "shape", w_shape, "bytes",
               w_bytes, show_file ? "  file" : "");
    std::map<std::string, std::pair<uint64_t, uint64_t>> by_dtype;
    for (const auto& t : store.tensors()) {
        fmt::print("{:<{}}  {:<{}}  {:<{}}  {:>{}}{}\n", printable(t.name), w_name, t.dtype, w_dtype,
                   shape_text(t.shape), w_shape, t.nbytes, w_bytes, show_file ? "  " + file_label(t) : "");
        by_dtype[t.dtype].first += 1;
        by_dtype[t.dtype].second += t.nbytes;
    }
    fmt::print("\ntotal: {} tensors, {} bytes ({})\n", store.tensors().size(), store.total_bytes(),
               format_bytes(store.total_bytes()));
    for (const auto& [dt, v] : by_dtype) {
        fmt::print("  {:<{}}  {} tensors, {} bytes ({})\n", dt, w_dtype, v.first, v.second, format_bytes(v.second));
    }
    fmt::print("\nmetadata ({}):{}\n", fs::path(store.files().front()->path()).filename().string(),
               store.metadata().empty() ? " none" : "");
    for (const auto& [k, v] : store.metadata()) fmt::print("  {} = {}\n", printable(k), printable(v));
    if (cfg) print_expert_hits(store, *cfg, a.path);
    if (cfg) {
        fmt::print("\nconfig.json:\n");
        const ojson c = config_json(*cfg);
        for (const auto& [k, v] : c.items()) fmt::print("  {:<24} {}\n", k, v.dump());
    }
}

int run_inspect(const InspectArgs& a) {
    auto fail = [](const Error& e) {
        std::fprintf(stderr, "headroom inspect: error: %s\n", e.message.c_str());
        return kExitBadInput;
    };
    std::error_code gec;
    if (fs::is_regular_file(a.path, gec) && looks_like_gguf(a.path)) return inspect_gguf(a.path, a.json, a.weights);
    if (!a.weights.empty()) return fail(errorf("--weights: only a GGUF file shows a conversion error, found '{}'", a.path));
    Result<io::TensorStore> store = io::TensorStore::open(a.path);
    if (!store.ok()) return fail(store.error());
    std::optional<ModelConfig> cfg;
    std::error_code ec;
    const fs::path config_path = fs::path(a.path) / "config.json";
    if (fs::is_directory(a.path, ec) && fs::exists(config_path, ec)) {
        Result<ModelConfig> c = load_model_config(config_path.string());
        if (!c.ok()) return fail(c.error());
        cfg = *c;
    }
    if (a.json) {
        print_json(a, *store, cfg);
    } else {
        print_table(a, *store, cfg);
    }
    return kExitOk;
}

}  // namespace

void add_inspect_command(CLI::App& app, int& exit_code) {
    auto args = std::make_shared<InspectArgs>();
    CLI::App* cmd = app.add_subcommand(
        "inspect", "List the tensors of a safetensors or GGUF file or model directory (name, dtype, shape, bytes), "
                   "totals, metadata and config.json (exit 0, or 2 on bad input)");
    cmd->add_option("path", args->path, "a .safetensors or .gguf file, or a model directory (sharded or not)")
        ->required();
    cmd->add_flag("--json", args->json, "print as JSON");
    cmd->add_option("--weights", args->weights,
                    "GGUF file: also the relative L2 error of converting its weights to int8, int4, bf16, f16 or f32");
    cmd->callback([args, &exit_code] { exit_code = run_inspect(*args); });
}

}  // namespace hr::app
