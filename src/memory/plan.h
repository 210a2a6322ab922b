// The memory planner: from a model config and a request (weight format, KV dtype, context, sequences,
// device memory) to named regions with exact bytes, before anything touches a device. The engine
// allocates exactly these regions, once, at start-up; a plan that does not fit is refused with the
// shortfall and ranked alternatives (suggest.h). Pure: no device, no files. See docs/memory.md.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "memory/devices.h"
#include "memory/expert_offload.h"
#include "memory/units.h"
#include "model/activations.h"
#include "model/config.h"

namespace hr {

// host: pinned host memory (host.experts); not part of a GPU's budget, checked against the host's
// available memory instead (on the CPU target the host is the device and it counts).
enum class RegionKind { weights, kv_cache, activations, workspace, reserve, host };
std::string_view region_kind_name(RegionKind k);

// One row of the plan. Names are dotted: the engine allocates "weights" (all weights.* rows as one
// region), "kv_cache", "activations" (activations.* rows as one region, = activation_bytes()),
// "workspace.backend" and "workspace.library" (on a GPU; "workspace.sampling" is host memory on a GPU,
// 0 device bytes); "reserve" is left free for the CUDA driver and context. With --offload-experts:
// "host.experts" (pinned host memory, one region) and "workspace.expert_staging" (two device buffers of
// one expert each, for streaming offloaded experts during prefill).
struct PlanRegion {
    std::string name;
    uint64_t bytes = 0;
    RegionKind kind = RegionKind::weights;
    std::string note;  // what it holds, for the table
};

enum class PlanTarget { gpu, cpu };

// Defaults, documented in docs/memory.md.
// Reserve on a GPU: left unallocated for what is not ours, counted from the card's nvidia-smi total.
// Measured on H100 / H200 (docs/memory.md): driver reservation 480 / 615 MiB, CUDA context 527 MiB,
// cuBLAS handle 66 MiB, about 1.2 GiB in all; 1.5 GiB leaves a margin for 2 MiB allocation granularity
// and lazily loaded kernel modules.
constexpr uint64_t kDefaultGpuReserveBytes = 1536 * kMiB;
// cuBLAS workspace set with cublasSetWorkspace (NVIDIA recommends 32 MiB on Hopper).
constexpr uint64_t kLibraryWorkspaceBytes = 32 * kMiB;
// The load pipeline's pinned staging on a GPU (loader/load_pipeline.h): one 32 MiB buffer per reader
// thread (at most kLoadMaxThreads) and 4 more queued or copying. Host memory, start-up only.
constexpr int kLoadMaxThreads = 16;
constexpr uint64_t kLoadStagingMaxHostBytes = (kLoadMaxThreads + 4) * 32 * kMiB;
constexpr int64_t kDefaultPrefillChunk = 512;
constexpr int64_t kDefaultContext = 4096;
constexpr int64_t kMaxSequences = 65536;
constexpr int64_t kMaxPrefillChunk = 65536;
constexpr int kMaxBlockSize = 1024;

struct PlanRequest {
    std::optional<DType> weight_format;  // bf16, f16, q8 (int8), q4 (int4); nullopt: auto, best that fits
    DType kv_dtype = DType::f16;         // f16, bf16, f32 (the CPU backend's), i8 or f8_e4m3 (--kv-cache int8 / fp8)
    PlanTarget target = PlanTarget::gpu;
    uint64_t budget_bytes = 0;           // the card's total memory (gpu) or the host memory to use (cpu)
    std::string device_name;             // shown in reports, e.g. "rtx4090" or "24.00 GiB"
    double host_link_gbps = kPcie4x16Gbps;  // for the host-offload speed bound
    std::string host_link = "PCIe 4.0 x16";
    int64_t context = kDefaultContext;   // tokens per sequence (prompt + generated)
    int64_t sequences = 1;               // concurrent sequences
    int64_t prefill_chunk = kDefaultPrefillChunk;  // prompt tokens per step
    std::optional<uint64_t> reserve_bytes;  // nullopt: kDefaultGpuReserveBytes on gpu, 0 on cpu
    // The backend's own workspaces (CudaBackend::workspace_bytes() for the step limits). The engine passes
    // the backend's exact number; nullopt: estimate_cuda_workspace_bytes() on gpu, 0 on cpu.
    std::optional<uint64_t> backend_workspace_bytes;
    bool suggest = true;                 // compute alternatives when it does not fit
    int block_size = 16;                 // tokens per KV block
    // Regions the caller allocates once at start-up besides the engine's own (none in `serve` since
    // classification runs in the engine's KV cache). Fixed sizes: alternatives keep them as they are.
    std::vector<PlanRegion> extra_regions;
    // --offload-experts: nullopt (the flag absent) never offloads anything; auto picks the fewest expert
    // instances that make the plan fit; a count is taken as it is (expert_offload.h places them).
    std::optional<OffloadRequest> offload;
    // Router statistics of the checkpoint (expert_hits.h; null: none): which experts go to host memory
    // (the coldest) and the prediction's selection frequencies. `auto`'s count does not depend on them.
    std::shared_ptr<const ExpertHits> expert_hits;
    // The host's available memory (/proc/meminfo MemAvailable, read by the caller; injected by tests):
    // host.experts must fit in it. nullopt: not checked.
    std::optional<uint64_t> host_available_bytes;
    // The GPU's copy rate and effective matmul rate, for the offload speed prediction (expert_offload.h).
    // Defaults: the planner's default card (h100-80gb in memory/devices.cpp).
    double device_gbps = kH100DeviceGbps;
    double device_tflops = kH100DeviceTflops;
    int64_t predict_prefill_tokens = 2048;  // the prompt length the prefill prediction is for
    // --offload-compute (offload_compute.h): the mode the decode prediction takes (auto: the faster with
    // these rates) and the host's rate computing an expert (a stated default; serve measures its own).
    OffloadCompute offload_compute = OffloadCompute::automatic;
    double cpu_expert_gbps = kDefaultCpuExpertGbps;
    double host_call_ms = kDefaultHostCallMs;
    // --tensor-parallel N: the plan is of one GPU of N, each holding its shard (model/shard.h): the
    // rank-local config's weights, KV cache, activations and workspaces, embedding / norms / router /
    // head whole. Every rank's regions are the same size, so the plan is every GPU's.
    int tensor_parallel = 1;
};

enum class SuggestionKind { weight_format, context, sequences, more_gpus, host_experts, kv_cache };

// An alternative that fits, with its own numbers.
struct Suggestion {
    SuggestionKind kind = SuggestionKind::weight_format;
    std::string text;             // one line for people, with the flags to use
    DType weight_format = DType::bf16;
    DType kv_dtype = DType::f16;  // the request's, or int8 for a kv_cache suggestion
    int64_t context = 0;
    int64_t sequences = 0;
    int n_gpus = 1;
    uint64_t total_bytes = 0;     // per GPU
    uint64_t budget_bytes = 0;    // per GPU
    uint64_t host_bytes = 0;      // host_experts: expert bytes kept in host memory
    int64_t gpu_experts = 0;      // host_experts: experts (over all layers) kept on the GPU
    int64_t host_experts = 0;     // host_experts: the --offload-experts count auto picks
    double decode_tokens_per_s = 0;  // host_experts: predicted batch-1 decode (memory/expert_offload.h)
    bool implemented = true;      // false: headroom cannot run it yet
};

// Weight bytes by role, as stored (see weight_format.h for the per-tensor rules).
struct WeightPlan {
    uint64_t embedding = 0, attention = 0, experts = 0, mlp = 0, norms = 0, router = 0, output_head = 0;
    uint64_t scales = 0;          // quantization scales of every tensor (not in the rows above)
    uint64_t one_expert = 0;      // data + scales of one expert of one layer (w1, w2, w3)
    uint64_t one_expert_data = 0; // of one_expert, the data (the rest are its scales)
    int64_t n_params = 0;         // parameters in the checkpoint
    uint64_t total() const { return embedding + attention + experts + mlp + norms + router + output_head + scales; }
};
WeightPlan plan_weights(const ModelConfig& cfg, DType weight_format);

struct MemoryPlan {
    std::vector<PlanRegion> regions;
    uint64_t total_bytes = 0;
    uint64_t budget_bytes = 0;
    bool fits = false;
    int64_t kv_blocks = 0;        // sequences x ceil(context / block_size)
    int block_size = 16;
    StepLimits limits;
    DType weight_format = DType::bf16;
    bool weight_format_auto = false;
    DType kv_dtype = DType::f16;
    uint64_t kv_bytes_per_token = 0;  // all layers, k and v, scales included (kv_bytes_per_token())
    PlanTarget target = PlanTarget::gpu;
    std::string device_name;
    int64_t context = 0;
    int64_t sequences = 0;
    int64_t n_params = 0;
    std::vector<Suggestion> suggestions;  // ranked; empty when it fits
    int tensor_parallel = 1;              // > 1: the regions are per GPU, on each of this many GPUs
    // Expert offload (only with PlanRequest::offload): the placement, the pinned host bytes it needs, and
    // the predicted speeds at the request's rates.
    ExpertPlacement offload;
    bool offload_requested = false;
    bool offload_auto = false;
    uint64_t host_bytes = 0;                       // = region "host.experts"
    std::optional<uint64_t> host_available_bytes;  // as given in the request
    std::optional<OffloadPrediction> prediction;   // set when experts are offloaded
    OffloadRates rates;
    std::string host_link;

    // Bytes of the region `name`, or the sum of its dotted children ("weights" = weights.*); 0 if none.
    uint64_t region_bytes(std::string_view name) const;
    uint64_t kind_bytes(RegionKind k) const;
    uint64_t shortfall_bytes() const { return total_bytes > budget_bytes ? total_bytes - budget_bytes : 0; }
    uint64_t free_bytes() const { return budget_bytes > total_bytes ? budget_bytes - total_bytes : 0; }
};

// Plans memory for cfg under req. Errors (bad input): non-positive or oversized numbers, a context
// above max_position_embeddings, a dtype that is not a weight format / KV dtype, a zero budget; with
// --offload-experts: a count below 0 or above the model's experts, a model without experts, or
// host.experts larger than host_available_bytes.
// With tensor_parallel > 1: a dimension that does not divide (plan_shards), a column split that cuts a
// quantized format's blocks (check_shard_format), or --offload-experts (not implemented together).
// A plan that does not fit is not an error: fits = false, with shortfall_bytes() and suggestions.
Result<MemoryPlan> plan_memory(const ModelConfig& cfg, const PlanRequest& req);

// An upper estimate of the CUDA backend's workspaces for `headroom plan` without a GPU, following the
// layout of CudaBackend::reserve_workspace(): bf16 activations for cuBLAS [T * k, max in-features], a
// dequantized weight chunk (at most 64 Mi bf16 values), MoE permutation arrays, and 8 MiB for the
// attention split-K partials (which depend on the SM count) and the expert offsets.
uint64_t estimate_cuda_workspace_bytes(const ModelConfig& cfg, const StepLimits& lim);

// The weight formats `auto` tries, best quality first: the checkpoint's f16/bf16, then int8, int4.
std::vector<DType> auto_weight_formats(const ModelConfig& cfg);

}  // namespace hr
