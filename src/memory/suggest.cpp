// Ranked alternatives for a plan that does not fit (see suggest.h for the ranking).
#include "memory/suggest.h"

#include <algorithm>
#include <optional>

#include "core/kv_quant.h"

namespace hr {

namespace {

std::string flag(DType wf) { return fmt::format("--weights {}", dtype_name(wf)); }

std::string usage(uint64_t total, uint64_t budget) {
    return fmt::format("{} of {}, {} free", format_bytes(total), format_bytes(budget), format_bytes(budget - total));
}

struct Planner {
    const ModelConfig& cfg;
    PlanRequest base;

    std::optional<MemoryPlan> fit(DType wf, int64_t context, int64_t sequences, std::optional<DType> kv = {}) const {
        PlanRequest r = base;
        r.suggest = false;
        if (kv) r.kv_dtype = *kv;
        r.weight_format = wf;
        r.context = context;
        r.sequences = sequences;
        Result<MemoryPlan> p = plan_memory(cfg, r);
        if (!p.ok() || !p->fits) return std::nullopt;
        return std::move(p).value();
    }

    // Largest n in [lo, hi] with fits(n), given fits is monotone (true then false); nullopt if none.
    template <class F>
    static std::optional<int64_t> largest(int64_t lo, int64_t hi, F fits) {
        if (hi < lo || !fits(lo)) return std::nullopt;
        while (lo < hi) {
            const int64_t mid = lo + (hi - lo + 1) / 2;
            if (fits(mid)) lo = mid;
            else hi = mid - 1;
        }
        return lo;
    }
};

// Formats smaller than wf, in quality order.
std::vector<DType> smaller_formats(DType wf) {
    if (wf == DType::bf16 || wf == DType::f16) return {DType::q8, DType::q4};
    if (wf == DType::q8) return {DType::q4};
    return {};
}

void suggest_more_gpus(const ModelConfig& cfg, const PlanRequest& req, const MemoryPlan& p, std::vector<Suggestion>& out) {
    // Tensor parallel: re-planned per GPU from the sharding (model/shard.h) with --tensor-parallel n, so
    // the numbers are the ones `plan --tensor-parallel n` prints: rank 0's weights (its heads and FFN
    // columns, embedding / norms / router / head whole), its KV heads, activations and workspaces.
    // Still not implemented: the forward pass shards on the CPU (tests) but no GPU run has been made.
    if (req.offload) return;
    for (int n : {2, 4, 8}) {
        if (n <= req.tensor_parallel) continue;
        PlanRequest r = req;
        r.suggest = false;
        r.tensor_parallel = n;
        r.weight_format = p.weight_format;
        Result<MemoryPlan> q = plan_memory(cfg, r);
        if (!q.ok() || !q->fits) continue;  // a dimension that does not divide, or still too big
        Suggestion s;
        s.kind = SuggestionKind::more_gpus;
        s.weight_format = p.weight_format;
        s.context = req.context;
        s.sequences = req.sequences;
        s.n_gpus = n;
        s.total_bytes = q->total_bytes;
        s.budget_bytes = q->budget_bytes;
        s.implemented = false;
        s.text = fmt::format("{} x {} with {} --tensor-parallel {}: {} per GPU", n,
                             req.device_name.empty() ? format_bytes(p.budget_bytes) : req.device_name,
                             flag(p.weight_format), n, usage(q->total_bytes, q->budget_bytes));
        out.push_back(std::move(s));
        return;  // the fewest GPUs that fit
    }
}

// Experts in host memory (--offload-experts auto) for weight format wf: re-planned with the flag, so the
// numbers are the ones `plan --weights wf --offload-experts auto` prints (and the host RAM is checked).
void suggest_host_experts(const ModelConfig& cfg, const PlanRequest& req, const MemoryPlan& p, DType wf,
                          std::vector<Suggestion>& out) {
    if (!cfg.is_moe() || cfg.n_moe_layers() == 0 || p.target != PlanTarget::gpu) return;
    PlanRequest r = req;
    r.suggest = false;
    r.weight_format = wf;
    r.offload = OffloadRequest{.automatic = true, .experts = 0};
    Result<MemoryPlan> q = plan_memory(cfg, r);
    if (!q.ok() || !q->fits || !q->offload.any() || !q->prediction) return;
    const int64_t n_total = cfg.n_moe_layers() * cfg.n_experts;
    Suggestion s;
    s.kind = SuggestionKind::host_experts;
    s.weight_format = wf;
    s.context = req.context;
    s.sequences = req.sequences;
    s.total_bytes = q->total_bytes;
    s.budget_bytes = q->budget_bytes;
    s.host_bytes = q->host_bytes;
    s.gpu_experts = n_total - q->offload.n_host;
    s.host_experts = q->offload.n_host;
    s.decode_tokens_per_s = q->prediction->decode_tokens_per_s;
    s.implemented = true;
    s.text = fmt::format(
        "{} --offload-experts auto (= {}): {} of {} experts in pinned host memory ({}), {} on the GPU ({}); "
        "predicted decode {:.1f} tokens/s per sequence over {} ({:.0f} GB/s)",
        flag(wf), q->offload.n_host, q->offload.n_host, n_total, format_bytes(s.host_bytes), s.gpu_experts,
        usage(s.total_bytes, q->budget_bytes), s.decode_tokens_per_s, req.host_link, req.host_link_gbps);
    out.push_back(std::move(s));
}

// An int8 KV cache (half of f16's bytes plus 3% for scales; its logit error is in docs/memory.md) in the
// refused weight format: the whole request if that fits (first: it gives up the least), else the longest
// context it buys (after that format's own longest context). Only for a float cache.
void suggest_kv_int8(const Planner& pl, const PlanRequest& req, DType wf, bool whole, std::vector<Suggestion>& out) {
    if (is_quantized_kv(req.kv_dtype)) return;
    const int64_t bs = req.block_size;
    std::optional<MemoryPlan> p;
    if (whole) {
        p = pl.fit(wf, req.context, req.sequences, DType::i8);
    } else if (auto b = Planner::largest(1, (req.context + bs - 1) / bs - 1, [&](int64_t n) {
                   return pl.fit(wf, n * bs, req.sequences, DType::i8).has_value();
               })) {
        p = pl.fit(wf, *b * bs, req.sequences, DType::i8);
    }
    if (!p) return;
    Suggestion s;
    s.kind = SuggestionKind::kv_cache;
    s.weight_format = wf;
    s.kv_dtype = DType::i8;
    s.context = p->context;
    s.sequences = req.sequences;
    s.total_bytes = p->total_bytes;
    s.budget_bytes = p->budget_bytes;
    s.text = whole ? fmt::format("{} --kv-cache int8: {}", flag(wf), usage(p->total_bytes, p->budget_bytes))
                   : fmt::format("{} --kv-cache int8 --context {}: {} (the longest context that fits with an int8 KV cache)",
                                 flag(wf), p->context, usage(p->total_bytes, p->budget_bytes));
    out.push_back(std::move(s));
}

}  // namespace

std::vector<Suggestion> suggest_alternatives(const ModelConfig& cfg, const PlanRequest& req, const MemoryPlan& refused) {
    std::vector<Suggestion> out;
    Planner pl{cfg, req};
    const DType wf = refused.weight_format;
    const std::vector<DType> smaller = smaller_formats(wf);

    // 0. The same weights with an int8 KV cache, when that fits the whole request.
    suggest_kv_int8(pl, req, wf, true, out);
    const bool kv_whole = !out.empty();

    // 1. A smaller format that fits the whole request.
    std::vector<DType> still_too_big = {wf};
    for (DType f : smaller) {
        if (auto p = pl.fit(f, req.context, req.sequences)) {
            Suggestion s;
            s.kind = SuggestionKind::weight_format;
            s.weight_format = f;
            s.context = req.context;
            s.sequences = req.sequences;
            s.total_bytes = p->total_bytes;
            s.budget_bytes = p->budget_bytes;
            s.text = fmt::format("{}: {}", flag(f), usage(p->total_bytes, p->budget_bytes));
            out.push_back(std::move(s));
        } else {
            still_too_big.push_back(f);
        }
    }

    // 2. The longest context / most sequences that fit, per format that does not fit as asked.
    const int64_t bs = req.block_size;
    const int64_t blocks = (req.context + bs - 1) / bs;
    for (DType f : still_too_big) {
        auto ctx_blocks = Planner::largest(1, blocks - 1, [&](int64_t b) { return pl.fit(f, b * bs, req.sequences).has_value(); });
        if (ctx_blocks) {
            const int64_t ctx = *ctx_blocks * bs;
            const MemoryPlan p = *pl.fit(f, ctx, req.sequences);
            Suggestion s;
            s.kind = SuggestionKind::context;
            s.weight_format = f;
            s.context = ctx;
            s.sequences = req.sequences;
            s.total_bytes = p.total_bytes;
            s.budget_bytes = p.budget_bytes;
            s.text = fmt::format("{} --context {}: {} (the longest context that fits {} sequence{})", flag(f), ctx,
                                 usage(p.total_bytes, p.budget_bytes), req.sequences, req.sequences == 1 ? "" : "s");
            out.push_back(std::move(s));
        }
        if (f == wf && !kv_whole) suggest_kv_int8(pl, req, wf, false, out);
        auto seqs = Planner::largest(1, req.sequences - 1, [&](int64_t n) { return pl.fit(f, req.context, n).has_value(); });
        if (seqs) {
            const MemoryPlan p = *pl.fit(f, req.context, *seqs);
            Suggestion s;
            s.kind = SuggestionKind::sequences;
            s.weight_format = f;
            s.context = req.context;
            s.sequences = *seqs;
            s.total_bytes = p.total_bytes;
            s.budget_bytes = p.budget_bytes;
            s.text = fmt::format("{} --sequences {}: {} (the most sequences that fit at context {})", flag(f), *seqs,
                                 usage(p.total_bytes, p.budget_bytes), req.context);
            out.push_back(std::move(s));
        }
    }

    // 3 and 4: hardware and offload, from the refused plan's numbers.
    if (refused.target == PlanTarget::gpu) suggest_more_gpus(cfg, req, refused, out);
    // Experts in host memory, per format; the fastest decode first.
    std::vector<Suggestion> offload;
    for (DType f : still_too_big) suggest_host_experts(cfg, req, refused, f, offload);
    std::stable_sort(offload.begin(), offload.end(), [](const Suggestion& a, const Suggestion& b) {
        return a.decode_tokens_per_s > b.decode_tokens_per_s;
    });
    for (Suggestion& s : offload) out.push_back(std::move(s));
    for (Suggestion& s : out)
        if (s.kind != SuggestionKind::kv_cache) s.kv_dtype = req.kv_dtype;
    return out;
}

}  // namespace hr
