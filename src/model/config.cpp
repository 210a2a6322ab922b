// config.json -> ModelConfig: the architecture's unit is found by architectures[0] (or model_type),
// the shared keys are read (model/arch/common.cpp), then the unit reads its own.
#include "model/config.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "model/arch/common.h"
#include "model/arch/registry.h"

namespace hr {

using json = nlohmann::json;

bool ModelConfig::layer_is_moe(int64_t l) const {
    if (n_experts <= 0 || decoder_sparse_step <= 0) return false;
    if (std::find(mlp_only_layers.begin(), mlp_only_layers.end(), l) != mlp_only_layers.end()) return false;
    return (l + 1) % decoder_sparse_step == 0;
}

int64_t ModelConfig::n_moe_layers() const {
    int64_t n = 0;
    for (int64_t l = 0; l < n_layers; ++l) n += layer_is_moe(l) ? 1 : 0;
    return n;
}

int64_t ModelConfig::max_ffn_dim() const {
    int64_t m = has_dense_layers() ? ffn_dim : 0;
    if (is_moe()) m = std::max(m, expert_ffn_dim());
    return m;
}

LayerDesc ModelConfig::layer(int64_t l) const {
    LayerDesc d;
    d.qkv_bias = qkv_bias;
    d.qk_norm = qk_norm;
    d.ffn = layer_is_moe(l) ? FfnKind::moe : FfnKind::dense;
    return d;
}

Result<ModelConfig> parse_model_config(const std::string& text, const std::string& src) {
    json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return errorf("{}: not valid JSON", src);
    if (!j.is_object()) return errorf("{}: expected a JSON object, found {}", src, j.type_name());

    // Architecture: from "architectures" (first entry), else model_type.
    const ArchUnit* unit = nullptr;
    if (auto it = j.find("architectures"); it != j.end() && !it->is_null()) {
        if (!it->is_array() || it->empty() || !(*it)[0].is_string())
            return errorf("{}: field 'architectures' must be a non-empty array of strings, found {}", src, it->dump());
        const std::string name = (*it)[0].get<std::string>();
        unit = find_arch_by_hf_class(name);
        if (!unit)
            return errorf("{}: unsupported architecture '{}' (supported: {})", src, name, supported_architectures());
    } else if (auto mt = j.find("model_type"); mt != j.end() && mt->is_string()) {
        const std::string name = mt->get<std::string>();
        unit = find_arch_by_model_type(name);
        if (!unit)
            return errorf("{}: unsupported architecture '{}' (supported: {})", src, name, supported_architectures());
    } else {
        return errorf("{}: missing 'architectures' (expected one of {})", src, supported_architectures());
    }

    ModelConfig c;
    c.arch = unit->arch;
    HR_TRY(arch::parse_common(j, src, c));
    HR_TRY(unit->parse_config(j, src, c));
    return c;
}

Result<ModelConfig> load_model_config(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return errorf("cannot open config '{}'", path);
    std::stringstream ss;
    ss << f.rdbuf();
    return parse_model_config(ss.str(), path);
}

Status check_context(const ModelConfig& cfg, int64_t context) {
    if (context <= 0) return errorf("context must be a positive number of tokens, found {}", context);
    if (context > cfg.max_position_embeddings)
        return errorf("context {} exceeds the model's max_position_embeddings {}", context, cfg.max_position_embeddings);
    if (cfg.sliding_window > 0 && cfg.sliding_window < context)
        return errorf("context {} exceeds the model's sliding_window {}; sliding-window attention is not implemented yet "
                      "(use a context of at most {})", context, cfg.sliding_window, cfg.sliding_window);
    return ok();
}

}  // namespace hr
