// The one table of a model's tensors: Hugging Face name, shape, role and the NAMED slot it fills in
// ModelWeights, derived from the config by the architecture's unit (model/arch/). The loader checks a
// checkpoint against it and binds each tensor to its slot by name; the planner sizes weights from it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace hr {

enum class TensorRole { embedding, attention, expert, mlp, norm, router, output_head };
std::string_view tensor_role_name(TensorRole r);

// Where a tensor goes in ModelWeights (model/weights.h); the loader binds by this, never by position.
enum class Slot {
    embedding, final_norm, lm_head,                         // model-wide
    attn_norm, ffn_norm,                                    // per layer: the two RMSNorm weights
    wq, wk, wv, wo, bq, bk, bv, q_norm, k_norm,             // attention (bias, per-head norm optional)
    mlp_gate, mlp_up, mlp_down,                             // dense MLP
    router, expert_gate, expert_up, expert_down,            // MoE (expert_* carry TensorSpec::expert)
};
std::string_view slot_name(Slot s);

struct TensorSpec {
    std::string hf_name;          // e.g. "model.layers.3.block_sparse_moe.experts.5.w1.weight"
    std::vector<int64_t> shape;   // as stored by HF: [out, in] for matrices, [dim] for norms and biases
    TensorRole role;
    int64_t layer = -1;           // -1 for embedding, final norm, output head
    bool quantizable = false;     // note: matrices of attention, experts/MLP and the output head
    Slot slot = Slot::embedding;
    int64_t expert = -1;          // expert index for Slot::expert_*

    // As a weight matrix [out, in]; a 1-D [n] vector is 1 x n. The only rows/cols rule there is.
    int64_t rows() const;
    int64_t cols() const { return shape.empty() ? 1 : shape.back(); }
    int64_t numel() const { return rows() * cols(); }
};

// Every tensor a checkpoint of this config must hold, in a stable order (the order carries no meaning:
// each spec names its slot).
// note: with tie_word_embeddings there is no lm_head.weight; the head reads the embedding table.
std::vector<TensorSpec> expected_tensors(const ModelConfig& cfg);

}  // namespace hr
