// The CUDA workspace a model needs for steps of up to max_tokens tokens: the largest weight shapes and the
// attention/MoE sizes of its config (serve, each tensor-parallel rank, the parity tests).
#pragma once

#include <algorithm>
#include <cstdint>

#include "backend/cuda/cuda_backend.h"
#include "model/config.h"

namespace hr::cuda {

inline WorkspaceSpec workspace_spec_for(const ModelConfig& c, int64_t max_tokens) {
    WorkspaceSpec ws;
    ws.max_tokens = max_tokens;
    ws.max_cols = std::max({c.dim, c.q_dim(), c.max_ffn_dim()});
    ws.max_rows = std::max({c.vocab_size, c.max_ffn_dim(), c.q_dim(), c.dim});
    ws.n_heads = c.n_heads;
    ws.n_kv_heads = c.n_kv_heads;
    ws.head_dim = c.head_dim;
    ws.n_experts = c.n_experts;
    ws.n_experts_active = c.n_experts_active;
    return ws;
}

}  // namespace hr::cuda
