// Argument structs for the backend ops that take many operands (attention, MoE experts).
#pragma once

#include <cstdint>
#include <span>

#include "core/tensor.h"

namespace hr {

// One layer's paged KV cache.
// k, v: [n_blocks, block_size, n_kv_heads, head_dim] in the cache dtype (f32, f16, bf16, or the quantized
// i8 / f8_e4m3 codes of core/kv_quant.h).
// k_scale, v_scale: f32 [n_blocks, block_size, n_kv_heads], one scale per (slot, kv head) row of a
// quantized cache (value = code * scale); data null for a float cache. A slot's scales sit at the same
// index as its row, so a block id addresses both (the prefix cache shares blocks whatever the dtype).
struct KvLayer {
    Tensor k;
    Tensor v;
    Tensor k_scale;
    Tensor v_scale;
};

// One KV block copied to another before a step writes into it (copy-on-write of a shared block): every
// layer's k, v (and scales) rows of block `src` go to block `dst`.
struct KvBlockCopy {
    int32_t src = 0;
    int32_t dst = 0;
    bool operator==(const KvBlockCopy&) const = default;
};

// Batched causal attention over a paged KV cache; the same op serves prefill and decode.
// note: the op first writes k_new/v_new for each token into its slot (slot_mapping), then each token
// t attends to positions [0, positions[t]] of its own sequence (token_seq[t]) through that sequence's
// block table. So a prefill chunk sees its own earlier tokens without a separate path.
struct AttentionArgs {
    Tensor out;           // [n_tokens, n_heads * head_dim] f32
    Tensor q;             // [n_tokens, n_heads, head_dim] f32 (rotary already applied)
    Tensor k_new;         // [n_tokens, n_kv_heads, head_dim] f32 (rotary already applied)
    Tensor v_new;         // [n_tokens, n_kv_heads, head_dim] f32
    KvLayer cache;        //
    Tensor positions;     // [n_tokens] i32: position of each token in its sequence
    Tensor token_seq;     // [n_tokens] i32: row of block_tables for each token
    Tensor slot_mapping;  // [n_tokens] i32: block * block_size + offset where k_new/v_new go
    Tensor block_tables;  // [n_seqs, max_blocks_per_seq] i32
    int block_size = 16;
    float scale = 1.0f;   // usually 1 / sqrt(head_dim)
    // Optional host copy of token_seq ([n_tokens], or empty). With it a backend may pick its kernel per
    // run of one sequence's tokens (the CUDA backend: tensor cores for prefill chunks, split-K for
    // decode tokens) without reading device memory back. The result does not depend on it.
    std::span<const int32_t> token_seq_host;
};

// One product of a shared input: out = in W^T.
struct MatmulJob {
    Tensor out;       // [n, w->rows] f32
    const Weight* w;  // [rows, cols]
};

// An MoE layer's routing: router_logits = in R^T, then softmax and top-k (Backend::moe_route).
struct RouteArgs {
    Tensor topk_ids;                  // [n_tokens, k] i32
    Tensor topk_w;                    // [n_tokens, k] f32
    Tensor router_logits;             // [n_tokens, n_experts] f32 (written: taps and --calibrate read it)
    const Weight* router = nullptr;   // [n_experts, dim]
    bool renormalize = true;          // the k weights divided by their sum (Mixtral)
};

// The experts of one MoE layer, weights per expert.
struct ExpertWeights {
    std::span<const Weight> w1;  // n_experts x [ffn_dim, dim] gate projection
    std::span<const Weight> w3;  // n_experts x [ffn_dim, dim] up projection
    std::span<const Weight> w2;  // n_experts x [dim, ffn_dim] down projection
};

// out[t] = sum_j topk_w[t][j] * W2_e (silu(W1_e x_t) * W3_e x_t), e = topk_ids[t][j].
// Workspaces come from the planned activation arena; a backend may leave some unused.
struct MoeArgs {
    Tensor out;       // [n_tokens, dim] f32 (overwritten)
    Tensor in;        // [n_tokens, dim] f32
    Tensor topk_ids;  // [n_tokens, k] i32
    Tensor topk_w;    // [n_tokens, k] f32
    ExpertWeights experts;
    Tensor ws_in;     // [n_tokens * k, dim] f32   tokens gathered by expert
    Tensor ws_gate;   // [n_tokens * k, ffn_dim] f32
    Tensor ws_up;     // [n_tokens * k, ffn_dim] f32
    Tensor ws_out;    // [n_tokens * k, dim] f32
};

}  // namespace hr
