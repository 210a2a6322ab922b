// Planned expert offload (--offload-experts auto|N): which MoE experts live in pinned host memory, and
// what that costs in decode and prefill speed. Pure: no device, no files. See docs/memory.md, "Expert
// offload".
//
// N counts expert instances (layer, expert) over the whole model. Without router statistics they are
// spread evenly over the MoE layers (the same count per layer, one more on each of the last N mod
// layers); within a layer the highest-numbered experts go to the host, and the prediction assumes
// uniform routing (k / E per expert). With statistics (expert_hits.h, recorded by `headroom quantize
// --calibrate`) the N globally coldest instances go, and the prediction uses the measured frequencies.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "memory/expert_hits.h"
#include "memory/offload_compute.h"
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
    // From router statistics (place_experts with hits): host_mask [n_layers * n_experts] (1 = host) names
    // the experts, hit_freq [n_layers * n_experts] is p(l, e), hit_tokens the T they were measured on.
    // All empty / 0: the highest-numbered rule and uniform routing.
    std::vector<uint8_t> host_mask;
    std::vector<double> hit_freq;
    int64_t hit_tokens = 0;

    bool measured() const { return !hit_freq.empty(); }

    bool any() const { return n_host > 0; }
    int64_t host_in_layer(int64_t layer) const {
        return layer >= 0 && layer < static_cast<int64_t>(host_per_layer.size())
                   ? host_per_layer[static_cast<size_t>(layer)] : 0;
    }
    // True when expert `expert` of layer `layer` is kept in host memory (host_mask, or else the layer's
    // highest-numbered).
    bool is_host(int64_t layer, int64_t expert) const {
        if (!host_mask.empty()) {
            if (layer < 0 || expert < 0 || expert >= n_experts) return false;
            const size_t i = static_cast<size_t>(layer * n_experts + expert);
            return i < host_mask.size() && host_mask[i] != 0;
        }
        return expert >= n_experts - host_in_layer(layer);
    }
    // The experts of `layer` in host memory, ascending.
    std::vector<int64_t> host_experts(int64_t layer) const {
        std::vector<int64_t> out;
        for (int64_t e = 0; e < n_experts; ++e)
            if (host_in_layer(layer) > 0 && is_host(layer, e)) out.push_back(e);
        return out;
    }
    // The selection frequency the prediction uses: measured, or k / E (uniform routing).
    double frequency(int64_t layer, int64_t expert, int64_t k) const {
        if (!measured()) return n_experts > 0 ? static_cast<double>(k) / static_cast<double>(n_experts) : 0;
        const size_t i = static_cast<size_t>(layer * n_experts + expert);
        return i < hit_freq.size() ? hit_freq[i] : 0;
    }
};

// n experts of cfg's MoE layers in host memory. Without hits (null): spread evenly, highest-numbered
// first within a layer. With hits (checked against cfg by parse_expert_hits): the n instances with the
// fewest hits over the whole model (ties: the higher expert number, then the later layer), which
// minimises the expected host bytes per token for n experts of equal size; counts per layer then
// differ. Errors: n negative, n above the model's expert count, n > 0 on a model without experts, hits
// shaped for another model.
Result<ExpertPlacement> place_experts(const ModelConfig& cfg, int64_t n, const ExpertHits* hits = nullptr);

// The GPU's kernels reading pinned host memory in place (zero-copy: decode) reach less of the link than
// cudaMemcpy's large DMA copies (prefill staging): the first H100 run (980cf03) measured 41.3 GB/s for the
// decode GEMVs reading one host expert (the --offload-compute probe) against 55.3 GB/s pinned copies, 0.75.
// Where nothing is measured (plan) the zero-copy rate is this share of the card table's link rate.
constexpr double kZeroCopyShareOfLink = 0.75;

// The rates a prediction needs: the host link (pinned host -> device copies: prefill staging), the GPU
// reading host memory in place (decode, zero-copy), the GPU's own copy rate (what a bandwidth-bound GEMV
// reads at) and its effective dense matmul rate (prefill). `headroom plan` takes them from the card table
// (memory/devices.h); the bench feeds in the rates it measures (the zero-copy one from the probe).
// --offload-compute (offload_compute.h): the host's rate computing an expert, the host-function round
// trip per layer, and the mode asked for (auto: the faster of the two predictions).
struct OffloadRates {
    double host_link_gbps = 25.0;  // GB/s (10^9), pinned host -> device cudaMemcpy
    double device_gbps = 900.0;    // GB/s (10^9)
    double device_tflops = 100.0;  // dense bf16 TFLOP/s actually reached by the GEMMs
    double cpu_gbps = kDefaultCpuExpertGbps;
    double host_call_ms = kDefaultHostCallMs;
    OffloadCompute compute = OffloadCompute::automatic;
    double host_read_gbps = 0;  // GB/s, the GPU reading host memory in place; 0: kZeroCopyShareOfLink x link

    double zero_copy_gbps() const { return host_read_gbps > 0 ? host_read_gbps : kZeroCopyShareOfLink * host_link_gbps; }
};

// Bytes of one forward token, split by where the weights it reads live.
struct OffloadPrediction {
    double device_bytes_per_token = 0;  // non-expert weights + the expected resident experts it selects
    double host_bytes_per_token = 0;    // the expected offloaded experts it selects (read over the link)
    double decode_ms = 0;               // batch 1, one token, in the mode taken (compute)
    double decode_tokens_per_s = 0;
    // Both --offload-compute modes (batch-1 decode): gpu reads the host experts over the link, cpu computes
    // them on the host; `compute` is the choice (rates.compute, auto: the faster), which decode_ms follows.
    double decode_gpu_ms = 0;
    double decode_cpu_ms = 0;
    OffloadComputeChoice compute;
    double host_read_gbps = 0;          // the zero-copy rate the gpu decode term used
    int64_t prefill_tokens = 0;
    int64_t prefill_chunk = 0;
    double prefill_compute_ms = 0;      // measured (every expert resident), or 2 x active parameters x tokens
                                        // at device_tflops (a floor: no kernel reaches the GEMM rate throughout)
    bool prefill_compute_measured = false;
    double prefill_stream_ms = 0;       // every offloaded expert copied once per chunk, at the link rate
    double prefill_ms = 0;              // per chunk and layer, the larger of its compute share and its copies
};

// Expected bytes of the selected host experts per decode token (the host term below), and the MoE layers
// that hold at least one host expert.
double host_expert_bytes_per_token(const ModelConfig& cfg, uint64_t one_expert_bytes, const ExpertPlacement& placement);
int64_t layers_with_host_experts(const ModelConfig& cfg, const ExpertPlacement& placement);

// Per-token byte counts and the formulas of docs/memory.md: a token reads expert (l, e) with probability
// p(l, e), measured (placement.measured(): router statistics, or the bench's own decode steps) or k / E
// (uniform routing), so
//   host bytes / token = sum over host (l, e) of p(l, e) x expert bytes (device: the other experts);
//   decode_ms  = device bytes / device_gbps + host bytes / zero-copy rate            (--offload-compute gpu)
//              = device bytes / device_gbps + host bytes / cpu_gbps + layers with host experts x host_call_ms
//                                                                                    (--offload-compute cpu;
//                the GPU's work on the other experts of a layer that overlaps the host's is not subtracted);
//   prefill_ms = chunks x sum over layers of max(compute / (chunks x layers), h_l x expert / host_link_gbps):
//                each layer's offloaded experts are staged once per chunk (every expert is selected by some
//                token of a chunk of hundreds), overlapping that layer's GEMMs only (the copies start once
//                the layer's expert counts are known). compute = measured_prefill_compute_ms (the same
//                prompt with every expert resident: the bench measures it) or the FLOP floor.
// non_expert_bytes: the weights every token reads besides the experts (attention, router, norms, head).
OffloadPrediction predict_offload(const ModelConfig& cfg, uint64_t non_expert_bytes, uint64_t one_expert_bytes,
                                  const ExpertPlacement& placement, const OffloadRates& rates,
                                  int64_t prefill_tokens, int64_t prefill_chunk,
                                  std::optional<double> measured_prefill_compute_ms = std::nullopt);

}  // namespace hr
