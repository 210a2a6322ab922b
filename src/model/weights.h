// The weights of a model as backend-resident views, per layer, in the roles the forward pass uses.
// bind_weight() puts a tensor into its member by the spec's named slot (never by position).
#pragma once

#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "model/config.h"
#include "model/tensor_names.h"

namespace hr {

struct LayerWeights {
    Weight attn_norm;  // [1, dim]
    Weight wq;         // [n_heads * head_dim, dim]
    Weight wk;         // [n_kv_heads * head_dim, dim]
    Weight wv;         // [n_kv_heads * head_dim, dim]
    Weight wo;         // [dim, n_heads * head_dim]
    Weight bq;         // [1, n_heads * head_dim]     (qkv_bias only)
    Weight bk;         // [1, n_kv_heads * head_dim]  (qkv_bias only)
    Weight bv;         // [1, n_kv_heads * head_dim]  (qkv_bias only)
    Weight q_norm;     // [1, head_dim]               (qk_norm only)
    Weight k_norm;     // [1, head_dim]               (qk_norm only)
    Weight ffn_norm;   // [1, dim]
    // dense MLP (Llama, Mistral, Qwen2/3, Qwen3-MoE mlp-only layers)
    Weight w1;         // [ffn_dim, dim] gate
    Weight w3;         // [ffn_dim, dim] up
    Weight w2;         // [dim, ffn_dim] down
    // MoE (Mixtral, Qwen3-MoE)
    Weight router;               // [n_experts, dim]
    std::vector<Weight> ew1;     // n_experts x [expert_ffn_dim, dim]
    std::vector<Weight> ew3;     // n_experts x [expert_ffn_dim, dim]
    std::vector<Weight> ew2;     // n_experts x [dim, expert_ffn_dim]
};

struct ModelWeights {
    Weight embedding;   // [vocab, dim]
    std::vector<LayerWeights> layers;
    Weight final_norm;  // [1, dim]
    Weight lm_head;     // [vocab, dim] (the embedding table when tied)
};

// Sizes `w` for cfg (layers, expert vectors); every member starts unbound (data == nullptr).
void init_weights(const ModelConfig& cfg, ModelWeights& w);
// Puts `view` into the member that spec.slot names (layer spec.layer, expert spec.expert).
void bind_weight(ModelWeights& w, const TensorSpec& spec, const Weight& view);
// After binding: every member the config's layers use is bound (the tied head is set here), with the
// shape the spec table gives. An error names the first unbound slot.
Status finish_weights(const ModelConfig& cfg, ModelWeights& w);

}  // namespace hr
