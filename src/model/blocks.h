// The blocks a decoder layer is built from, as sequences of backend ops: attention (optional q/k/v
// bias, optional per-head q/k RMSNorm), dense SwiGLU MLP, and MoE (router, routing variant, experts).
// forward.cpp runs one layer as attention then the layer's FFN kind (ModelConfig::layer()).
#pragma once

#include <functional>
#include <string_view>

#include "backend/backend.h"
#include "model/activations.h"
#include "model/config.h"
#include "model/weights.h"

namespace hr {

// Receives named intermediates while a step's ops are enqueued (e.g. "layer3.attn_out" [T, dim] f32
// in backend memory); a tap may download them (it runs between ops, so the backend must not be
// recording a graph). Null in every normal run.
using ActivationTap = std::function<void(std::string_view name, const Tensor& t)>;

// q, k, v from xb; bias; per-head norm; rotary and paged attention (one op); o_proj into proj.
// attn holds every operand but the layer's cache, which the caller sets. T tokens.
void attention_block(Backend& be, const ModelConfig& cfg, const LayerWeights& w, const Activations& a,
                     AttentionArgs& attn, int64_t T, const ActivationTap* tap, int64_t layer);
// proj = W2 (silu(W1 xb) * W3 xb).
void dense_mlp_block(Backend& be, const LayerWeights& w, const Activations& a, int64_t T);
// The routing of an MoE layer's T tokens (router weights, activations): Backend::add_rms_norm_route.
RouteArgs moe_route_args(const ModelConfig& cfg, const LayerWeights& w, const Activations& a, int64_t T);
// proj = sum over the routed experts of weight * expert(xb); topk_ids / topk_w must hold xb's routing
// (add_rms_norm_route with moe_route_args, which forward.cpp runs to make xb).
void moe_block(Backend& be, const ModelConfig& cfg, const LayerWeights& w, const Activations& a, int64_t T,
               const ActivationTap* tap, int64_t layer);

}  // namespace hr
