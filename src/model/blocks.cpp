// The shared layer blocks (see blocks.h): each is a fixed sequence of backend ops.
#include "model/blocks.h"

#include <fmt/format.h>

namespace hr {

namespace {

void emit(const ActivationTap* tap, int64_t layer, std::string_view what, const Tensor& t) {
    if (tap && *tap) (*tap)(fmt::format("layer{}.{}", layer, what), t);
}

}  // namespace

void attention_block(Backend& be, const ModelConfig& cfg, const LayerWeights& w, const Activations& a,
                     AttentionArgs& attn, int64_t T, const ActivationTap* tap, int64_t l) {
    const Tensor xb = a.xb.first_rows(T);
    const Tensor q = a.q.first_rows(T), k = a.k.first_rows(T), v = a.v.first_rows(T);
    const MatmulJob qkv[] = {{q, &w.wq}, {k, &w.wk}, {v, &w.wv}};
    be.matmuls(xb, qkv);
    const LayerDesc d = cfg.layer(l);
    if (d.qkv_bias) {
        be.add_bias(q, w.bq);
        be.add_bias(k, w.bk);
        be.add_bias(v, w.bv);
    }
    if (d.qk_norm) {
        // RMSNorm over head_dim for every head of every token: rows of a [T * heads, head_dim] view.
        const float eps = static_cast<float>(cfg.norm_eps);
        const Tensor qh = q.reshaped({T * cfg.n_heads, cfg.head_dim});
        const Tensor kh = k.reshaped({T * cfg.n_kv_heads, cfg.head_dim});
        be.rms_norm(qh, qh, w.q_norm, eps);
        be.rms_norm(kh, kh, w.k_norm, eps);
    }
    emit(tap, l, "q", q);  // before rotary, as transformers' q_proj (+ q_norm) hooks see it
    emit(tap, l, "k", k);
    emit(tap, l, "v", v);
    be.rope_attention(attn, static_cast<float>(cfg.rope_theta));  // rotary, cache write, attention
    be.matmul(a.proj.first_rows(T), attn.out, w.wo);
    emit(tap, l, "attn_out", a.proj.first_rows(T));
}

void dense_mlp_block(Backend& be, const LayerWeights& w, const Activations& a, int64_t T) {
    Tensor gate = a.hb.first_rows(T), up = a.hb2.first_rows(T);
    be.matmul(gate, a.xb.first_rows(T), w.w1);
    be.matmul(up, a.xb.first_rows(T), w.w3);
    be.silu_mul(gate, gate, up);
    be.matmul(a.proj.first_rows(T), gate, w.w2);
}

RouteArgs moe_route_args(const ModelConfig& cfg, const LayerWeights& w, const Activations& a, int64_t T) {
    RouteArgs r;
    r.topk_ids = a.topk_ids.first_rows(T);
    r.topk_w = a.topk_w.first_rows(T);
    r.router_logits = a.router_logits.first_rows(T);
    r.router = &w.router;
    r.renormalize = cfg.routing == MoeRouting::softmax_topk_renorm;
    return r;
}

void moe_block(Backend& be, const ModelConfig& cfg, const LayerWeights& w, const Activations& a, int64_t T,
               const ActivationTap* tap, int64_t l) {
    const int64_t TK = T * cfg.n_experts_active;
    // Routed already, by the add_rms_norm_route that made xb (forward.cpp).
    emit(tap, l, "router_logits", a.router_logits.first_rows(T));
    emit(tap, l, "topk_ids", a.topk_ids.first_rows(T));  // i32 [T, k]: router statistics (--calibrate)
    MoeArgs m;
    m.out = a.proj.first_rows(T);
    m.in = a.xb.first_rows(T);
    m.topk_ids = a.topk_ids.first_rows(T);
    m.topk_w = a.topk_w.first_rows(T);
    m.experts = ExpertWeights{w.ew1, w.ew3, w.ew2};
    m.ws_in = a.ws_in.first_rows(TK);
    m.ws_gate = a.ws_gate.first_rows(TK);
    m.ws_up = a.ws_up.first_rows(TK);
    m.ws_out = a.ws_out.first_rows(TK);
    be.moe_experts(m);
}

}  // namespace hr
