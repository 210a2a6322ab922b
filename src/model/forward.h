// The one forward pass, written against the Backend op list: embed -> layers -> norm -> logits.
#pragma once

#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "backend/communicator.h"
#include "model/activations.h"
#include "model/blocks.h"
#include "model/config.h"
#include "model/weights.h"

namespace hr {

// A paged KV cache: per layer k and v of [n_blocks, block_size, n_kv_heads, head_dim] (+ scales: op_args.h).
struct KvCache {
    std::vector<KvLayer> layers;
    int64_t n_blocks = 0;
    int block_size = 16;
    DType dtype = DType::f32;
};

// Bytes of the whole cache: per layer k and v, and for a quantized dtype (int8, fp8) their f32 scales
// [n_blocks, block_size, n_kv_heads] after them, each part 256-byte aligned.
uint64_t kv_cache_bytes(const ModelConfig& cfg, int64_t n_blocks, int block_size, DType dtype);
// Bytes one token takes in the cache over all layers, scales included (without the alignment padding).
uint64_t kv_bytes_per_token(const ModelConfig& cfg, DType dtype);
// Views over one allocation of kv_cache_bytes() bytes at `base`.
KvCache carve_kv_cache(const ModelConfig& cfg, int64_t n_blocks, int block_size, DType dtype, void* base);

// Copies whole KV blocks (every layer's k, v and scales; kv_copy.cpp) as backend ops on the stream, in order:
// a later copy may read a block an earlier one wrote. Ids must be blocks of `kv` (forward_upload checks).
void copy_kv_blocks(Backend& be, const KvCache& kv, std::span<const KvBlockCopy> copies);

// One step's tokens, in host memory. Tokens of a sequence are contiguous and in position order.
struct StepBatch {
    std::vector<int32_t> token_ids;     // [T]
    std::vector<int32_t> positions;     // [T]
    std::vector<int32_t> token_seq;     // [T] index into block_tables rows
    std::vector<int32_t> slot_mapping;  // [T] block * block_size + offset in the KV cache
    std::vector<int32_t> block_tables;  // [S, max_blocks_per_seq] (row-major, padded with 0)
    std::vector<int32_t> logit_rows;    // [S'] token rows whose logits are wanted (S' <= max_seqs)
    std::vector<KvBlockCopy> block_copies;  // [C] done before the step's tokens are written (copy-on-write)
};

// Runs the model on a step. On return (after backend.synchronize()), act.logits.first_rows(S') holds
// the logits of the requested rows, in backend memory. Validation of the batch against the limits
// (and of token ids against the vocabulary) happens here; a bad batch returns an error, nothing runs.
// A tap (not null) receives named intermediates: "embed", then per layer "layer<l>.attn_in", .q, .k, .v
// (after bias and q/k norm, before rotary), .attn_out (o_proj), .ffn_in, .router_logits and .topk_ids
// (MoE; i32 [T, k], the experts the router selected; every other name is f32), .mlp_out or .moe_out, .out (the residual stream after the layer), and "final_norm" (logit rows).
//
// Tensor parallel (docs/parallel.md): with a communicator of N ranks, cfg is the rank-local config
// (shard_config), w the rank's weights (shard_weights), act and kv carved for cfg; proj is summed over the
// ranks after the attention output projection and after the dense MLP / MoE combine, so x (and the
// logits) are the same on every rank. Every rank runs forward() on the same batch, each on its own thread.
// The tap then sees this rank's q/k/v heads and the rank's partial attn_out / mlp_out / moe_out (before
// the sum). Without a communicator (N = 1) nothing changes: the ops are exactly those of one device.
Status forward(Backend& be, const ModelConfig& cfg, const ModelWeights& w, const StepLimits& lim,
               Activations& act, KvCache& kv, const StepBatch& batch, const ActivationTap* tap = nullptr,
               Communicator* comm = nullptr);

// forward() in two halves, so the second can be recorded once as a CUDA graph and replayed: the
// ops read the batch only from the device arrays that forward_upload() fills, plus this shape.
struct StepShape {
    int64_t tokens = 0;                    // T
    int64_t logit_rows = 0;                // S'
    int64_t n_seqs = 0;                    // rows of block_tables
    std::span<const int32_t> token_seq;    // [T] host copy (picks attention kernels per token run)
};
// Validates the batch, uploads it and enqueues its block copies; returns its shape (views into `batch`).
Result<StepShape> forward_upload(Backend& be, const ModelConfig& cfg, const StepLimits& lim, Activations& act,
                                 KvCache& kv, const StepBatch& batch);
// Enqueues the ops of one step on the backend (no uploads, no host synchronisation on the decode path).
// With a communicator, its all-reduces are enqueued too; their errors show at comm->synchronize().
void forward_compute(Backend& be, const ModelConfig& cfg, const ModelWeights& w, Activations& act, KvCache& kv,
                     const StepShape& shape, const ActivationTap* tap = nullptr, Communicator* comm = nullptr);

}  // namespace hr
