// The built-in config table and the --model resolver.
#include "model/builtin_models.h"

#include <cctype>
#include <filesystem>
#include <vector>

#include "model/gguf_config.h"

namespace hr {

namespace {

struct Dims {
    Architecture arch;
    int64_t vocab, dim, ffn, layers, heads, kv_heads, experts, active, max_pos;
    double rope_theta;
    int64_t bos, eos;
    DType dtype = DType::bf16;  // torch_dtype of the published checkpoint
};

ModelConfig make(const Dims& d) {
    ModelConfig c;
    c.arch = d.arch;
    c.vocab_size = d.vocab;
    c.dim = d.dim;
    c.ffn_dim = d.ffn;
    c.n_layers = d.layers;
    c.n_heads = d.heads;
    c.n_kv_heads = d.kv_heads;
    c.head_dim = d.dim / d.heads;
    c.n_experts = d.experts;
    c.n_experts_active = d.active;
    c.max_position_embeddings = d.max_pos;
    c.rope_theta = d.rope_theta;
    c.norm_eps = 1e-5;
    c.tie_word_embeddings = false;
    c.sliding_window = 0;
    c.bos_token_id = d.bos;
    c.eos_token_id = d.eos;
    c.torch_dtype = d.dtype;
    return c;
}

using A = Architecture;
// note: mistral-7b is v0.3 (32768 tokens, no sliding window); v0.1's 4096-token sliding window is not
// implemented.
const std::vector<BuiltinModel>& table() {
    static const std::vector<BuiltinModel> t = {
        {"mixtral-8x7b", "mistralai/Mixtral-8x7B-Instruct-v0.1",
         make({A::mixtral, 32000, 4096, 14336, 32, 32, 8, 8, 2, 32768, 1e6, 1, 2})},
        {"mixtral-8x22b", "mistralai/Mixtral-8x22B-Instruct-v0.1",
         make({A::mixtral, 32768, 6144, 16384, 56, 48, 8, 8, 2, 65536, 1e6, 1, 2})},
        {"mistral-7b", "mistralai/Mistral-7B-Instruct-v0.3",
         make({A::mistral, 32768, 4096, 14336, 32, 32, 8, 0, 0, 32768, 1e6, 1, 2})},
        {"llama-2-7b", "meta-llama/Llama-2-7b-hf", make({A::llama, 32000, 4096, 11008, 32, 32, 32, 0, 0, 4096, 1e4, 1, 2, DType::f16})},
        {"llama-2-13b", "meta-llama/Llama-2-13b-hf", make({A::llama, 32000, 5120, 13824, 40, 40, 40, 0, 0, 4096, 1e4, 1, 2, DType::f16})},
        {"llama-2-70b", "meta-llama/Llama-2-70b-hf", make({A::llama, 32000, 8192, 28672, 80, 64, 8, 0, 0, 4096, 1e4, 1, 2, DType::f16})},
        {"llama-3-8b", "meta-llama/Meta-Llama-3-8B",
         make({A::llama, 128256, 4096, 14336, 32, 32, 8, 0, 0, 8192, 5e5, 128000, 128001})},
        {"llama-3-70b", "meta-llama/Meta-Llama-3-70B",
         make({A::llama, 128256, 8192, 28672, 80, 64, 8, 0, 0, 8192, 5e5, 128000, 128001})},
    };
    return t;
}

bool iequal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
            return false;
    }
    return true;
}

}  // namespace

std::span<const BuiltinModel> builtin_models() { return table(); }

const BuiltinModel* find_builtin_model(std::string_view name) {
    for (const BuiltinModel& m : table()) {
        if (iequal(m.name, name)) return &m;
    }
    return nullptr;
}

Result<ModelConfig> resolve_model_config(const std::string& spec) {
    if (spec.empty()) return errorf("--model: expected a built-in name, a config.json or a model directory, found ''");
    std::error_code ec;
    const std::filesystem::path p(spec);
    if (std::filesystem::is_directory(p, ec)) {
        const std::filesystem::path cfg = p / "config.json";
        if (!std::filesystem::is_regular_file(cfg, ec))
            return errorf("--model: directory '{}' has no config.json", spec);
        return load_model_config(cfg.string());
    }
    if (std::filesystem::is_regular_file(p, ec)) {
        if (is_gguf_file(spec)) return load_gguf_model_config(spec);  // GGUF hook (model/gguf_config.h)
        return load_model_config(spec);
    }
    if (const BuiltinModel* m = find_builtin_model(spec)) return m->config;
    std::string names;
    for (const BuiltinModel& m : table()) names += fmt::format("{}{}", names.empty() ? "" : ", ", m.name);
    return errorf("--model: '{}' is neither a file, a directory nor a built-in model ({})", spec, names);
}

}  // namespace hr
