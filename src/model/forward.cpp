// The one forward pass: embed -> per layer [norm, attention block, +res, norm, dense MLP | MoE block, +res]
// -> norm -> logits. The blocks are model/blocks.cpp; it calls backend ops only.
#include "model/forward.h"

#include <fmt/format.h>

#include "core/kv_quant.h"

namespace hr {

namespace {

// One layer's k (or v) codes/values, and its scales when the dtype is quantized, each 256-byte aligned.
uint64_t kv_data_bytes(const ModelConfig& cfg, int64_t n_blocks, int block_size, DType dtype) {
    return align_up(static_cast<uint64_t>(n_blocks) * block_size * cfg.kv_dim() * dtype_size(dtype));
}
uint64_t kv_scale_bytes(const ModelConfig& cfg, int64_t n_blocks, int block_size, DType dtype) {
    if (!is_quantized_kv(dtype)) return 0;
    return align_up(static_cast<uint64_t>(n_blocks) * block_size * cfg.n_kv_heads * sizeof(float));
}

}  // namespace

uint64_t kv_cache_bytes(const ModelConfig& cfg, int64_t n_blocks, int block_size, DType dtype) {
    const uint64_t per_tensor =
        kv_data_bytes(cfg, n_blocks, block_size, dtype) + kv_scale_bytes(cfg, n_blocks, block_size, dtype);
    return per_tensor * 2 * static_cast<uint64_t>(cfg.n_layers);
}

uint64_t kv_bytes_per_token(const ModelConfig& cfg, DType dtype) {
    const uint64_t scales = is_quantized_kv(dtype) ? static_cast<uint64_t>(cfg.n_kv_heads) * sizeof(float) : 0;
    return 2 * static_cast<uint64_t>(cfg.n_layers) * (static_cast<uint64_t>(cfg.kv_dim()) * dtype_size(dtype) + scales);
}

KvCache carve_kv_cache(const ModelConfig& cfg, int64_t n_blocks, int block_size, DType dtype, void* base) {
    KvCache kv;
    kv.n_blocks = n_blocks;
    kv.block_size = block_size;
    kv.dtype = dtype;
    const uint64_t data = kv_data_bytes(cfg, n_blocks, block_size, dtype);
    const uint64_t scales = kv_scale_bytes(cfg, n_blocks, block_size, dtype);
    auto* p = static_cast<uint8_t*>(base);
    for (int64_t l = 0; l < cfg.n_layers; ++l) {
        KvLayer layer;
        layer.k = Tensor::make(dtype, p, {n_blocks, block_size, cfg.n_kv_heads, cfg.head_dim});
        p += data;
        layer.v = Tensor::make(dtype, p, {n_blocks, block_size, cfg.n_kv_heads, cfg.head_dim});
        p += data;
        if (scales > 0) {
            layer.k_scale = Tensor::make(DType::f32, p, {n_blocks, block_size, cfg.n_kv_heads});
            p += scales;
            layer.v_scale = Tensor::make(DType::f32, p, {n_blocks, block_size, cfg.n_kv_heads});
            p += scales;
        }
        kv.layers.push_back(layer);
    }
    return kv;
}

namespace {

Status validate_batch(const ModelConfig& cfg, const StepLimits& lim, const KvCache& kv, const StepBatch& b) {
    const size_t T = b.token_ids.size();
    if (T == 0) return errorf("forward: empty batch (expected at least one token)");
    if (static_cast<int64_t>(T) > lim.max_tokens)
        return errorf("forward: batch of {} tokens exceeds the planned step limit of {}", T, lim.max_tokens);
    if (b.positions.size() != T || b.token_seq.size() != T || b.slot_mapping.size() != T)
        return errorf("forward: batch arrays disagree (tokens {}, positions {}, token_seq {}, slot_mapping {})", T,
                      b.positions.size(), b.token_seq.size(), b.slot_mapping.size());
    if (lim.max_blocks_per_seq <= 0 || b.block_tables.size() % lim.max_blocks_per_seq != 0)
        return errorf("forward: block_tables has {} entries, expected a multiple of {}", b.block_tables.size(),
                      lim.max_blocks_per_seq);
    const int64_t n_seqs = static_cast<int64_t>(b.block_tables.size()) / lim.max_blocks_per_seq;
    if (n_seqs > lim.max_seqs) return errorf("forward: {} sequences exceed the planned limit of {}", n_seqs, lim.max_seqs);
    if (b.logit_rows.empty() || static_cast<int64_t>(b.logit_rows.size()) > lim.max_seqs)
        return errorf("forward: {} logit rows requested, expected 1 to {}", b.logit_rows.size(), lim.max_seqs);
    const int64_t max_pos = lim.max_blocks_per_seq * kv.block_size;
    for (size_t t = 0; t < T; ++t) {
        if (b.token_ids[t] < 0 || b.token_ids[t] >= cfg.vocab_size)
            return errorf("forward: token id {} at row {} is outside the vocabulary [0, {})", b.token_ids[t], t,
                          cfg.vocab_size);
        if (b.positions[t] < 0 || b.positions[t] >= max_pos)
            return errorf("forward: position {} at row {} is outside [0, {})", b.positions[t], t, max_pos);
        if (b.token_seq[t] < 0 || b.token_seq[t] >= n_seqs)
            return errorf("forward: token_seq {} at row {} is outside [0, {})", b.token_seq[t], t, n_seqs);
        if (b.slot_mapping[t] < 0 || b.slot_mapping[t] >= kv.n_blocks * kv.block_size)
            return errorf("forward: slot {} at row {} is outside the KV cache [0, {})", b.slot_mapping[t], t,
                          kv.n_blocks * kv.block_size);
    }
    for (int32_t blk : b.block_tables) {
        if (blk < 0 || blk >= kv.n_blocks)
            return errorf("forward: block id {} is outside the KV cache [0, {})", blk, kv.n_blocks);
    }
    for (int32_t r : b.logit_rows) {
        if (r < 0 || static_cast<size_t>(r) >= T) return errorf("forward: logit row {} is outside [0, {})", r, T);
    }
    for (const KvBlockCopy& c : b.block_copies) {
        if (c.src < 0 || c.src >= kv.n_blocks || c.dst < 0 || c.dst >= kv.n_blocks || c.src == c.dst)
            return errorf("forward: block copy {} -> {} is not between two blocks of the KV cache [0, {})", c.src,
                          c.dst, kv.n_blocks);
    }
    return ok();
}

void upload_i32(Backend& be, const Tensor& dst, const std::vector<int32_t>& src) {
    be.upload(dst.data, src.data(), src.size() * sizeof(int32_t));
}

}  // namespace

Result<StepShape> forward_upload(Backend& be, const ModelConfig& cfg, const StepLimits& lim, Activations& a,
                                 KvCache& kv, const StepBatch& b) {
    HR_TRY(validate_batch(cfg, lim, kv, b));
    upload_i32(be, a.token_ids, b.token_ids);
    upload_i32(be, a.positions, b.positions);
    upload_i32(be, a.token_seq, b.token_seq);
    upload_i32(be, a.slot_mapping, b.slot_mapping);
    upload_i32(be, a.block_tables, b.block_tables);
    upload_i32(be, a.logit_rows, b.logit_rows);
    // Before forward_compute: the step's attention writes into the copies.
    if (!b.block_copies.empty()) copy_kv_blocks(be, kv, b.block_copies);
    StepShape sh;
    sh.tokens = static_cast<int64_t>(b.token_ids.size());
    sh.logit_rows = static_cast<int64_t>(b.logit_rows.size());
    sh.n_seqs = static_cast<int64_t>(b.block_tables.size()) / lim.max_blocks_per_seq;
    sh.token_seq = b.token_seq;
    return sh;
}

Status forward(Backend& be, const ModelConfig& cfg, const ModelWeights& w, const StepLimits& lim, Activations& a,
               KvCache& kv, const StepBatch& b, const ActivationTap* tap, Communicator* comm) {
    HR_ASSIGN(const StepShape sh, forward_upload(be, cfg, lim, a, kv, b));
    forward_compute(be, cfg, w, a, kv, sh, tap, comm);
    if (comm) HR_TRY(comm->synchronize());
    return ok();
}

void forward_compute(Backend& be, const ModelConfig& cfg, const ModelWeights& w, Activations& a, KvCache& kv,
                     const StepShape& sh, const ActivationTap* tap, Communicator* comm) {
    // Names are formatted only when a tap is set (never on the serving path).
    const auto emit = [tap](std::string_view name, const Tensor& t) {
        if (tap && *tap) (*tap)(name, t);
    };
    const auto emit_l = [tap](int64_t layer, std::string_view what, const Tensor& t) {
        if (tap && *tap) (*tap)(fmt::format("layer{}.{}", layer, what), t);
    };
    const int64_t T = sh.tokens, S = sh.logit_rows, n_seqs = sh.n_seqs;
    const Tensor x = a.x.first_rows(T), xb = a.xb.first_rows(T), proj = a.proj.first_rows(T);
    const Tensor positions = a.positions.first_rows(T);
    be.embed(x, a.token_ids.first_rows(T), w.embedding);

    AttentionArgs attn;
    attn.out = a.attn_out.first_rows(T);
    attn.q = a.q.first_rows(T).reshaped({T, cfg.n_heads, cfg.head_dim});
    attn.k_new = a.k.first_rows(T).reshaped({T, cfg.n_kv_heads, cfg.head_dim});
    attn.v_new = a.v.first_rows(T).reshaped({T, cfg.n_kv_heads, cfg.head_dim});
    attn.positions = positions;
    attn.token_seq = a.token_seq.first_rows(T);
    attn.slot_mapping = a.slot_mapping.first_rows(T);
    attn.block_tables = a.block_tables.first_rows(n_seqs);
    attn.block_size = kv.block_size;
    attn.scale = 1.0f / std::sqrt(static_cast<float>(cfg.head_dim));
    attn.token_seq_host = sh.token_seq;

    const float eps = static_cast<float>(cfg.norm_eps);
    emit("embed", x);
    for (int64_t l = 0; l < cfg.n_layers; ++l) {
        const LayerWeights& lw = w.layers[static_cast<size_t>(l)];
        // The previous layer's residual add is fused with this norm (add_rms_norm below).
        if (l == 0) be.rms_norm(xb, x, lw.attn_norm, eps);
        emit_l(l, "attn_in", xb);
        attn.cache = kv.layers[static_cast<size_t>(l)];
        attention_block(be, cfg, lw, a, attn, T, tap, l);
        if (comm) comm->all_reduce_sum(proj);  // tensor parallel: the ranks' partial o_proj products
        const bool moe = cfg.layer(l).ffn == FfnKind::moe;
        // x += attention; xb = norm(x); an MoE layer's routing of xb in the same op.
        if (moe) be.add_rms_norm_route(xb, x, proj, lw.ffn_norm, eps, moe_route_args(cfg, lw, a, T));
        else be.add_rms_norm(xb, x, proj, lw.ffn_norm, eps);
        emit_l(l, "ffn_in", xb);

        if (moe) {
            moe_block(be, cfg, lw, a, T, tap, l);
            emit_l(l, "moe_out", proj);
        } else {
            dense_mlp_block(be, lw, a, T);
            emit_l(l, "mlp_out", proj);
        }
        if (comm) comm->all_reduce_sum(proj);  // tensor parallel: the ranks' partial w2 / expert products
        if (l + 1 < cfg.n_layers) be.add_rms_norm(xb, x, proj, w.layers[static_cast<size_t>(l + 1)].attn_norm, eps);
        else be.add(x, proj);
        emit_l(l, "out", x);
    }

    // Only the rows that need logits go through the final norm and the head.
    const Tensor last = a.last_hidden.first_rows(S);
    be.gather_rows(last, x, a.logit_rows.first_rows(S));
    be.rms_norm(last, last, w.final_norm, eps);
    be.matmul(a.logits.first_rows(S), last, w.lm_head);
    emit("final_norm", last);
}

}  // namespace hr
