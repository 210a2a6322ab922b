// The one table of a model's tensors (HF names, shapes, roles), derived from the config.
#include "model/tensor_names.h"

#include <fmt/format.h>

namespace hr {

std::string_view tensor_role_name(TensorRole r) {
    switch (r) {
        case TensorRole::embedding: return "embedding";
        case TensorRole::attention: return "attention";
        case TensorRole::expert: return "experts";
        case TensorRole::mlp: return "mlp";
        case TensorRole::norm: return "norms";
        case TensorRole::router: return "router";
        case TensorRole::output_head: return "output_head";
    }
    return "?";
}

std::vector<TensorSpec> expected_tensors(const ModelConfig& c) {
    std::vector<TensorSpec> t;
    auto mat = [&](std::string name, int64_t out, int64_t in, TensorRole role, int64_t layer, bool quantizable) {
        t.push_back(TensorSpec{std::move(name), {out, in}, role, layer, quantizable});
    };
    mat("model.embed_tokens.weight", c.vocab_size, c.dim, TensorRole::embedding, -1, false);
    for (int64_t l = 0; l < c.n_layers; ++l) {
        const std::string p = fmt::format("model.layers.{}.", l);
        t.push_back(TensorSpec{p + "input_layernorm.weight", {c.dim}, TensorRole::norm, l, false});
        mat(p + "self_attn.q_proj.weight", c.q_dim(), c.dim, TensorRole::attention, l, true);
        mat(p + "self_attn.k_proj.weight", c.kv_dim(), c.dim, TensorRole::attention, l, true);
        mat(p + "self_attn.v_proj.weight", c.kv_dim(), c.dim, TensorRole::attention, l, true);
        mat(p + "self_attn.o_proj.weight", c.dim, c.q_dim(), TensorRole::attention, l, true);
        t.push_back(TensorSpec{p + "post_attention_layernorm.weight", {c.dim}, TensorRole::norm, l, false});
        if (c.is_moe()) {
            mat(p + "block_sparse_moe.gate.weight", c.n_experts, c.dim, TensorRole::router, l, false);
            for (int64_t e = 0; e < c.n_experts; ++e) {
                const std::string ep = fmt::format("{}block_sparse_moe.experts.{}.", p, e);
                mat(ep + "w1.weight", c.ffn_dim, c.dim, TensorRole::expert, l, true);
                mat(ep + "w2.weight", c.dim, c.ffn_dim, TensorRole::expert, l, true);
                mat(ep + "w3.weight", c.ffn_dim, c.dim, TensorRole::expert, l, true);
            }
        } else {
            mat(p + "mlp.gate_proj.weight", c.ffn_dim, c.dim, TensorRole::mlp, l, true);
            mat(p + "mlp.up_proj.weight", c.ffn_dim, c.dim, TensorRole::mlp, l, true);
            mat(p + "mlp.down_proj.weight", c.dim, c.ffn_dim, TensorRole::mlp, l, true);
        }
    }
    t.push_back(TensorSpec{"model.norm.weight", {c.dim}, TensorRole::norm, -1, false});
    if (!c.tie_word_embeddings) mat("lm_head.weight", c.vocab_size, c.dim, TensorRole::output_head, -1, true);
    return t;
}

}  // namespace hr
