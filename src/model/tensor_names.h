// The one table of a model's tensors: Hugging Face name, shape and role, derived from the config.
// The loader checks a checkpoint against it; the planner sizes weights from it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace hr {

enum class TensorRole { embedding, attention, expert, mlp, norm, router, output_head };
std::string_view tensor_role_name(TensorRole r);

struct TensorSpec {
    std::string hf_name;          // e.g. "model.layers.3.block_sparse_moe.experts.5.w1.weight"
    std::vector<int64_t> shape;   // as stored by HF: [out, in] for matrices, [dim] for norms
    TensorRole role;
    int64_t layer = -1;           // -1 for embedding, final norm, output head
    bool quantizable = false;     // note: matrices of attention, experts/MLP and the output head
};

// Every tensor a checkpoint of this config must hold, in a stable order.
// note: with tie_word_embeddings there is no lm_head.weight; the head reads the embedding table.
std::vector<TensorSpec> expected_tensors(const ModelConfig& cfg);

}  // namespace hr
