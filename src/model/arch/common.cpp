// Shared config.json reads and tensor-table blocks of the architecture units.
#include "model/arch/common.h"

#include <fmt/format.h>

namespace hr::arch {

Status get_int(const json& j, const char* key, const std::string& src, int64_t& out, bool required) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
        if (required) return errorf("{}: missing required field '{}' (expected an integer)", src, key);
        return ok();
    }
    if (!it->is_number_integer())
        return errorf("{}: field '{}' must be an integer, found {} ({})", src, key, it->type_name(), it->dump());
    out = it->get<int64_t>();
    return ok();
}

Status get_float(const json& j, const char* key, const std::string& src, double& out, bool required) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
        if (required) return errorf("{}: missing required field '{}' (expected a number)", src, key);
        return ok();
    }
    if (!it->is_number())
        return errorf("{}: field '{}' must be a number, found {} ({})", src, key, it->type_name(), it->dump());
    out = it->get<double>();
    return ok();
}

Status get_bool(const json& j, const char* key, const std::string& src, bool& out) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return ok();
    if (!it->is_boolean()) return errorf("{}: field '{}' must be a boolean, found {}", src, key, it->dump());
    out = it->get<bool>();
    return ok();
}

Status positive(const std::string& src, const char* key, int64_t v) {
    if (v <= 0) return errorf("{}: field '{}' must be a positive integer, found {}", src, key, v);
    return ok();
}

Status reject_true(const json& j, const char* key, const std::string& src, std::string_view arch) {
    bool v = false;
    HR_TRY(get_bool(j, key, src, v));
    if (v) return errorf("{}: {} = true is not supported for {} (expected false)", src, key, arch);
    return ok();
}

namespace {

Result<DType> parse_torch_dtype(const std::string& s, const std::string& src) {
    if (s == "bfloat16") return DType::bf16;
    if (s == "float16") return DType::f16;
    if (s == "float32") return DType::f32;
    return errorf("{}: unknown torch_dtype '{}' (expected bfloat16, float16 or float32)", src, s);
}

}  // namespace

Status parse_common(const json& j, const std::string& src, ModelConfig& c) {
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
        if (!rp->is_object()) return errorf("{}: 'rope_parameters' must be an object, found {}", src, rp->type_name());
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
    HR_TRY(get_bool(j, "tie_word_embeddings", src, c.tie_word_embeddings));
    HR_TRY(get_int(j, "sliding_window", src, c.sliding_window, false));
    if (c.sliding_window < 0) return errorf("{}: sliding_window must be positive or null, found {}", src, c.sliding_window);

    if (auto act = j.find("hidden_act"); act != j.end() && !act->is_null()) {
        if (!act->is_string() || (*act != "silu" && *act != "swish"))
            return errorf("{}: hidden_act {} is not supported (expected \"silu\")", src, act->dump());
    }
    bool mlp_bias = false;
    HR_TRY(get_bool(j, "mlp_bias", src, mlp_bias));
    if (mlp_bias) return errorf("{}: mlp_bias = true is not supported (expected false)", src);

    HR_TRY(get_int(j, "bos_token_id", src, c.bos_token_id, false));
    if (auto e = j.find("eos_token_id"); e != j.end() && !e->is_null()) {
        if (e->is_number_integer()) c.eos_token_id = e->get<int64_t>();
        else if (e->is_array() && !e->empty() && (*e)[0].is_number_integer()) c.eos_token_id = (*e)[0].get<int64_t>();
        else return errorf("{}: field 'eos_token_id' must be an integer or array of integers, found {}", src, e->dump());
    }
    for (int64_t id : {c.bos_token_id, c.eos_token_id}) {
        if (id >= c.vocab_size)
            return errorf("{}: special token id {} is outside the vocabulary (vocab_size {})", src, id, c.vocab_size);
    }

    // dtype (newer transformers) or torch_dtype (older).
    std::string dt;
    if (auto d = j.find("dtype"); d != j.end() && d->is_string()) dt = d->get<std::string>();
    else if (auto td = j.find("torch_dtype"); td != j.end() && td->is_string()) dt = td->get<std::string>();
    if (!dt.empty()) {
        HR_ASSIGN(c.torch_dtype, parse_torch_dtype(dt, src));
    }
    return ok();
}

Status parse_experts(const json& j, const std::string& src, const char* key, const char* alt, ModelConfig& c) {
    const char* used = key;
    if (alt && *alt && (!j.contains(key) || j[key].is_null()) && j.contains(alt)) used = alt;
    HR_TRY(get_int(j, used, src, c.n_experts, true));
    HR_TRY(get_int(j, "num_experts_per_tok", src, c.n_experts_active, true));
    HR_TRY(positive(src, used, c.n_experts));
    HR_TRY(positive(src, "num_experts_per_tok", c.n_experts_active));
    if (c.n_experts_active > c.n_experts)
        return errorf("{}: num_experts_per_tok ({}) exceeds {} ({})", src, c.n_experts_active, used, c.n_experts);
    return ok();
}

Status parse_use_sliding_window(const json& j, const std::string& src, ModelConfig& c) {
    bool use = false;
    HR_TRY(get_bool(j, "use_sliding_window", src, use));
    if (!use) c.sliding_window = 0;
    return ok();
}

std::string layer_prefix(int64_t layer) { return fmt::format("model.layers.{}.", layer); }

void norm_tensors(const ModelConfig& c, int64_t l, std::vector<TensorSpec>& out) {
    const std::string p = layer_prefix(l);
    out.push_back({p + "input_layernorm.weight", {c.dim}, TensorRole::norm, l, false, Slot::attn_norm});
    out.push_back({p + "post_attention_layernorm.weight", {c.dim}, TensorRole::norm, l, false, Slot::ffn_norm});
}

void attention_tensors(const ModelConfig& c, int64_t l, std::vector<TensorSpec>& out) {
    const std::string p = layer_prefix(l) + "self_attn.";
    const auto A = TensorRole::attention;
    out.push_back({p + "q_proj.weight", {c.q_dim(), c.dim}, A, l, true, Slot::wq});
    out.push_back({p + "k_proj.weight", {c.kv_dim(), c.dim}, A, l, true, Slot::wk});
    out.push_back({p + "v_proj.weight", {c.kv_dim(), c.dim}, A, l, true, Slot::wv});
    out.push_back({p + "o_proj.weight", {c.dim, c.q_dim()}, A, l, true, Slot::wo});
    if (c.qkv_bias) {
        out.push_back({p + "q_proj.bias", {c.q_dim()}, A, l, false, Slot::bq});
        out.push_back({p + "k_proj.bias", {c.kv_dim()}, A, l, false, Slot::bk});
        out.push_back({p + "v_proj.bias", {c.kv_dim()}, A, l, false, Slot::bv});
    }
    if (c.qk_norm) {
        out.push_back({p + "q_norm.weight", {c.head_dim}, TensorRole::norm, l, false, Slot::q_norm});
        out.push_back({p + "k_norm.weight", {c.head_dim}, TensorRole::norm, l, false, Slot::k_norm});
    }
}

void dense_mlp_tensors(const ModelConfig& c, int64_t l, std::string_view block, const MlpNames& n,
                       std::vector<TensorSpec>& out) {
    const std::string p = fmt::format("{}{}.", layer_prefix(l), block);
    const auto M = TensorRole::mlp;
    out.push_back({fmt::format("{}{}.weight", p, n.gate), {c.ffn_dim, c.dim}, M, l, true, Slot::mlp_gate});
    out.push_back({fmt::format("{}{}.weight", p, n.up), {c.ffn_dim, c.dim}, M, l, true, Slot::mlp_up});
    out.push_back({fmt::format("{}{}.weight", p, n.down), {c.dim, c.ffn_dim}, M, l, true, Slot::mlp_down});
}

void moe_tensors(const ModelConfig& c, int64_t l, std::string_view block, std::string_view router, const MlpNames& n,
                 std::vector<TensorSpec>& out) {
    const std::string p = fmt::format("{}{}.", layer_prefix(l), block);
    const int64_t f = c.expert_ffn_dim();
    const auto X = TensorRole::expert;
    out.push_back({fmt::format("{}{}.weight", p, router), {c.n_experts, c.dim}, TensorRole::router, l, false, Slot::router});
    for (int64_t e = 0; e < c.n_experts; ++e) {
        const std::string ep = fmt::format("{}experts.{}.", p, e);
        out.push_back({fmt::format("{}{}.weight", ep, n.gate), {f, c.dim}, X, l, true, Slot::expert_gate, e});
        out.push_back({fmt::format("{}{}.weight", ep, n.down), {c.dim, f}, X, l, true, Slot::expert_down, e});
        out.push_back({fmt::format("{}{}.weight", ep, n.up), {f, c.dim}, X, l, true, Slot::expert_up, e});
    }
}

}  // namespace hr::arch
