// The activation buffers of one forward step, as named regions. The planner sizes the activation
// arena from activation_regions(); the forward pass carves the same regions from it, so the plan and
// the allocation cannot disagree.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "model/config.h"

namespace hr {

// Capacity of one forward step.
struct StepLimits {
    int64_t max_tokens = 0;          // tokens in one step (prefill chunk + decodes)
    int64_t max_seqs = 0;            // sequences in one step (rows of logits)
    int64_t max_blocks_per_seq = 0;  // KV blocks one sequence may hold (context / block_size, rounded up)
};

struct Region {
    std::string name;
    uint64_t bytes = 0;
};

constexpr uint64_t kRegionAlign = 256;  // every region starts 256-byte aligned
inline uint64_t align_up(uint64_t n, uint64_t a = kRegionAlign) { return (n + a - 1) / a * a; }

// Named activation regions for cfg at these limits (bytes already rounded up to kRegionAlign).
std::vector<Region> activation_regions(const ModelConfig& cfg, const StepLimits& lim);
uint64_t activation_bytes(const ModelConfig& cfg, const StepLimits& lim);

// Tensors carved from one arena of activation_bytes() bytes at `base`.
// Shapes are for max_tokens rows; a step with fewer tokens uses first_rows(n).
struct Activations {
    Tensor x;             // [T, dim] f32 residual stream
    Tensor xb;            // [T, dim] f32 normed input
    Tensor q;             // [T, n_heads * head_dim] f32
    Tensor k;             // [T, n_kv_heads * head_dim] f32
    Tensor v;             // [T, n_kv_heads * head_dim] f32
    Tensor attn_out;      // [T, n_heads * head_dim] f32
    Tensor proj;          // [T, dim] f32 output of wo / of the FFN
    Tensor hb;            // [T, ffn_dim] f32 gate          (dense layers only)
    Tensor hb2;           // [T, ffn_dim] f32 up            (dense layers only)
    Tensor router_logits; // [T, n_experts] f32            (MoE only)
    Tensor topk_ids;      // [T, k] i32                    (MoE only)
    Tensor topk_w;        // [T, k] f32                    (MoE only)
    Tensor ws_in;         // [T * k, dim] f32              (MoE only)
    Tensor ws_gate;       // [T * k, expert_ffn_dim] f32   (MoE only)
    Tensor ws_up;         // [T * k, expert_ffn_dim] f32   (MoE only)
    Tensor ws_out;        // [T * k, dim] f32              (MoE only)
    Tensor token_ids;     // [T] i32
    Tensor positions;     // [T] i32
    Tensor token_seq;     // [T] i32
    Tensor slot_mapping;  // [T] i32
    Tensor block_tables;  // [S, max_blocks_per_seq] i32
    Tensor logit_rows;    // [S] i32 which token rows produce logits
    Tensor last_hidden;   // [S, dim] f32
    Tensor logits;        // [S, vocab] f32
};

Activations carve_activations(const ModelConfig& cfg, const StepLimits& lim, void* base);

}  // namespace hr
