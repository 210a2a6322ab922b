// The weights of a model as backend-resident views, per layer, in the roles the forward pass uses.
#pragma once

#include <vector>

#include "core/tensor.h"

namespace hr {

struct LayerWeights {
    Weight attn_norm;  // [1, dim]
    Weight wq;         // [n_heads * head_dim, dim]
    Weight wk;         // [n_kv_heads * head_dim, dim]
    Weight wv;         // [n_kv_heads * head_dim, dim]
    Weight wo;         // [dim, n_heads * head_dim]
    Weight ffn_norm;   // [1, dim]
    // dense MLP (Llama, Mistral)
    Weight w1;         // [ffn_dim, dim] gate
    Weight w3;         // [ffn_dim, dim] up
    Weight w2;         // [dim, ffn_dim] down
    // MoE (Mixtral)
    Weight router;               // [n_experts, dim]
    std::vector<Weight> ew1;     // n_experts x [ffn_dim, dim]
    std::vector<Weight> ew3;     // n_experts x [ffn_dim, dim]
    std::vector<Weight> ew2;     // n_experts x [dim, ffn_dim]
};

struct ModelWeights {
    Weight embedding;   // [vocab, dim]
    std::vector<LayerWeights> layers;
    Weight final_norm;  // [1, dim]
    Weight lm_head;     // [vocab, dim] (the embedding table when tied)
};

}  // namespace hr
