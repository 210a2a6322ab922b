// Planned expert offload (--offload-experts auto|N): which MoE experts live in pinned host memory, and
// what that costs in decode and prefill speed. Pure: no device, no files. See docs/memory.md, "Expert
// offload".
//
// N counts expert instances (layer, expert) over the whole model. They are spread evenly over the MoE
// layers (the same count per layer, one more on each of the last N mod layers); within a layer the
// highest-numbered experts go to the host.
// A model whose experts are all equally likely (Mixtral's router is close to uniform on general text)
// loses nothing by that choice; a hot-expert list from router statistics is not implemented yet.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "model/config.h"

namespace hr {

// The parsed flag: "auto" (the fewest that make the plan fit) or a count.
struct OffloadRequest {
    bool automatic = false;
    int64_t experts = 0;  // with automatic = false
};
// "auto" or a non-negative integer; anything else is an error naming the flag.
Result<OffloadRequest> parse_offload_experts(std::string_view text);

// Where each expert of each layer lives. Default: nothing offloaded.
struct ExpertPlacement {
    int64_t n_host = 0;                   // expert instances in host memory, all layers
    int64_t n_experts = 0;                // experts per MoE layer
    std::vector<int64_t> host_per_layer;  // [n_layers]: host experts of each layer (0 for dense layers)

    bool any() const { return n_host > 0; }
    int64_t host_in_layer(int64_t layer) const {
        return layer >= 0 && layer < static_cast<int64_t>(host_per_layer.size())
                   ? host_per_layer[static_cast<size_t>(layer)] : 0;
    }
    // True when expert `expert` of layer `layer` is kept in host memory (the layer's highest-numbered).
    bool is_host(int64_t layer, int64_t expert) const { return expert >= n_experts - host_in_layer(layer); }
};

// n experts spread over cfg's MoE layers. Errors: n negative, n above the model's expert count, n > 0
// on a model without experts.
Result<ExpertPlacement> place_experts(const ModelConfig& cfg, int64_t n);

// The rates a prediction needs: the host link (pinned host -> device), the GPU's own copy rate (what a
// bandwidth-bound GEMV reads at) and its effective dense matmul rate (prefill). `headroom plan` takes
// them from the card table (memory/devices.h); the bench feeds in the rates it measures.
struct OffloadRates {
    double host_link_gbps = 25.0;  // GB/s (10^9)
    double device_gbps = 900.0;    // GB/s (10^9)
    double device_tflops = 100.0;  // dense bf16 TFLOP/s actually reached by the GEMMs
};

// Bytes of one forward token, split by where the weights it reads live.
struct OffloadPrediction {
    double device_bytes_per_token = 0;  // non-expert weights + the expected resident experts it selects
    double host_bytes_per_token = 0;    // the expected offloaded experts it selects (read over the link)
    double decode_ms = 0;               // batch 1, one token
    double decode_tokens_per_s = 0;
    int64_t prefill_tokens = 0;
    int64_t prefill_chunk = 0;
    double prefill_compute_ms = 0;      // 2 x active parameters x tokens at device_tflops
    double prefill_stream_ms = 0;       // every offloaded expert copied once per chunk, at the link rate
    double prefill_ms = 0;              // with double-buffered streaming: max(compute, stream)
};

// Per-token byte counts and the formulas of docs/memory.md: uniform routing (a token's k experts of a
// layer fall on host experts with probability host_in_layer / n_experts);
//   decode_ms  = device bytes / device_gbps + host bytes / host_link_gbps;
//   prefill_ms = max(compute, stream), stream = chunks x (offloaded bytes) / host_link_gbps (every expert
//                of a layer is selected by some token of a chunk of hundreds of tokens).
// non_expert_bytes: the weights every token reads besides the experts (attention, router, norms, head).
OffloadPrediction predict_offload(const ModelConfig& cfg, uint64_t non_expert_bytes, uint64_t one_expert_bytes,
                                  const ExpertPlacement& placement, const OffloadRates& rates,
                                  int64_t prefill_tokens, int64_t prefill_chunk);

}  // namespace hr
