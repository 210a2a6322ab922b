// gguf_metadata_for: a ModelConfig as GGUF metadata keys (model/gguf_metadata.h).
#include "model/gguf_metadata.h"

#include "model/arch/registry.h"

namespace hr {

std::vector<io::GgufKV> gguf_metadata_for(const ModelConfig& c) {
    // llama.cpp names Mixtral and Mistral "llama" (experts are what make it Mixtral): the units without a
    // GGUF name of their own.
    const std::string_view g = arch_unit(c.arch).gguf_arch;
    const std::string a = g.empty() ? "llama" : std::string(g);
    auto u32 = [&](const std::string& k, int64_t v) { return io::gguf_kv_u32(a + "." + k, static_cast<uint32_t>(v)); };
    std::vector<io::GgufKV> kv = {
        io::gguf_kv_str("general.architecture", a),
        u32("block_count", c.n_layers),
        u32("context_length", c.max_position_embeddings),
        u32("embedding_length", c.dim),
        u32("feed_forward_length", c.ffn_dim),
        u32("attention.head_count", c.n_heads),
        u32("attention.head_count_kv", c.n_kv_heads),
        u32("attention.key_length", c.head_dim),
        u32("rope.dimension_count", c.head_dim),
        io::gguf_kv_f32(a + ".rope.freq_base", static_cast<float>(c.rope_theta)),
        io::gguf_kv_f32(a + ".attention.layer_norm_rms_epsilon", static_cast<float>(c.norm_eps)),
        u32("vocab_size", c.vocab_size),
    };
    if (c.sliding_window > 0) kv.push_back(u32("attention.sliding_window", c.sliding_window));
    if (c.bos_token_id >= 0) kv.push_back(io::gguf_kv_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(c.bos_token_id)));
    if (c.eos_token_id >= 0) kv.push_back(io::gguf_kv_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(c.eos_token_id)));
    if (c.is_moe()) {
        kv.push_back(u32("expert_count", c.n_experts));
        kv.push_back(u32("expert_used_count", c.n_experts_active));
    }
    if (c.arch == Architecture::qwen3_moe) {
        kv.push_back(u32("expert_feed_forward_length", c.expert_ffn_dim()));
        kv.push_back(io::gguf_kv_bool(a + ".expert_weights_norm", c.routing == MoeRouting::softmax_topk_renorm));
    }
    return kv;
}

}  // namespace hr
