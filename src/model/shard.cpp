// The tensor-parallel split (see shard.h).
#include "model/shard.h"

#include "quant/formats.h"
#include "quant/ggml_blocks.h"

namespace hr {

Result<ShardPlan> plan_shards(const ModelConfig& cfg, int n) {
    if (n < 1 || n > kMaxTensorParallel)
        return errorf("tensor parallel: {} ranks requested, expected 1 to {}", n, kMaxTensorParallel);
    ShardPlan p;
    p.n_ranks = n;
    if (cfg.n_heads <= 0 || cfg.n_kv_heads <= 0 || cfg.n_heads % cfg.n_kv_heads != 0)
        return errorf("tensor parallel: num_attention_heads {} is not a multiple of num_key_value_heads {}",
                      cfg.n_heads, cfg.n_kv_heads);
    if (cfg.n_heads % n != 0)
        return errorf("tensor parallel: num_attention_heads {} does not divide by {} ranks", cfg.n_heads, n);
    p.q_heads = cfg.n_heads / n;
    if (cfg.n_kv_heads % n == 0) {
        p.kv_heads = cfg.n_kv_heads / n;
    } else {
        // Fewer KV heads than ranks: each rank's q heads must share one KV head (one GQA group), which the
        // rank then holds as its own copy.
        const int64_t group = cfg.n_heads / cfg.n_kv_heads;
        if (group % p.q_heads != 0)
            return errorf(
                "tensor parallel: num_key_value_heads {} does not divide by {} ranks, and a rank's {} q heads "
                "straddle groups of {} (they must fall inside one KV head's group)",
                cfg.n_kv_heads, n, p.q_heads, group);
        p.kv_heads = 1;
        p.kv_replicated = true;
    }
    if (cfg.has_dense_layers()) {
        if (cfg.ffn_dim % n != 0)
            return errorf("tensor parallel: intermediate_size {} does not divide by {} ranks", cfg.ffn_dim, n);
        p.ffn = cfg.ffn_dim / n;
    }
    if (cfg.is_moe() && cfg.n_moe_layers() > 0) {
        if (cfg.expert_ffn_dim() % n != 0)
            return errorf("tensor parallel: moe_intermediate_size {} (per expert) does not divide by {} ranks",
                          cfg.expert_ffn_dim(), n);
        p.expert_ffn = cfg.expert_ffn_dim() / n;
    }
    return p;
}

RankShard rank_shard(const ModelConfig& cfg, const ShardPlan& p, int rank) {
    HR_CHECK(rank >= 0 && rank < p.n_ranks);
    RankShard s;
    s.rank = rank;
    s.q_heads = {rank * p.q_heads, (rank + 1) * p.q_heads};
    if (p.kv_replicated) {
        const int64_t group = cfg.n_heads / cfg.n_kv_heads;
        const int64_t kv = s.q_heads.begin / group;
        s.kv_heads = {kv, kv + 1};
    } else {
        s.kv_heads = {rank * p.kv_heads, (rank + 1) * p.kv_heads};
    }
    s.ffn = {rank * p.ffn, (rank + 1) * p.ffn};
    s.expert_ffn = {rank * p.expert_ffn, (rank + 1) * p.expert_ffn};
    return s;
}

ModelConfig shard_config(const ModelConfig& cfg, const ShardPlan& p) {
    ModelConfig c = cfg;
    c.n_heads = p.q_heads;
    c.n_kv_heads = p.kv_heads;
    if (p.ffn > 0) c.ffn_dim = p.ffn;
    if (p.expert_ffn > 0) {
        // expert_ffn_dim() reads moe_ffn_dim, else ffn_dim (Mixtral): keep that rule for the local sizes.
        if (cfg.moe_ffn_dim > 0) c.moe_ffn_dim = p.expert_ffn;
        else c.ffn_dim = p.expert_ffn;
    }
    return c;
}

TensorSlice shard_slice(const ModelConfig& cfg, const RankShard& s, const TensorSpec& spec) {
    using Cut = TensorSlice::Cut;
    const int64_t hd = cfg.head_dim;
    const TensorSlice q{Cut::rows, s.q_heads.begin * hd, s.q_heads.size() * hd};
    const TensorSlice kv{Cut::rows, s.kv_heads.begin * hd, s.kv_heads.size() * hd};
    const auto as_cols = [](TensorSlice t) {
        t.cut = Cut::cols;
        return t;
    };
    switch (spec.slot) {
        case Slot::wq: return q;
        case Slot::wk:
        case Slot::wv: return kv;
        case Slot::bq: return as_cols(q);  // [q_dim] vectors: their columns are the heads
        case Slot::bk:
        case Slot::bv: return as_cols(kv);
        case Slot::wo: return as_cols(q);
        case Slot::mlp_gate:
        case Slot::mlp_up: return {Cut::rows, s.ffn.begin, s.ffn.size()};
        case Slot::mlp_down: return {Cut::cols, s.ffn.begin, s.ffn.size()};
        case Slot::expert_gate:
        case Slot::expert_up: return {Cut::rows, s.expert_ffn.begin, s.expert_ffn.size()};
        case Slot::expert_down: return {Cut::cols, s.expert_ffn.begin, s.expert_ffn.size()};
        case Slot::embedding:
        case Slot::final_norm:
        case Slot::lm_head:
        case Slot::attn_norm:
        case Slot::ffn_norm:
        case Slot::q_norm:
        case Slot::k_norm:
        case Slot::router: return {};
    }
    return {};
}

int64_t column_block(DType format) {
    if (format == DType::q4) return quant::kQ4Group;
    if (is_ggml_block_dtype(format)) return quant::ggml_block_elems(format);
    return 1;
}

Status check_shard_format(const ModelConfig& cfg, const ShardPlan& p, DType format) {
    if (p.n_ranks == 1) return ok();
    const int64_t block = column_block(format);
    const auto check = [&](const char* tensor, int64_t cols) -> Status {
        if (cols % block != 0)
            return errorf("tensor parallel: {} would be split into slices of {} columns, not a multiple of the {} "
                          "block of {} columns",
                          tensor, cols, dtype_name(format), block);
        return ok();
    };
    HR_TRY(check("o_proj", p.q_heads * cfg.head_dim));
    if (p.ffn > 0) HR_TRY(check("down_proj", p.ffn));
    if (p.expert_ffn > 0) HR_TRY(check("experts' down_proj (w2)", p.expert_ffn));
    return ok();
}

}  // namespace hr
