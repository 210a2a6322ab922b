// Activation regions of one forward step: sized once here, used by the planner and carved by the engine.
#include "model/activations.h"

namespace hr {

namespace {

struct Spec {
    const char* name;
    DType dtype;
    int64_t rows;
    int64_t cols;
    Tensor Activations::*field;
};

std::vector<Spec> specs(const ModelConfig& c, const StepLimits& lim) {
    const int64_t T = lim.max_tokens, S = lim.max_seqs, K = c.n_experts_active;
    std::vector<Spec> s = {
        {"act.x", DType::f32, T, c.dim, &Activations::x},
        {"act.xb", DType::f32, T, c.dim, &Activations::xb},
        {"act.q", DType::f32, T, c.q_dim(), &Activations::q},
        {"act.k", DType::f32, T, c.kv_dim(), &Activations::k},
        {"act.v", DType::f32, T, c.kv_dim(), &Activations::v},
        {"act.attn_out", DType::f32, T, c.q_dim(), &Activations::attn_out},
        {"act.proj", DType::f32, T, c.dim, &Activations::proj},
    };
    if (c.is_moe()) {
        const int64_t F = c.expert_ffn_dim();
        s.push_back({"act.router_logits", DType::f32, T, c.n_experts, &Activations::router_logits});
        s.push_back({"act.topk_ids", DType::i32, T, K, &Activations::topk_ids});
        s.push_back({"act.topk_w", DType::f32, T, K, &Activations::topk_w});
        s.push_back({"act.moe_in", DType::f32, T * K, c.dim, &Activations::ws_in});
        s.push_back({"act.moe_gate", DType::f32, T * K, F, &Activations::ws_gate});
        s.push_back({"act.moe_up", DType::f32, T * K, F, &Activations::ws_up});
        s.push_back({"act.moe_out", DType::f32, T * K, c.dim, &Activations::ws_out});
    }
    if (c.has_dense_layers()) {
        s.push_back({"act.mlp_gate", DType::f32, T, c.ffn_dim, &Activations::hb});
        s.push_back({"act.mlp_up", DType::f32, T, c.ffn_dim, &Activations::hb2});
    }
    s.push_back({"batch.token_ids", DType::i32, T, 1, &Activations::token_ids});
    s.push_back({"batch.positions", DType::i32, T, 1, &Activations::positions});
    s.push_back({"batch.token_seq", DType::i32, T, 1, &Activations::token_seq});
    s.push_back({"batch.slot_mapping", DType::i32, T, 1, &Activations::slot_mapping});
    s.push_back({"batch.block_tables", DType::i32, S, lim.max_blocks_per_seq, &Activations::block_tables});
    s.push_back({"batch.logit_rows", DType::i32, S, 1, &Activations::logit_rows});
    s.push_back({"act.last_hidden", DType::f32, S, c.dim, &Activations::last_hidden});
    s.push_back({"logits", DType::f32, S, c.vocab_size, &Activations::logits});
    return s;
}

}  // namespace

std::vector<Region> activation_regions(const ModelConfig& cfg, const StepLimits& lim) {
    std::vector<Region> out;
    for (const Spec& s : specs(cfg, lim)) {
        out.push_back(Region{s.name, align_up(static_cast<uint64_t>(s.rows * s.cols) * dtype_size(s.dtype))});
    }
    return out;
}

uint64_t activation_bytes(const ModelConfig& cfg, const StepLimits& lim) {
    uint64_t total = 0;
    for (const Region& r : activation_regions(cfg, lim)) total += r.bytes;
    return total;
}

Activations carve_activations(const ModelConfig& cfg, const StepLimits& lim, void* base) {
    Activations a;
    auto* p = static_cast<uint8_t*>(base);
    for (const Spec& s : specs(cfg, lim)) {
        Tensor t = s.cols == 1 ? Tensor::make(s.dtype, p, {s.rows}) : Tensor::make(s.dtype, p, {s.rows, s.cols});
        a.*(s.field) = t;
        p += align_up(static_cast<uint64_t>(s.rows * s.cols) * dtype_size(s.dtype));
    }
    return a;
}

}  // namespace hr
