// Qwen2 (Qwen2ForCausalLM): Llama layers whose q, k and v projections carry a bias (o_proj has none).
#include "model/arch/common.h"
#include "model/arch/registry.h"

namespace hr {

namespace {

Status parse_qwen2(const arch::json& j, const std::string& src, ModelConfig& c) {
    // Qwen2 always has q/k/v biases (transformers does not read attention_bias for it).
    c.qkv_bias = true;
    HR_TRY(arch::parse_use_sliding_window(j, src, c));
    return ok();
}

void qwen2_layer(const ModelConfig& c, int64_t l, std::vector<TensorSpec>& out) {
    arch::norm_tensors(c, l, out);
    arch::attention_tensors(c, l, out);
    arch::dense_mlp_tensors(c, l, "mlp", {"gate_proj", "up_proj", "down_proj"}, out);
}

}  // namespace

const ArchUnit& qwen2_unit() {
    static const ArchUnit u{Architecture::qwen2, "Qwen2ForCausalLM", "qwen2", "qwen2", parse_qwen2, qwen2_layer};
    return u;
}

}  // namespace hr
