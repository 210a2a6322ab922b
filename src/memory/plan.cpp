// The memory planner: weights by role, KV cache, activations of the largest step, workspaces, reserve.
#include "memory/plan.h"

#include <algorithm>
#include <cmath>

#include "core/kv_quant.h"
#include "memory/suggest.h"
#include "memory/weight_format.h"
#include "model/forward.h"
#include "model/shard.h"
#include "model/tensor_names.h"

namespace hr {

std::string_view region_kind_name(RegionKind k) {
    switch (k) {
        case RegionKind::weights: return "weights";
        case RegionKind::kv_cache: return "kv_cache";
        case RegionKind::activations: return "activations";
        case RegionKind::workspace: return "workspace";
        case RegionKind::reserve: return "reserve";
        case RegionKind::host: return "host";
    }
    return "?";
}

uint64_t MemoryPlan::region_bytes(std::string_view name) const {
    uint64_t sum = 0;
    for (const PlanRegion& r : regions) {
        const std::string_view n = r.name;
        if (n == name || (n.size() > name.size() && n.starts_with(name) && n[name.size()] == '.')) sum += r.bytes;
    }
    return sum;
}

uint64_t MemoryPlan::kind_bytes(RegionKind k) const {
    uint64_t sum = 0;
    for (const PlanRegion& r : regions) {
        if (r.kind == k) sum += r.bytes;
    }
    return sum;
}

WeightPlan plan_weights(const ModelConfig& cfg, DType weight_format) {
    WeightPlan w;
    for (const TensorSpec& t : expected_tensors(cfg)) {
        const TensorBytes b =
            stored_tensor_bytes(t, storage_dtype_for(t, weight_format, cfg.torch_dtype, cfg.tensor_dtypes.get()));
        w.n_params += t.numel();
        w.scales += b.scales;
        switch (t.role) {
            case TensorRole::embedding: w.embedding += b.data; break;
            case TensorRole::attention: w.attention += b.data; break;
            case TensorRole::expert:
                w.experts += b.data;
                w.one_expert += b.total();
                w.one_expert_data += b.data;
                break;
            case TensorRole::mlp: w.mlp += b.data; break;
            case TensorRole::norm: w.norms += b.data; break;
            case TensorRole::router: w.router += b.data; break;
            case TensorRole::output_head: w.output_head += b.data; break;
        }
    }
    // Every expert of every layer has the same three shapes, so one expert is the total over the count.
    if (cfg.is_moe() && cfg.n_moe_layers() > 0) {
        w.one_expert /= static_cast<uint64_t>(cfg.n_moe_layers() * cfg.n_experts);
        w.one_expert_data /= static_cast<uint64_t>(cfg.n_moe_layers() * cfg.n_experts);
    }
    return w;
}

uint64_t estimate_cuda_workspace_bytes(const ModelConfig& c, const StepLimits& lim) {
    const int64_t k = std::max<int64_t>(1, c.n_experts_active);
    const int64_t max_cols = std::max({c.dim, c.q_dim(), c.max_ffn_dim()});
    const int64_t max_rows = std::max({c.vocab_size, c.max_ffn_dim(), c.q_dim(), c.dim});
    constexpr int64_t kWeightChunkValues = 64ll << 20;
    const uint64_t pairs = static_cast<uint64_t>(lim.max_tokens * k);
    uint64_t bytes = align_up(pairs * static_cast<uint64_t>(max_cols) * 2);
    bytes += align_up(static_cast<uint64_t>(std::max(std::min(max_rows * max_cols, kWeightChunkValues), max_cols)) * 2);
    bytes += 2 * align_up(pairs * 4);
    bytes += 8 * kMiB;
    return bytes;
}

std::vector<DType> auto_weight_formats(const ModelConfig& cfg) {
    // GGUF: the file's own formats, exactly (converting a Q4 file to int8 costs memory and gains nothing).
    if (cfg.tensor_dtypes) return {cfg.tensor_dtypes->native};
    const DType best = cfg.torch_dtype == DType::f16 ? DType::f16 : DType::bf16;
    return {best, DType::q8, DType::q4};
}

namespace {

// Limits that keep every product below 2^63 and reject configs no real model has.
constexpr int64_t kMaxDim = 1 << 18;
constexpr int64_t kMaxVocab = 1 << 22;
constexpr int64_t kMaxLayers = 1024;
constexpr int64_t kMaxExperts = 1024;
constexpr int64_t kMaxContext = int64_t{1} << 40;  // keeps context + block_size and tokens x sequences exact

Status in_range(const char* what, int64_t v, int64_t lo, int64_t hi) {
    if (v < lo || v > hi) return errorf("{}: expected an integer in [{}, {}], found {}", what, lo, hi, v);
    return ok();
}

Status validate(const ModelConfig& c, const PlanRequest& r) {
    HR_TRY(in_range("model hidden_size", c.dim, 1, kMaxDim));
    HR_TRY(in_range("model intermediate_size", c.ffn_dim, 1, kMaxDim));
    HR_TRY(in_range("model moe_intermediate_size", c.moe_ffn_dim, 0, kMaxDim));
    HR_TRY(in_range("model num_hidden_layers", c.n_layers, 1, kMaxLayers));
    HR_TRY(in_range("model num_attention_heads", c.n_heads, 1, kMaxDim));
    HR_TRY(in_range("model num_key_value_heads", c.n_kv_heads, 1, c.n_heads));
    HR_TRY(in_range("model head_dim", c.head_dim, 1, kMaxDim));
    HR_TRY(in_range("model vocab_size", c.vocab_size, 1, kMaxVocab));
    HR_TRY(in_range("model num_local_experts", c.n_experts, 0, kMaxExperts));
    if (c.is_moe()) HR_TRY(in_range("model num_experts_per_tok", c.n_experts_active, 1, c.n_experts));
    if (c.torch_dtype != DType::bf16 && c.torch_dtype != DType::f16 && c.torch_dtype != DType::f32)
        return errorf("model torch_dtype: expected bfloat16, float16 or float32, found {}", dtype_name(c.torch_dtype));

    if (r.weight_format && !is_weight_format(*r.weight_format))
        return errorf("weight format: expected bf16, f16, int8 or int4, found {}", dtype_name(*r.weight_format));
    if (!is_kv_dtype(r.kv_dtype))
        return errorf("KV cache dtype: expected f16, bf16, f32, int8 or fp8, found {}", dtype_name(r.kv_dtype));
    if (r.budget_bytes == 0) return errorf("device memory: expected a positive size, found 0 bytes");
    HR_TRY(in_range("--sequences", r.sequences, 1, kMaxSequences));
    HR_TRY(in_range("--prefill-chunk", r.prefill_chunk, 1, kMaxPrefillChunk));
    HR_TRY(in_range("--block-size", r.block_size, 1, kMaxBlockSize));
    if (r.context <= 0) return errorf("--context: expected a positive number of tokens, found {}", r.context);
    HR_TRY(check_context(c, r.context));
    // The KV cache is the one product that realistic-looking limits can overflow (a huge
    // max_position_embeddings times many sequences): refuse above 2^62 bytes.
    const uint64_t per_token = kv_bytes_per_token(c, r.kv_dtype);
    HR_TRY(in_range("--context", r.context, 1, kMaxContext));
    const uint64_t seq_tokens = static_cast<uint64_t>((r.context + r.block_size - 1) / r.block_size) *
                                static_cast<uint64_t>(r.block_size);
    if (seq_tokens > (1ull << 62) / per_token / static_cast<uint64_t>(r.sequences))
        return errorf("KV cache of {} sequences x {} tokens at {} bytes per token exceeds 4 EiB; expected a smaller "
                      "--context or --sequences", r.sequences, r.context, per_token);
    if (!(r.host_link_gbps > 0) || !std::isfinite(r.host_link_gbps))
        return errorf("host link bandwidth: expected a positive number of GB/s, found {}", r.host_link_gbps);
    if (!(r.device_gbps > 0) || !std::isfinite(r.device_gbps) || !(r.device_tflops > 0) || !std::isfinite(r.device_tflops))
        return errorf("device rates: expected positive GB/s and TFLOP/s, found {} and {}", r.device_gbps, r.device_tflops);
    if (r.offload && !r.offload->automatic) {
        // The count itself (negative, too many, no experts) is checked by place_experts.
        HR_TRY(place_experts(c, r.offload->experts, r.expert_hits.get()));
    } else if (r.offload && (!c.is_moe() || c.n_moe_layers() == 0)) {
        return errorf("--offload-experts auto: the model has no MoE experts to keep in host memory");
    }
    // Statistics shaped for another model are refused here, before any placement uses them.
    if (r.offload && r.expert_hits && c.is_moe() && c.n_moe_layers() > 0)
        HR_TRY(place_experts(c, c.n_moe_layers() * c.n_experts, r.expert_hits.get()));
    HR_TRY(in_range("prediction prompt tokens", r.predict_prefill_tokens, 1, kMaxContext));
    if (!(r.cpu_expert_gbps > 0 && r.cpu_expert_gbps < 1e6) || !(r.host_call_ms >= 0 && r.host_call_ms < 1e3))
        return errorf("--offload-compute: the host's expert rate must be positive GB/s and the host call time "
                      "non-negative ms (found {} GB/s, {} ms)", r.cpu_expert_gbps, r.host_call_ms);
    return ok();
}

std::string shape_note(DType dt, int64_t rows, int64_t cols) {
    return fmt::format("{} [{}, {}]", dtype_name(dt), rows, cols);
}

// `placement`: experts kept in host memory (none unless --offload-experts); it was checked by validate().
MemoryPlan build(const ModelConfig& c, const PlanRequest& r, DType wf, const ExpertPlacement& placement) {
    MemoryPlan p;
    p.weight_format = wf;
    p.weight_format_auto = !r.weight_format.has_value();
    p.kv_dtype = r.kv_dtype;
    p.kv_bytes_per_token = kv_bytes_per_token(c, r.kv_dtype);
    p.target = r.target;
    p.device_name = r.device_name;
    p.context = r.context;
    p.sequences = r.sequences;
    p.block_size = r.block_size;
    p.budget_bytes = r.budget_bytes;

    const WeightPlan w = plan_weights(c, wf);
    p.n_params = w.n_params;
    const DType ck = c.torch_dtype;
    auto add = [&](std::string name, uint64_t bytes, RegionKind kind, std::string note) {
        p.regions.push_back(PlanRegion{std::move(name), bytes, kind, std::move(note)});
    };
    const std::string wf_name = c.tensor_dtypes && wf == c.tensor_dtypes->native
                                    ? fmt::format("as the GGUF stores them (mostly {})", dtype_name(wf))
                                    : std::string(dtype_name(wf));
    const TensorSpec embd{"model.embed_tokens.weight", {c.vocab_size, c.dim}, TensorRole::embedding, -1, false};
    add("weights.embedding", w.embedding, RegionKind::weights,
        shape_note(storage_dtype_for(embd, wf, ck, c.tensor_dtypes.get()), c.vocab_size, c.dim));
    add("weights.attention", w.attention, RegionKind::weights,
        fmt::format("{}, {} layers x q, k, v, o{}", wf_name, c.n_layers, c.qkv_bias ? " (+ q, k, v bias)" : ""));
    const int64_t moe_layers = c.n_moe_layers();
    const uint64_t n_host = static_cast<uint64_t>(placement.n_host);
    const uint64_t host_data = n_host * w.one_expert_data, host_scales = n_host * (w.one_expert - w.one_expert_data);
    if (moe_layers > 0) {
        add("weights.experts", w.experts - host_data, RegionKind::weights,
            n_host == 0 ? fmt::format("{}, {} layers x {} experts x w1, w2, w3", wf_name, moe_layers, c.n_experts)
                        : fmt::format("{}, {} of {} experts x w1, w2, w3 ({} in host memory)", wf_name,
                                      moe_layers * c.n_experts - placement.n_host, moe_layers * c.n_experts,
                                      placement.n_host));
        add("weights.router", w.router, RegionKind::weights, fmt::format("{}, {} layers", dtype_name(ck), moe_layers));
    }
    if (moe_layers < c.n_layers)
        add("weights.mlp", w.mlp, RegionKind::weights,
            fmt::format("{}, {} layers x gate, up, down", wf_name, c.n_layers - moe_layers));
    add("weights.norms", w.norms, RegionKind::weights,
        fmt::format("{}, {} vectors", dtype_name(ck), (c.qk_norm ? 4 : 2) * c.n_layers + 1));
    if (c.tie_word_embeddings) {
        add("weights.output_head", 0, RegionKind::weights, "tied: reads the embedding table");
    } else {
        const TensorSpec head{"lm_head.weight", {c.vocab_size, c.dim}, TensorRole::output_head, -1, true, Slot::lm_head};
        add("weights.output_head", w.output_head, RegionKind::weights,
            shape_note(storage_dtype_for(head, wf, ck, c.tensor_dtypes.get()), c.vocab_size, c.dim));
    }
    if (w.scales > 0)
        add("weights.scales", w.scales - host_scales, RegionKind::weights,
            n_host == 0 ? "quantization scales of every quantized tensor"
                        : "quantization scales of every quantized tensor on the device");
    if (n_host > 0) {
        // One pinned, mapped region (CUDA: cudaHostAlloc), allocated once at start-up like the weights.
        p.host_bytes = n_host * w.one_expert;
        int64_t lo = c.n_experts, hi = 0;
        for (int64_t l = 0; l < c.n_layers; ++l) {
            if (!c.layer_is_moe(l)) continue;
            lo = std::min(lo, placement.host_in_layer(l));
            hi = std::max(hi, placement.host_in_layer(l));
        }
        add("host.experts", p.host_bytes, RegionKind::host,
            fmt::format("pinned host memory: {} experts x w1, w2, w3 + scales ({} each), {} per MoE layer",
                        placement.n_host, format_bytes(w.one_expert),
                        lo == hi ? std::to_string(lo) : fmt::format("{} to {}", lo, hi)));
    }

    const int64_t blocks_per_seq = (r.context + r.block_size - 1) / r.block_size;
    p.kv_blocks = r.sequences * blocks_per_seq;
    add("kv_cache", kv_cache_bytes(c, p.kv_blocks, r.block_size, r.kv_dtype), RegionKind::kv_cache,
        fmt::format("{}, {} blocks x {} tokens ({} x {} tokens), {} layers x k, v{}; {} per token",
                    kv_dtype_name(r.kv_dtype), p.kv_blocks, r.block_size, r.sequences, blocks_per_seq * r.block_size,
                    c.n_layers, is_quantized_kv(r.kv_dtype) ? " + f32 scale per token and kv head" : "",
                    format_bytes(p.kv_bytes_per_token)));

    // A step holds one prefill chunk (or one token of every sequence), and never more tokens than all
    // sequences can hold.
    p.limits.max_tokens = std::min(std::max(r.prefill_chunk, r.sequences), r.sequences * r.context);
    p.limits.max_seqs = r.sequences;
    p.limits.max_blocks_per_seq = blocks_per_seq;
    uint64_t logits = 0, step = 0;
    for (const Region& a : activation_regions(c, p.limits)) (a.name == "logits" ? logits : step) += a.bytes;
    add("activations.step", step, RegionKind::activations,
        fmt::format("f32, largest step: {} tokens of {} sequence{}", p.limits.max_tokens, p.limits.max_seqs,
                    p.limits.max_seqs == 1 ? "" : "s"));
    add("activations.logits", logits, RegionKind::activations, fmt::format("f32 [{}, {}]", r.sequences, c.vocab_size));

    // The engine samples on the host from a [S, vocab] f32 logits staging buffer: host memory, which is
    // the budget on the CPU and not device memory on a GPU.
    const uint64_t sampling =
        r.target == PlanTarget::cpu ? align_up(static_cast<uint64_t>(r.sequences * c.vocab_size) * 4) : 0;
    add("workspace.sampling", sampling, RegionKind::workspace,
        r.target == PlanTarget::cpu ? fmt::format("host logits staging f32 [{}, {}] for the sampler", r.sequences, c.vocab_size)
                                    : "sampling runs on the host from the downloaded logits");
    // Loading streams the weights through pinned host buffers (loader/load_pipeline.h), freed once they
    // have landed: host memory during start-up only, never device memory; on the CPU they are written in place.
    add("staging.load", 0, RegionKind::workspace,
        r.target == PlanTarget::gpu
            ? fmt::format("host, while loading: up to {} pinned ({} reader threads + 4 buffers of 32 MiB)",
                          format_bytes(kLoadStagingMaxHostBytes), kLoadMaxThreads)
            : "none: weights are written in place");
    if (r.target == PlanTarget::gpu) {
        const bool exact = r.backend_workspace_bytes.has_value();
        add("workspace.backend", exact ? *r.backend_workspace_bytes : estimate_cuda_workspace_bytes(c, p.limits),
            RegionKind::workspace,
            exact ? "CUDA backend workspaces (from the backend)"
                  : "CUDA backend workspaces: bf16 GEMM inputs, weight chunk, attention partials (estimate)");
        add("workspace.library", kLibraryWorkspaceBytes, RegionKind::workspace, "cuBLAS workspace");
        if (n_host > 0)
            add("workspace.expert_staging", 2 * w.one_expert, RegionKind::workspace,
                fmt::format("2 x one expert ({}): offloaded experts streamed in during prefill (double-buffered)",
                            format_bytes(w.one_expert)));
    } else if (r.backend_workspace_bytes.value_or(0) > 0) {
        add("workspace.backend", *r.backend_workspace_bytes, RegionKind::workspace, "backend workspaces (from the backend)");
    }
    for (const PlanRegion& x : r.extra_regions) add(x.name, x.bytes, x.kind, x.note);
    const uint64_t reserve = r.reserve_bytes.value_or(r.target == PlanTarget::gpu ? kDefaultGpuReserveBytes : 0);
    if (reserve > 0) add("reserve", reserve, RegionKind::reserve, "left free: driver, CUDA context, cuBLAS handle, margin");

    // Host regions are not the GPU's memory; on the CPU the host is the device.
    for (const PlanRegion& reg : p.regions)
        if (reg.kind != RegionKind::host || r.target == PlanTarget::cpu) p.total_bytes += reg.bytes;
    p.fits = p.total_bytes <= p.budget_bytes;

    p.offload = placement;
    p.offload_requested = r.offload.has_value();
    p.offload_auto = r.offload && r.offload->automatic;
    p.host_available_bytes = r.host_available_bytes;
    p.rates = OffloadRates{r.host_link_gbps, r.device_gbps, r.device_tflops, r.cpu_expert_gbps, r.host_call_ms,
                           r.offload_compute};
    p.host_link = r.host_link;
    if (n_host > 0) {
        const uint64_t all_experts = w.one_expert * static_cast<uint64_t>(moe_layers * c.n_experts);
        const uint64_t non_expert = w.total() - all_experts - w.embedding;
        p.prediction = predict_offload(c, non_expert, w.one_expert, placement, p.rates, r.predict_prefill_tokens,
                                       r.prefill_chunk);
    }
    return p;
}

}  // namespace

namespace {

// Checked by validate() (the count, and the statistics' shape with the request's count or with 0 < n).
ExpertPlacement placed(const ModelConfig& cfg, const PlanRequest& req, int64_t n) {
    return std::move(place_experts(cfg, n, req.expert_hits.get())).value();
}

// --offload-experts auto in format wf: the fewest expert instances that make the plan fit (the device
// bytes fall as n grows once the staging buffers exist, so the search is a bisection over 1..all);
// nullopt when not even all of them in host memory fit.
std::optional<MemoryPlan> fewest_offload(const ModelConfig& cfg, const PlanRequest& req, DType wf) {
    MemoryPlan none = build(cfg, req, wf, placed(cfg, req, 0));
    if (none.fits) return none;
    const int64_t total = cfg.n_moe_layers() * cfg.n_experts;
    MemoryPlan all = build(cfg, req, wf, placed(cfg, req, total));
    if (!all.fits) return std::nullopt;
    int64_t lo = 1, hi = total;  // hi fits
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (build(cfg, req, wf, placed(cfg, req, mid)).fits) hi = mid;
        else lo = mid + 1;
    }
    return build(cfg, req, wf, placed(cfg, req, hi));
}

Status check_host_memory(const MemoryPlan& p) {
    if (!p.host_available_bytes || p.target != PlanTarget::gpu || p.host_bytes <= *p.host_available_bytes) return ok();
    return errorf("--offload-experts: {} experts need {} of pinned host memory (host.experts) but the host has only "
                  "{} available (MemAvailable); expected fewer experts in host memory, a smaller --weights format "
                  "or more host memory", p.offload.n_host, format_bytes(p.host_bytes),
                  format_bytes(*p.host_available_bytes));
}

}  // namespace

Result<MemoryPlan> plan_memory(const ModelConfig& full, const PlanRequest& req) {
    HR_TRY(validate(full, req));
    // Tensor parallel: plan one rank's shard; the rest of this function sees the rank-local config.
    HR_ASSIGN(const ShardPlan shards, plan_shards(full, req.tensor_parallel));
    if (shards.n_ranks > 1 && req.offload)
        return errorf("--offload-experts with --tensor-parallel {}: not implemented (expected one of the two)",
                      shards.n_ranks);
    const ModelConfig cfg = shard_config(full, shards);
    std::vector<DType> formats =
        req.weight_format ? std::vector<DType>{*req.weight_format} : auto_weight_formats(cfg);
    if (req.weight_format) {
        HR_TRY(check_shard_format(full, shards, *req.weight_format));
    } else {
        std::erase_if(formats, [&](DType f) { return !check_shard_format(full, shards, f).ok(); });
        if (formats.empty()) HR_TRY(check_shard_format(full, shards, auto_weight_formats(cfg).back()));
    }
    const bool automatic = req.offload && req.offload->automatic;
    const ExpertPlacement fixed = placed(cfg, req, req.offload && !automatic ? req.offload->experts : 0);
    MemoryPlan plan;
    for (DType wf : formats) {
        plan = build(cfg, req, wf, fixed);
        if (plan.fits) break;  // auto: the first (best quality) that fits; else the smallest, refused
    }
    if (!plan.fits && automatic) {
        // Nothing fits with every expert on the GPU: the format that needs the fewest experts in host
        // memory (the best quality among equals). Without the flag this never runs.
        std::optional<MemoryPlan> best;
        for (DType wf : formats) {
            std::optional<MemoryPlan> p = fewest_offload(cfg, req, wf);
            if (p && (!best || p->offload.n_host < best->offload.n_host)) best = std::move(p);
        }
        if (best) plan = std::move(*best);
    }
    if (plan.fits) HR_TRY(check_host_memory(plan));
    plan.tensor_parallel = shards.n_ranks;
    if (shards.n_ranks > 1) plan.n_params = plan_weights(full, plan.weight_format).n_params;  // the model's, not a shard's
    if (!plan.fits && req.suggest) plan.suggestions = suggest_alternatives(full, req, plan);
    return plan;
}

}  // namespace hr
