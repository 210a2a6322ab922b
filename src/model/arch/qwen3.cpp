// Qwen3 (Qwen3ForCausalLM): Llama layers with an RMSNorm over head_dim on each head of q and k
// (q_norm, k_norm), applied before rotary; no bias.
#include "model/arch/common.h"
#include "model/arch/registry.h"

namespace hr {

namespace {

Status parse_qwen3(const arch::json& j, const std::string& src, ModelConfig& c) {
    HR_TRY(arch::reject_true(j, "attention_bias", src, "Qwen3ForCausalLM"));
    c.qk_norm = true;
    HR_TRY(arch::parse_use_sliding_window(j, src, c));
    return ok();
}

void qwen3_layer(const ModelConfig& c, int64_t l, std::vector<TensorSpec>& out) {
    arch::norm_tensors(c, l, out);
    arch::attention_tensors(c, l, out);
    arch::dense_mlp_tensors(c, l, "mlp", {"gate_proj", "up_proj", "down_proj"}, out);
}

}  // namespace

const ArchUnit& qwen3_unit() {
    static const ArchUnit u{Architecture::qwen3, "Qwen3ForCausalLM", "qwen3", "qwen3", parse_qwen3, qwen3_layer};
    return u;
}

}  // namespace hr
