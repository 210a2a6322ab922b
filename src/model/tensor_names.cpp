// The one table of a model's tensors: the model-wide tensors here, each layer's from its architecture's
// unit (model/arch/).
#include "model/tensor_names.h"

#include "model/arch/registry.h"

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

std::string_view slot_name(Slot s) {
    switch (s) {
        case Slot::embedding: return "embedding";
        case Slot::final_norm: return "final_norm";
        case Slot::lm_head: return "lm_head";
        case Slot::attn_norm: return "attn_norm";
        case Slot::ffn_norm: return "ffn_norm";
        case Slot::wq: return "wq";
        case Slot::wk: return "wk";
        case Slot::wv: return "wv";
        case Slot::wo: return "wo";
        case Slot::bq: return "bq";
        case Slot::bk: return "bk";
        case Slot::bv: return "bv";
        case Slot::q_norm: return "q_norm";
        case Slot::k_norm: return "k_norm";
        case Slot::mlp_gate: return "mlp_gate";
        case Slot::mlp_up: return "mlp_up";
        case Slot::mlp_down: return "mlp_down";
        case Slot::router: return "router";
        case Slot::expert_gate: return "expert_gate";
        case Slot::expert_up: return "expert_up";
        case Slot::expert_down: return "expert_down";
    }
    return "?";
}

int64_t TensorSpec::rows() const {
    if (shape.size() < 2) return 1;
    int64_t r = 1;
    for (size_t i = 0; i + 1 < shape.size(); ++i) r *= shape[i];
    return r;
}

std::vector<TensorSpec> expected_tensors(const ModelConfig& c) {
    std::vector<TensorSpec> t;
    t.push_back({"model.embed_tokens.weight", {c.vocab_size, c.dim}, TensorRole::embedding, -1, false, Slot::embedding});
    const ArchUnit& unit = arch_unit(c.arch);
    for (int64_t l = 0; l < c.n_layers; ++l) unit.layer_tensors(c, l, t);
    t.push_back({"model.norm.weight", {c.dim}, TensorRole::norm, -1, false, Slot::final_norm});
    if (!c.tie_word_embeddings)
        t.push_back({"lm_head.weight", {c.vocab_size, c.dim}, TensorRole::output_head, -1, true, Slot::lm_head});
    return t;
}

}  // namespace hr
