// Tensor-parallel sharding (docs/parallel.md): which attention heads and which FFN / expert intermediate
// columns each of N ranks holds, and the rank-local config the one forward pass and the planner run with.
// Pure: no backend, no files.
//
// Split (Megatron style, one all-reduce after each block):
//   wq, wk, wv (and their biases): rows of the rank's heads;  wo: the matching columns.
//   w1, w3 (dense and per expert): rows [ffn range);         w2: the matching columns.
//   embedding, norms, router, lm_head: replicated (every rank holds them whole).
// KV heads split evenly when n_kv_heads % N == 0; otherwise each rank holds (replicated) the one KV head
// its q heads use, which needs the rank's q heads to fall inside one GQA group.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/status.h"
#include "model/config.h"
#include "model/tensor_names.h"

namespace hr {

constexpr int kMaxTensorParallel = 64;

struct IndexRange {
    int64_t begin = 0;
    int64_t end = 0;  // exclusive
    int64_t size() const { return end - begin; }
};

struct ShardPlan {
    int n_ranks = 1;
    int64_t q_heads = 0;         // per rank
    int64_t kv_heads = 0;        // per rank
    bool kv_replicated = false;  // n_kv_heads % n_ranks != 0: ranks share KV heads (each holds its own copy)
    int64_t ffn = 0;             // dense MLP intermediate columns per rank (0: no dense layer)
    int64_t expert_ffn = 0;      // per-expert intermediate columns per rank (0: no MoE layer)
};

// What one rank holds, as ranges of the full model's indices.
struct RankShard {
    int rank = 0;
    IndexRange q_heads;     // of n_heads
    IndexRange kv_heads;    // of n_kv_heads
    IndexRange ffn;         // of ffn_dim (dense layers)
    IndexRange expert_ffn;  // of expert_ffn_dim (every expert of every MoE layer)
};

// The split of cfg over n ranks. Errors name the dimension that does not divide: num_attention_heads,
// num_key_value_heads (neither divisible nor one group per rank), intermediate_size,
// moe_intermediate_size; n outside [1, kMaxTensorParallel].
Result<ShardPlan> plan_shards(const ModelConfig& cfg, int n);

// Rank r's ranges (0 <= r < plan.n_ranks; an invariant, not input).
RankShard rank_shard(const ModelConfig& cfg, const ShardPlan& plan, int rank);

// The config one rank runs: n_heads, n_kv_heads, ffn_dim and moe_ffn_dim are the rank's; everything
// else (dim, head_dim, vocab, experts, layers) as in cfg. Every rank's config is the same (the split is
// even), so rank 0's sizes are every rank's. For n = 1 it equals cfg.
ModelConfig shard_config(const ModelConfig& cfg, const ShardPlan& plan);

// The part of one checkpoint tensor a rank holds: whole, a range of its rows or a range of its columns
// (of the tensor as a [rows, cols] matrix; a [n] bias is 1 x n, cut by columns). The same split as
// shard_weights (model/shard_weights.h), by the spec's slot; the loader reads each rank's part straight
// from the checkpoint with it (loader/rank_load.h).
struct TensorSlice {
    enum class Cut { whole, rows, cols } cut = Cut::whole;
    int64_t begin = 0;  // first row / column (cut != whole)
    int64_t size = 0;   // rows / columns (cut != whole)
    // The rank's [rows, cols] of a [rows, cols] tensor.
    int64_t rows(int64_t full_rows) const { return cut == Cut::rows ? size : full_rows; }
    int64_t cols(int64_t full_cols) const { return cut == Cut::cols ? size : full_cols; }
};
TensorSlice shard_slice(const ModelConfig& cfg, const RankShard& shard, const TensorSpec& spec);

// Column slices of a weight in `format` must start and end on its block boundary (int4: groups of 128,
// ggml: its block size). Checks wo (q_heads * head_dim columns a rank) and w2 (ffn / expert_ffn columns)
// for the format; the error names the tensor and both numbers.
Status check_shard_format(const ModelConfig& cfg, const ShardPlan& plan, DType format);

// The column granularity of a weight format: 1 for float and int8 (per-row scales), 128 for int4,
// the block size for ggml formats.
int64_t column_block(DType format);

}  // namespace hr
