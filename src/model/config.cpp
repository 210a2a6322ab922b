// Parsing and validation of Hugging Face config.json into ModelConfig.
#include "model/config.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

namespace hr {

using json = nlohmann::json;

std::string_view architecture_name(Architecture a) {
    switch (a) {
        case Architecture::llama: return "LlamaForCausalLM";
        case Architecture::mistral: return "MistralForCausalLM";
        case Architecture::mixtral: return "MixtralForCausalLM";
    }
    return "?";
}

namespace {

constexpr const char* kSupported = "LlamaForCausalLM, MistralForCausalLM, MixtralForCausalLM";

const char* json_type_name(const json& v) { return v.type_name(); }

// Reads an integer field; `required` decides whether absence is an error.
Status get_int(const json& j, const char* key, const std::string& src, int64_t& out, bool required) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
        if (required) return errorf("{}: missing required field '{}' (expected an integer)", src, key);
        return ok();
    }
    if (!it->is_number_integer()) {
        return errorf("{}: field '{}' must be an integer, found {} ({})", src, key, json_type_name(*it), it->dump());
    }
    out = it->get<int64_t>();
    return ok();
}

Status get_float(const json& j, const char* key, const std::string& src, double& out, bool required) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
        if (required) return errorf("{}: missing required field '{}' (expected a number)", src, key);
        return ok();
    }
    if (!it->is_number()) {
        return errorf("{}: field '{}' must be a number, found {} ({})", src, key, json_type_name(*it), it->dump());
    }
    out = it->get<double>();
    return ok();
}

Status positive(const std::string& src, const char* key, int64_t v) {
    if (v <= 0) return errorf("{}: field '{}' must be a positive integer, found {}", src, key, v);
    return ok();
}

Result<DType> parse_torch_dtype(const std::string& s, const std::string& src) {
    if (s == "bfloat16") return DType::bf16;
    if (s == "float16") return DType::f16;
    if (s == "float32") return DType::f32;
    return errorf("{}: unknown torch_dtype '{}' (expected bfloat16, float16 or float32)", src, s);
}

}  // namespace

Result<ModelConfig> parse_model_config(const std::string& text, const std::string& src) {
    json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return errorf("{}: not valid JSON", src);
    if (!j.is_object()) return errorf("{}: expected a JSON object, found {}", src, json_type_name(j));

    ModelConfig c;
    // Architecture: from "architectures" (first entry), else model_type.
    std::string arch;
    if (auto it = j.find("architectures"); it != j.end() && !it->is_null()) {
        if (!it->is_array() || it->empty() || !(*it)[0].is_string())
            return errorf("{}: field 'architectures' must be a non-empty array of strings, found {}", src, it->dump());
        arch = (*it)[0].get<std::string>();
    } else if (auto mt = j.find("model_type"); mt != j.end() && mt->is_string()) {
        std::string m = mt->get<std::string>();
        if (m == "llama") arch = "LlamaForCausalLM";
        else if (m == "mistral") arch = "MistralForCausalLM";
        else if (m == "mixtral") arch = "MixtralForCausalLM";
        else arch = m;
    } else {
        return errorf("{}: missing 'architectures' (expected one of {})", src, kSupported);
    }
    if (arch == "LlamaForCausalLM") c.arch = Architecture::llama;
    else if (arch == "MistralForCausalLM") c.arch = Architecture::mistral;
    else if (arch == "MixtralForCausalLM") c.arch = Architecture::mixtral;
    else return errorf("{}: unsupported architecture '{}' (supported: {})", src, arch, kSupported);

    HR_TRY(get_int(j, "vocab_size", src, c.vocab_size, true));
    HR_TRY(get_int(j, "hidden_size", src, c.dim, true));
    HR_TRY(get_int(j, "intermediate_size", src, c.ffn_dim, true));
    HR_TRY(get_int(j, "num_hidden_layers", src, c.n_layers, true));
    HR_TRY(get_int(j, "num_attention_heads", src, c.n_heads, true));
    HR_TRY(positive(src, "vocab_size", c.vocab_size));
    HR_TRY(positive(src, "hidden_size", c.dim));
    HR_TRY(positive(src, "intermediate_size", c.ffn_dim));
    HR_TRY(positive(src, "num_hidden_layers", c.n_layers));
    HR_TRY(positive(src, "num_attention_heads", c.n_heads));
    c.n_kv_heads = c.n_heads;  // absent: multi-head attention
    HR_TRY(get_int(j, "num_key_value_heads", src, c.n_kv_heads, false));
    HR_TRY(positive(src, "num_key_value_heads", c.n_kv_heads));
    if (c.n_heads % c.n_kv_heads != 0)
        return errorf("{}: num_attention_heads ({}) must be a multiple of num_key_value_heads ({})", src, c.n_heads,
                      c.n_kv_heads);
    c.head_dim = 0;
    HR_TRY(get_int(j, "head_dim", src, c.head_dim, false));  // present, absent or null
    if (c.head_dim == 0) {
        if (c.dim % c.n_heads != 0)
            return errorf("{}: hidden_size ({}) is not divisible by num_attention_heads ({}) and head_dim is not set",
                          src, c.dim, c.n_heads);
        c.head_dim = c.dim / c.n_heads;
    }
    HR_TRY(positive(src, "head_dim", c.head_dim));
    if (c.head_dim % 2 != 0) return errorf("{}: head_dim must be even for rotary embedding, found {}", src, c.head_dim);

    c.max_position_embeddings = 4096;
    HR_TRY(get_int(j, "max_position_embeddings", src, c.max_position_embeddings, false));
    HR_TRY(positive(src, "max_position_embeddings", c.max_position_embeddings));

    // rope_theta: top level (older transformers) or inside rope_parameters (newer).
    bool have_theta = false;
    if (auto rp = j.find("rope_parameters"); rp != j.end() && !rp->is_null()) {
        if (!rp->is_object()) return errorf("{}: 'rope_parameters' must be an object, found {}", src, json_type_name(*rp));
        if (auto rt = rp->find("rope_type"); rt != rp->end() && !(rt->is_string() && *rt == "default"))
            return errorf("{}: rope_parameters.rope_type {} is not supported yet (only 'default')", src, rt->dump());
        if (rp->contains("rope_theta")) {
            HR_TRY(get_float(*rp, "rope_theta", src, c.rope_theta, true));
            have_theta = true;
        }
    }
    if (!have_theta) HR_TRY(get_float(j, "rope_theta", src, c.rope_theta, false));
    if (!(c.rope_theta > 0)) return errorf("{}: rope_theta must be positive, found {}", src, c.rope_theta);
    if (auto rs = j.find("rope_scaling"); rs != j.end() && !rs->is_null())
        return errorf("{}: rope_scaling {} is not supported yet (expected null or absent)", src, rs->dump());

    HR_TRY(get_float(j, "rms_norm_eps", src, c.norm_eps, false));
    if (!(c.norm_eps > 0)) return errorf("{}: rms_norm_eps must be positive, found {}", src, c.norm_eps);

    if (auto t = j.find("tie_word_embeddings"); t != j.end() && !t->is_null()) {
        if (!t->is_boolean()) return errorf("{}: field 'tie_word_embeddings' must be a boolean, found {}", src, t->dump());
        c.tie_word_embeddings = t->get<bool>();
    }
    HR_TRY(get_int(j, "sliding_window", src, c.sliding_window, false));
    if (c.sliding_window < 0) return errorf("{}: sliding_window must be positive or null, found {}", src, c.sliding_window);

    if (auto act = j.find("hidden_act"); act != j.end() && !act->is_null()) {
        if (!act->is_string() || (*act != "silu" && *act != "swish"))
            return errorf("{}: hidden_act {} is not supported (expected \"silu\")", src, act->dump());
    }
    for (const char* bias_key : {"attention_bias", "mlp_bias"}) {
        if (auto b = j.find(bias_key); b != j.end() && b->is_boolean() && b->get<bool>())
            return errorf("{}: {} = true is not supported (expected false)", src, bias_key);
    }

    if (c.arch == Architecture::mixtral) {
        HR_TRY(get_int(j, "num_local_experts", src, c.n_experts, true));
        HR_TRY(get_int(j, "num_experts_per_tok", src, c.n_experts_active, true));
        HR_TRY(positive(src, "num_local_experts", c.n_experts));
        HR_TRY(positive(src, "num_experts_per_tok", c.n_experts_active));
        if (c.n_experts_active > c.n_experts)
            return errorf("{}: num_experts_per_tok ({}) exceeds num_local_experts ({})", src, c.n_experts_active,
                          c.n_experts);
    }

    HR_TRY(get_int(j, "bos_token_id", src, c.bos_token_id, false));
    if (auto e = j.find("eos_token_id"); e != j.end() && !e->is_null()) {
        if (e->is_number_integer()) c.eos_token_id = e->get<int64_t>();
        else if (e->is_array() && !e->empty() && (*e)[0].is_number_integer()) c.eos_token_id = (*e)[0].get<int64_t>();
        else return errorf("{}: field 'eos_token_id' must be an integer or array of integers, found {}", src, e->dump());
    }
    for (int64_t id : {c.bos_token_id, c.eos_token_id}) {
        if (id >= c.vocab_size) return errorf("{}: special token id {} is outside the vocabulary (vocab_size {})", src, id, c.vocab_size);
    }

    std::string dt;
    if (auto d = j.find("dtype"); d != j.end() && d->is_string()) dt = d->get<std::string>();
    else if (auto td = j.find("torch_dtype"); td != j.end() && td->is_string()) dt = td->get<std::string>();
    if (!dt.empty()) {
        HR_ASSIGN(c.torch_dtype, parse_torch_dtype(dt, src));
    }
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
