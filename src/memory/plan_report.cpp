// Table and JSON renderings of a MemoryPlan.
#include "memory/plan_report.h"

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "memory/weight_format.h"

namespace hr {

std::string_view suggestion_kind_name(SuggestionKind k) {
    switch (k) {
        case SuggestionKind::weight_format: return "weight_format";
        case SuggestionKind::context: return "context";
        case SuggestionKind::sequences: return "sequences";
        case SuggestionKind::more_gpus: return "more_gpus";
        case SuggestionKind::host_experts: return "host_experts";
        case SuggestionKind::kv_cache: return "kv_cache";
    }
    return "?";
}

namespace {

std::string percent(uint64_t part, uint64_t whole) {
    return fmt::format("{:.1f}%", 100.0 * static_cast<double>(part) / static_cast<double>(whole));
}

std::string format_label(const MemoryPlan& p) {
    return fmt::format("{}{}", dtype_name(p.weight_format), p.weight_format_auto ? " (auto)" : "");
}

// The offload choice: experts per layer on the GPU and in host memory, and the predicted speeds.
std::string offload_text(const MemoryPlan& p) {
    std::string out;
    if (!p.offload.any()) {
        out += fmt::format("\nexpert offload ({}): none needed, every expert stays on the GPU.\n",
                           p.offload_auto ? "--offload-experts auto" : "--offload-experts 0");
        return out;
    }
    const ExpertPlacement& o = p.offload;
    out += fmt::format("\nexpert offload (--offload-experts {}{}): {} expert instances in pinned host memory ({})\n",
                       p.offload_auto ? "auto = " : "", o.n_host, o.n_host, format_bytes(p.host_bytes));
    // Runs of layers with the same split, e.g. "layers 0-15: 7 on GPU, 1 in host memory (experts 7)".
    const auto n_layers = static_cast<int64_t>(o.host_per_layer.size());
    auto experts_of = [&](int64_t l) {
        const int64_t h = o.host_in_layer(l);
        if (h == 0) return std::string("none");
        if (!o.host_mask.empty()) return fmt::format("{}", fmt::join(o.host_experts(l), ", "));
        return h == 1 ? std::to_string(o.n_experts - 1) : fmt::format("{}-{}", o.n_experts - h, o.n_experts - 1);
    };
    for (int64_t l = 0; l < n_layers;) {
        const int64_t h = o.host_in_layer(l);
        const std::string experts = experts_of(l);
        int64_t e = l;
        while (e + 1 < n_layers && o.host_in_layer(e + 1) == h && experts_of(e + 1) == experts) ++e;
        out += fmt::format("  layers {}-{}: {} experts on the GPU, {} in host memory (experts {})\n", l, e,
                           o.n_experts - h, h, experts);
        l = e + 1;
    }
    out += o.measured()
               ? fmt::format("  placement: the coldest experts by router statistics ({} calibration tokens, {}); "
                             "the prediction uses their measured selection frequencies\n",
                             o.hit_tokens, kExpertHitsKey)
               : std::string("  placement: uniform routing assumed (the checkpoint has no router statistics; "
                             "`headroom quantize --calibrate` records them)\n");
    if (p.host_available_bytes)
        out += fmt::format("  host memory: {} of {} available (MemAvailable)\n", format_bytes(p.host_bytes),
                           format_bytes(*p.host_available_bytes));
    if (p.prediction) {
        const OffloadPrediction& x = *p.prediction;
        const OffloadComputeChoice& cc = x.compute;
        out += fmt::format("  predicted decode (batch 1, --offload-compute {} -> {}): {:.1f} tokens/s ({:.2f} ms/token)\n",
                           offload_compute_name(cc.requested), cc.mode_name(), x.decode_tokens_per_s, x.decode_ms);
        out += fmt::format("    gpu: {:.1f} tokens/s ({:.2f} ms: {} from the GPU at {:.0f} GB/s, {} of host experts read "
                           "in place over {} at {:.1f} GB/s, the zero-copy rate: {:.0f}% of its {:.1f} GB/s copies)\n",
                           1e3 / x.decode_gpu_ms, x.decode_gpu_ms,
                           format_bytes(static_cast<uint64_t>(x.device_bytes_per_token)), p.rates.device_gbps,
                           format_bytes(static_cast<uint64_t>(x.host_bytes_per_token)),
                           p.host_link.empty() ? "the host link" : p.host_link, x.host_read_gbps,
                           p.rates.host_link_gbps > 0 ? 100 * x.host_read_gbps / p.rates.host_link_gbps : 0,
                           p.rates.host_link_gbps);
        out += fmt::format("    cpu: {:.1f} tokens/s ({:.2f} ms: the same GPU bytes, the host experts computed by the "
                           "CPU at {:.1f} GB/s (stated default; serve measures it), {} layers x {:.3f} ms host call)\n",
                           1e3 / x.decode_cpu_ms, x.decode_cpu_ms, p.rates.cpu_gbps, cc.host_layers,
                           p.rates.host_call_ms);
        out += fmt::format("  predicted prefill of {} tokens: {:.0f} ms (compute {:.0f} ms{}, streaming {:.0f} ms: "
                           "offloaded experts copied once per {}-token chunk, each layer's overlapping its GEMMs)\n",
                           x.prefill_tokens, x.prefill_ms, x.prefill_compute_ms,
                           x.prefill_compute_measured
                               ? std::string(" measured")
                               : fmt::format(" at {:.0f} TFLOP/s: a floor, real prefill is slower", p.rates.device_tflops),
                           x.prefill_stream_ms, x.prefill_chunk);
    }
    return out;
}

}  // namespace

std::string format_plan_table(const MemoryPlan& p, std::string_view model) {
    std::string out;
    out += fmt::format("headroom plan: {} ({:.2f} B parameters), weights {}, KV cache {} ({} per token)\n", model,
                       static_cast<double>(p.n_params) / 1e9, format_label(p), kv_dtype_name(p.kv_dtype),
                       format_bytes(p.kv_bytes_per_token));
    out += fmt::format("  on {} ({} = {} bytes), context {} x {} sequence{}, step of {} tokens\n\n",
                       p.device_name.empty() ? "device" : p.device_name, format_bytes(p.budget_bytes), p.budget_bytes,
                       p.context, p.sequences, p.sequences == 1 ? "" : "s", p.limits.max_tokens);
    if (p.tensor_parallel > 1)
        out += fmt::format("  tensor parallel {0}: the regions below are one GPU's; each of {0} GPUs holds its shard "
                           "(embedding, norms, router and head whole){1}\n\n",
                           p.tensor_parallel, " - not implemented yet on GPUs (docs/parallel.md)");
    out += fmt::format("{:<24} {:>11} {:>15} {:>7}  {}\n", "region", "size", "bytes", "use%", "holds");
    for (const PlanRegion& r : p.regions) {
        // A host region on a GPU is not part of the budget: "host" instead of a share of it.
        const bool off_budget = r.kind == RegionKind::host && p.target == PlanTarget::gpu;
        out += fmt::format("{:<24} {:>11} {:>15} {:>7}  {}\n", r.name, format_bytes(r.bytes), r.bytes,
                           off_budget ? std::string("host") : percent(r.bytes, p.budget_bytes), r.note);
    }
    out += fmt::format("{:<24} {:>11} {:>15} {:>7}\n", "total", format_bytes(p.total_bytes), p.total_bytes,
                       percent(p.total_bytes, p.budget_bytes));
    out += fmt::format("{:<24} {:>11} {:>15} {:>7}\n", "budget", format_bytes(p.budget_bytes), p.budget_bytes, "100.0%");
    if (p.fits) {
        out += fmt::format("{:<24} {:>11} {:>15} {:>7}\n", "free", format_bytes(p.free_bytes()), p.free_bytes(),
                           percent(p.free_bytes(), p.budget_bytes));
    }
    const uint64_t w = p.kind_bytes(RegionKind::weights), kv = p.kind_bytes(RegionKind::kv_cache),
                   act = p.kind_bytes(RegionKind::activations);
    out += fmt::format("\nby kind: weights {} ({}), KV cache {} ({}), activations {} ({}), workspace {}, reserve {}\n",
                       format_bytes(w), percent(w, p.budget_bytes), format_bytes(kv), percent(kv, p.budget_bytes),
                       format_bytes(act), percent(act, p.budget_bytes), format_bytes(p.kind_bytes(RegionKind::workspace)),
                       format_bytes(p.kind_bytes(RegionKind::reserve)));
    if (p.offload_requested) out += offload_text(p);
    if (p.fits) {
        out += p.tensor_parallel > 1
                   ? fmt::format("\nFITS: {} free on each of {} GPUs.\n", format_bytes(p.free_bytes()), p.tensor_parallel)
                   : fmt::format("\nFITS: {} free.\n", format_bytes(p.free_bytes()));
        return out;
    }
    out += fmt::format("\nDOES NOT FIT: {} short ({} bytes over the budget).\n", format_bytes(p.shortfall_bytes()),
                       p.shortfall_bytes());
    // Only what headroom can run is offered as an option; what would fit with a feature it lacks is said
    // once, plainly, after them.
    std::vector<const Suggestion*> runnable, missing;
    for (const Suggestion& s : p.suggestions) (s.implemented ? runnable : missing).push_back(&s);
    if (runnable.empty()) {
        out += "No option headroom implements today fits on this device.\n";
    } else {
        out += "Alternatives that fit, best first:\n";
        for (size_t i = 0; i < runnable.size(); ++i) out += fmt::format("  {}. {}\n", i + 1, runnable[i]->text);
    }
    if (!missing.empty()) {
        std::string list;
        for (const Suggestion* s : missing) list += fmt::format("{}{}", list.empty() ? "" : "; ", s->text);
        out += fmt::format("Not implemented yet, though it would fit: {}.\n", list);
    }
    return out;
}

std::string format_plan_json(const MemoryPlan& p, std::string_view model) {
    using json = nlohmann::ordered_json;
    json j;
    j["model"] = std::string(model);
    j["fits"] = p.fits;
    j["budget_bytes"] = p.budget_bytes;
    j["total_bytes"] = p.total_bytes;
    j["shortfall_bytes"] = p.shortfall_bytes();
    j["free_bytes"] = p.free_bytes();
    j["device"] = p.device_name;
    j["target"] = p.target == PlanTarget::gpu ? "gpu" : "cpu";
    j["n_params"] = p.n_params;
    j["tensor_parallel"] = p.tensor_parallel;  // > 1: bytes are per GPU
    j["weight_format"] = std::string(dtype_name(p.weight_format));
    j["weight_format_auto"] = p.weight_format_auto;
    j["kv_dtype"] = std::string(kv_dtype_name(p.kv_dtype));
    j["kv_bytes_per_token"] = p.kv_bytes_per_token;
    j["context"] = p.context;
    j["sequences"] = p.sequences;
    j["block_size"] = p.block_size;
    j["kv_blocks"] = p.kv_blocks;
    j["limits"] = {{"max_tokens", p.limits.max_tokens},
                   {"max_seqs", p.limits.max_seqs},
                   {"max_blocks_per_seq", p.limits.max_blocks_per_seq}};
    // The offload choice (with --offload-experts; "offload": null without it).
    if (p.offload_requested) {
        json o;
        o["requested"] = p.offload_auto ? "auto" : std::to_string(p.offload.n_host);
        o["host_experts"] = p.offload.n_host;
        o["experts_per_layer"] = p.offload.n_experts;
        o["host_per_layer"] = p.offload.host_per_layer;
        json by_layer = json::array();
        for (int64_t l = 0; l < static_cast<int64_t>(p.offload.host_per_layer.size()); ++l)
            by_layer.push_back(p.offload.host_experts(l));
        o["host_experts_by_layer"] = std::move(by_layer);
        o["routing"] = p.offload.measured() ? "measured" : "uniform";
        o["calibration_tokens"] = p.offload.hit_tokens;
        o["host_bytes"] = p.host_bytes;
        o["host_available_bytes"] = p.host_available_bytes ? json(*p.host_available_bytes) : json(nullptr);
        o["staging_bytes"] = p.region_bytes("workspace.expert_staging");
        o["rates"] = {{"host_link_gbps", p.rates.host_link_gbps},
                      {"host_read_gbps", p.rates.zero_copy_gbps()},
                      {"device_gbps", p.rates.device_gbps},
                      {"device_tflops", p.rates.device_tflops},
                      {"cpu_expert_gbps", p.rates.cpu_gbps},
                      {"host_call_ms", p.rates.host_call_ms}};
        if (p.prediction) {
            const OffloadPrediction& x = *p.prediction;
            o["prediction"] = {{"decode_tokens_per_s", x.decode_tokens_per_s},
                               {"decode_ms", x.decode_ms},
                               {"offload_compute_requested", std::string(offload_compute_name(x.compute.requested))},
                               {"offload_compute", std::string(x.compute.mode_name())},
                               {"decode_gpu_ms", x.decode_gpu_ms},
                               {"decode_cpu_ms", x.decode_cpu_ms},
                               {"host_layers", x.compute.host_layers},
                               {"device_bytes_per_token", x.device_bytes_per_token},
                               {"host_bytes_per_token", x.host_bytes_per_token},
                               {"prefill_tokens", x.prefill_tokens},
                               {"prefill_chunk", x.prefill_chunk},
                               {"prefill_ms", x.prefill_ms},
                               {"prefill_compute_ms", x.prefill_compute_ms},
                               {"prefill_compute_measured", x.prefill_compute_measured},
                               {"prefill_stream_ms", x.prefill_stream_ms}};
        } else {
            o["prediction"] = nullptr;
        }
        j["offload"] = std::move(o);
    } else {
        j["offload"] = nullptr;
    }
    j["regions"] = json::array();
    for (const PlanRegion& r : p.regions) {
        j["regions"].push_back(
            {{"name", r.name}, {"bytes", r.bytes}, {"kind", std::string(region_kind_name(r.kind))}, {"note", r.note}});
    }
    // "suggestions" (texts) and "alternatives" (numbers): what headroom can run; "not_implemented": what
    // would fit with a feature it does not have yet, with the same fields.
    j["suggestions"] = json::array();
    j["alternatives"] = json::array();
    j["not_implemented"] = json::array();
    for (const Suggestion& s : p.suggestions) {
        json a = {{"kind", std::string(suggestion_kind_name(s.kind))},
                  {"weight_format", std::string(dtype_name(s.weight_format))},
                  {"kv_dtype", std::string(kv_dtype_name(s.kv_dtype))},
                  {"context", s.context},
                  {"sequences", s.sequences},
                  {"n_gpus", s.n_gpus},
                  {"total_bytes", s.total_bytes},
                  {"budget_bytes", s.budget_bytes}};
        if (s.kind == SuggestionKind::host_experts) {
            a["host_bytes"] = s.host_bytes;
            a["gpu_experts"] = s.gpu_experts;
            a["host_experts"] = s.host_experts;
            a["decode_tokens_per_s"] = s.decode_tokens_per_s;
        }
        if (s.implemented) {
            j["suggestions"].push_back(s.text);
            j["alternatives"].push_back(std::move(a));
        } else {
            a["text"] = s.text;
            j["not_implemented"].push_back(std::move(a));
        }
    }
    return j.dump(2) + "\n";
}

}  // namespace hr
