// Mixtral (MixtralForCausalLM): Llama attention and a MoE in every layer (block_sparse_moe: router
// "gate", experts w1 = gate, w3 = up, w2 = down); softmax over all experts, top-k, renormalised.
#include "model/arch/common.h"
#include "model/arch/registry.h"

namespace hr {

namespace {

Status parse_mixtral(const arch::json& j, const std::string& src, ModelConfig& c) {
    HR_TRY(arch::reject_true(j, "attention_bias", src, "MixtralForCausalLM"));
    HR_TRY(arch::parse_experts(j, src, "num_local_experts", "", c));
    c.moe_ffn_dim = c.ffn_dim;  // intermediate_size is the width of each expert
    c.routing = MoeRouting::softmax_topk_renorm;
    return ok();
}

void mixtral_layer(const ModelConfig& c, int64_t l, std::vector<TensorSpec>& out) {
    arch::norm_tensors(c, l, out);
    arch::attention_tensors(c, l, out);
    arch::moe_tensors(c, l, "block_sparse_moe", "gate", {"w1", "w3", "w2"}, out);
}

}  // namespace

// note: GGUF files name Mixtral "llama" (with an expert count); the GGUF reader maps them here.
const ArchUnit& mixtral_unit() {
    static const ArchUnit u{Architecture::mixtral, "MixtralForCausalLM", "mixtral", "", parse_mixtral, mixtral_layer};
    return u;
}

}  // namespace hr
