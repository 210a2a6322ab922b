// Qwen3-MoE (Qwen3MoeForCausalLM): Qwen3 attention (per-head q/k norm) and, per layer, either a MoE
// (mlp.gate router, mlp.experts.<e>.{gate,up,down}_proj of moe_intermediate_size) or a dense MLP
// (intermediate_size) for layers in mlp_only_layers or off the decoder_sparse_step. Routing: softmax
// over all experts, top-k, renormalised only when norm_topk_prob.
#include <algorithm>

#include "model/arch/common.h"
#include "model/arch/registry.h"

namespace hr {

namespace {

Status parse_qwen3_moe(const arch::json& j, const std::string& src, ModelConfig& c) {
    HR_TRY(arch::reject_true(j, "attention_bias", src, "Qwen3MoeForCausalLM"));
    c.qk_norm = true;
    HR_TRY(arch::parse_use_sliding_window(j, src, c));
    // The hub writes num_experts; transformers 5 writes num_local_experts.
    HR_TRY(arch::parse_experts(j, src, "num_experts", "num_local_experts", c));
    HR_TRY(arch::get_int(j, "moe_intermediate_size", src, c.moe_ffn_dim, true));
    HR_TRY(arch::positive(src, "moe_intermediate_size", c.moe_ffn_dim));
    bool norm_topk = false;  // transformers' default for Qwen3MoeConfig
    HR_TRY(arch::get_bool(j, "norm_topk_prob", src, norm_topk));
    c.routing = norm_topk ? MoeRouting::softmax_topk_renorm : MoeRouting::softmax_topk;
    c.decoder_sparse_step = 1;
    HR_TRY(arch::get_int(j, "decoder_sparse_step", src, c.decoder_sparse_step, false));
    HR_TRY(arch::positive(src, "decoder_sparse_step", c.decoder_sparse_step));
    c.mlp_only_layers.clear();
    if (auto m = j.find("mlp_only_layers"); m != j.end() && !m->is_null()) {
        if (!m->is_array()) return errorf("{}: field 'mlp_only_layers' must be an array of layer indices, found {}", src, m->dump());
        for (const auto& v : *m) {
            if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= c.n_layers)
                return errorf("{}: mlp_only_layers entry {} is not a layer index in [0, {})", src, v.dump(), c.n_layers);
            c.mlp_only_layers.push_back(v.get<int64_t>());
        }
        std::sort(c.mlp_only_layers.begin(), c.mlp_only_layers.end());
    }
    if (c.n_moe_layers() == 0)
        return errorf("{}: no layer is a MoE layer (decoder_sparse_step {}, mlp_only_layers covers the rest)", src,
                      c.decoder_sparse_step);
    return ok();
}

void qwen3_moe_layer(const ModelConfig& c, int64_t l, std::vector<TensorSpec>& out) {
    arch::norm_tensors(c, l, out);
    arch::attention_tensors(c, l, out);
    const arch::MlpNames names{"gate_proj", "up_proj", "down_proj"};
    if (c.layer_is_moe(l)) arch::moe_tensors(c, l, "mlp", "gate", names, out);
    else arch::dense_mlp_tensors(c, l, "mlp", names, out);
}

}  // namespace

const ArchUnit& qwen3_moe_unit() {
    static const ArchUnit u{Architecture::qwen3_moe, "Qwen3MoeForCausalLM", "qwen3_moe", "qwen3moe", parse_qwen3_moe,
                            qwen3_moe_layer};
    return u;
}

}  // namespace hr
