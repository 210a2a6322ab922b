// Llama and Mistral (LlamaForCausalLM, MistralForCausalLM): pre-norm decoder layers of attention
// (no bias, no per-head norm) and a SwiGLU MLP (gate_proj, up_proj, down_proj).
#include "model/arch/common.h"
#include "model/arch/registry.h"

namespace hr {

namespace {

Status parse_llama(const arch::json& j, const std::string& src, ModelConfig& c) {
    HR_TRY(arch::reject_true(j, "attention_bias", src, architecture_name(c.arch)));
    return ok();
}

void llama_layer(const ModelConfig& c, int64_t l, std::vector<TensorSpec>& out) {
    arch::norm_tensors(c, l, out);
    arch::attention_tensors(c, l, out);
    arch::dense_mlp_tensors(c, l, "mlp", {"gate_proj", "up_proj", "down_proj"}, out);
}

}  // namespace

const ArchUnit& llama_unit() {
    static const ArchUnit u{Architecture::llama, "LlamaForCausalLM", "llama", "llama", parse_llama, llama_layer};
    return u;
}

// note: GGUF files name Mistral "llama" too; the GGUF reader maps them to llama_unit().
const ArchUnit& mistral_unit() {
    static const ArchUnit u{Architecture::mistral, "MistralForCausalLM", "mistral", "", parse_llama, llama_layer};
    return u;
}

}  // namespace hr
