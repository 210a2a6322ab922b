// Binding of loaded tensors to ModelWeights members by named slot, and the completeness check.
#include "model/weights.h"

#include <fmt/format.h>

namespace hr {

void init_weights(const ModelConfig& cfg, ModelWeights& w) {
    w = ModelWeights{};
    w.layers.resize(static_cast<size_t>(cfg.n_layers));
    for (int64_t l = 0; l < cfg.n_layers; ++l) {
        if (!cfg.layer_is_moe(l)) continue;
        LayerWeights& lw = w.layers[static_cast<size_t>(l)];
        lw.ew1.resize(static_cast<size_t>(cfg.n_experts));
        lw.ew2.resize(static_cast<size_t>(cfg.n_experts));
        lw.ew3.resize(static_cast<size_t>(cfg.n_experts));
    }
}

namespace {

Weight& expert_member(std::vector<Weight>& v, const TensorSpec& s) {
    HR_CHECK_MSG(s.expert >= 0 && static_cast<size_t>(s.expert) < v.size(),
                 fmt::format("bind_weight: {} has expert {} outside the layer's {} experts", s.hf_name, s.expert,
                             v.size()));
    return v[static_cast<size_t>(s.expert)];
}

Weight& member(ModelWeights& w, const TensorSpec& s) {
    switch (s.slot) {
        case Slot::embedding: return w.embedding;
        case Slot::final_norm: return w.final_norm;
        case Slot::lm_head: return w.lm_head;
        default: break;
    }
    HR_CHECK_MSG(s.layer >= 0 && static_cast<size_t>(s.layer) < w.layers.size(),
                 fmt::format("bind_weight: {} has layer {} outside [0, {})", s.hf_name, s.layer, w.layers.size()));
    LayerWeights& lw = w.layers[static_cast<size_t>(s.layer)];
    switch (s.slot) {
        case Slot::attn_norm: return lw.attn_norm;
        case Slot::ffn_norm: return lw.ffn_norm;
        case Slot::wq: return lw.wq;
        case Slot::wk: return lw.wk;
        case Slot::wv: return lw.wv;
        case Slot::wo: return lw.wo;
        case Slot::bq: return lw.bq;
        case Slot::bk: return lw.bk;
        case Slot::bv: return lw.bv;
        case Slot::q_norm: return lw.q_norm;
        case Slot::k_norm: return lw.k_norm;
        case Slot::mlp_gate: return lw.w1;
        case Slot::mlp_up: return lw.w3;
        case Slot::mlp_down: return lw.w2;
        case Slot::router: return lw.router;
        case Slot::expert_gate: return expert_member(lw.ew1, s);
        case Slot::expert_up: return expert_member(lw.ew3, s);
        case Slot::expert_down: return expert_member(lw.ew2, s);
        default: break;
    }
    HR_CHECK_MSG(false, "bind_weight: unhandled slot");
    return w.embedding;
}

Status need(const Weight& x, std::string_view what, int64_t layer, int64_t rows, int64_t cols) {
    if (!x.data) return errorf("weights: {} of layer {} is not bound", what, layer);
    if (x.rows != rows || x.cols != cols)
        return errorf("weights: {} of layer {} is [{}, {}], expected [{}, {}]", what, layer, x.rows, x.cols, rows, cols);
    return ok();
}

}  // namespace

void bind_weight(ModelWeights& w, const TensorSpec& spec, const Weight& view) {
    Weight& m = member(w, spec);
    HR_CHECK_MSG(m.data == nullptr, fmt::format("bind_weight: slot {} bound twice (second: {})", slot_name(spec.slot),
                                                spec.hf_name));
    m = view;
}

Status finish_weights(const ModelConfig& c, ModelWeights& w) {
    if (c.tie_word_embeddings) {
        if (w.lm_head.data) return errorf("weights: lm_head bound although the embeddings are tied");
        w.lm_head = w.embedding;
    }
    HR_TRY(need(w.embedding, "embedding", -1, c.vocab_size, c.dim));
    HR_TRY(need(w.final_norm, "final_norm", -1, 1, c.dim));
    HR_TRY(need(w.lm_head, "lm_head", -1, c.vocab_size, c.dim));
    if (static_cast<int64_t>(w.layers.size()) != c.n_layers)
        return errorf("weights: {} layers, expected {}", w.layers.size(), c.n_layers);
    for (int64_t l = 0; l < c.n_layers; ++l) {
        const LayerWeights& lw = w.layers[static_cast<size_t>(l)];
        const LayerDesc d = c.layer(l);
        HR_TRY(need(lw.attn_norm, "attn_norm", l, 1, c.dim));
        HR_TRY(need(lw.ffn_norm, "ffn_norm", l, 1, c.dim));
        HR_TRY(need(lw.wq, "wq", l, c.q_dim(), c.dim));
        HR_TRY(need(lw.wk, "wk", l, c.kv_dim(), c.dim));
        HR_TRY(need(lw.wv, "wv", l, c.kv_dim(), c.dim));
        HR_TRY(need(lw.wo, "wo", l, c.dim, c.q_dim()));
        if (d.qkv_bias) {
            HR_TRY(need(lw.bq, "bq", l, 1, c.q_dim()));
            HR_TRY(need(lw.bk, "bk", l, 1, c.kv_dim()));
            HR_TRY(need(lw.bv, "bv", l, 1, c.kv_dim()));
        }
        if (d.qk_norm) {
            HR_TRY(need(lw.q_norm, "q_norm", l, 1, c.head_dim));
            HR_TRY(need(lw.k_norm, "k_norm", l, 1, c.head_dim));
        }
        if (d.ffn == FfnKind::moe) {
            const int64_t f = c.expert_ffn_dim();
            HR_TRY(need(lw.router, "router", l, c.n_experts, c.dim));
            for (int64_t e = 0; e < c.n_experts; ++e) {
                const auto i = static_cast<size_t>(e);
                HR_TRY(need(lw.ew1[i], fmt::format("expert {} gate", e), l, f, c.dim));
                HR_TRY(need(lw.ew3[i], fmt::format("expert {} up", e), l, f, c.dim));
                HR_TRY(need(lw.ew2[i], fmt::format("expert {} down", e), l, c.dim, f));
            }
        } else {
            HR_TRY(need(lw.w1, "mlp gate", l, c.ffn_dim, c.dim));
            HR_TRY(need(lw.w3, "mlp up", l, c.ffn_dim, c.dim));
            HR_TRY(need(lw.w2, "mlp down", l, c.dim, c.ffn_dim));
        }
    }
    return ok();
}

}  // namespace hr
