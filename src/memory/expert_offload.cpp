// Expert placement for --offload-experts and the speed model of an offloaded plan.
#include "memory/expert_offload.h"

#include <algorithm>
#include <charconv>

namespace hr {

Result<OffloadRequest> parse_offload_experts(std::string_view text) {
    if (text == "auto") return OffloadRequest{.automatic = true, .experts = 0};
    int64_t n = 0;
    const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (text.empty() || ec != std::errc() || p != text.data() + text.size())
        return errorf("--offload-experts: expected auto or a number of experts, found '{}'", text);
    if (n < 0) return errorf("--offload-experts: expected a non-negative number of experts, found {}", n);
    return OffloadRequest{.automatic = false, .experts = n};
}

namespace {

// The n coldest (layer, expert) instances of the whole model. Greedy over all instances is optimal for
// the prediction: every expert has the same bytes, so the host bytes per token sum_{host} p(l, e) x bytes
// is smallest for the n smallest p; the prefill streaming term (n x bytes per chunk) does not depend on
// which ones.
Result<ExpertPlacement> place_coldest(const ModelConfig& cfg, int64_t n, const ExpertHits& hits, ExpertPlacement p) {
    const int64_t E = cfg.n_experts;
    if (static_cast<int64_t>(hits.layers.size()) != cfg.n_layers || hits.tokens <= 0)
        return errorf("--offload-experts: the router statistics were measured on another model ({} layers; this "
                      "model has {})", hits.layers.size(), cfg.n_layers);
    struct Instance {
        int64_t hits, layer, expert;
    };
    std::vector<Instance> all;
    for (int64_t l = 0; l < cfg.n_layers; ++l) {
        if (!cfg.layer_is_moe(l)) continue;
        const auto& row = hits.layers[static_cast<size_t>(l)];
        if (static_cast<int64_t>(row.size()) != E)
            return errorf("--offload-experts: the router statistics of layer {} have {} experts, this model {}", l,
                          row.size(), E);
        for (int64_t e = 0; e < E; ++e) all.push_back({row[static_cast<size_t>(e)], l, e});
    }
    std::stable_sort(all.begin(), all.end(), [](const Instance& a, const Instance& b) {
        if (a.hits != b.hits) return a.hits < b.hits;
        if (a.expert != b.expert) return a.expert > b.expert;
        return a.layer > b.layer;
    });
    p.host_mask.assign(static_cast<size_t>(cfg.n_layers * E), 0);
    p.hit_freq.assign(static_cast<size_t>(cfg.n_layers * E), 0.0);
    for (int64_t l = 0; l < cfg.n_layers; ++l)
        for (int64_t e = 0; e < E; ++e) p.hit_freq[static_cast<size_t>(l * E + e)] = hits.frequency(l, e);
    for (int64_t i = 0; i < n; ++i) {
        const Instance& x = all[static_cast<size_t>(i)];
        p.host_mask[static_cast<size_t>(x.layer * E + x.expert)] = 1;
        ++p.host_per_layer[static_cast<size_t>(x.layer)];
    }
    p.hit_tokens = hits.tokens;
    p.n_host = n;
    return p;
}

}  // namespace

Result<ExpertPlacement> place_experts(const ModelConfig& cfg, int64_t n, const ExpertHits* hits) {
    ExpertPlacement p;
    p.n_experts = cfg.n_experts;
    p.host_per_layer.assign(static_cast<size_t>(std::max<int64_t>(cfg.n_layers, 0)), 0);
    if (n < 0) return errorf("--offload-experts: expected a non-negative number of experts, found {}", n);
    if (n == 0) return p;
    if (!cfg.is_moe() || cfg.n_moe_layers() == 0)
        return errorf("--offload-experts {}: the model has no MoE experts to keep in host memory", n);
    const int64_t layers = cfg.n_moe_layers();
    const int64_t total = layers * cfg.n_experts;
    if (n > total)
        return errorf("--offload-experts {}: the model has {} experts ({} MoE layers x {}), expected at most {}", n,
                      total, layers, cfg.n_experts, total);
    if (hits) return place_coldest(cfg, n, *hits, std::move(p));
    const int64_t base = n / layers, extra = n % layers;
    int64_t moe_index = 0;
    for (int64_t l = 0; l < cfg.n_layers; ++l) {
        if (!cfg.layer_is_moe(l)) continue;
        // The last `extra` MoE layers take one more.
        p.host_per_layer[static_cast<size_t>(l)] = base + (moe_index >= layers - extra ? 1 : 0);
        ++moe_index;
    }
    p.n_host = n;
    return p;
}

namespace {

// Multiply-adds of one token through every matrix but the output head (prefill computes the head for the
// last token of a chunk only), with the k selected experts of each MoE layer.
double active_macs_per_token(const ModelConfig& c) {
    const double dim = static_cast<double>(c.dim);
    double macs = 0;
    for (int64_t l = 0; l < c.n_layers; ++l) {
        macs += dim * static_cast<double>(c.q_dim() + 2 * c.kv_dim()) + static_cast<double>(c.q_dim()) * dim;
        if (c.layer_is_moe(l))
            macs += static_cast<double>(c.n_experts_active) * 3 * dim * static_cast<double>(c.expert_ffn_dim());
        else
            macs += 3 * dim * static_cast<double>(c.ffn_dim);
    }
    return macs;
}

}  // namespace

double host_expert_bytes_per_token(const ModelConfig& cfg, uint64_t one_expert_bytes, const ExpertPlacement& placement) {
    OffloadRates none;
    return predict_offload(cfg, 0, one_expert_bytes, placement, none, 0, 1).host_bytes_per_token;
}

int64_t layers_with_host_experts(const ModelConfig& cfg, const ExpertPlacement& placement) {
    int64_t n = 0;
    for (int64_t l = 0; l < cfg.n_layers; ++l)
        if (cfg.layer_is_moe(l) && placement.host_in_layer(l) > 0) ++n;
    return n;
}

OffloadPrediction predict_offload(const ModelConfig& cfg, uint64_t non_expert_bytes, uint64_t one_expert_bytes,
                                  const ExpertPlacement& placement, const OffloadRates& rates,
                                  int64_t prefill_tokens, int64_t prefill_chunk,
                                  std::optional<double> measured_prefill_compute_ms) {
    OffloadPrediction r;
    const double one = static_cast<double>(one_expert_bytes);
    double dev = static_cast<double>(non_expert_bytes), host = 0;
    for (int64_t l = 0; l < cfg.n_layers; ++l) {
        if (!cfg.layer_is_moe(l) || cfg.n_experts <= 0) continue;
        if (!placement.measured()) {  // uniform routing: k / E per expert
            const double h = static_cast<double>(placement.host_in_layer(l)) / static_cast<double>(cfg.n_experts);
            const double selected = static_cast<double>(cfg.n_experts_active) * one;
            host += selected * h;
            dev += selected * (1 - h);
            continue;
        }
        for (int64_t e = 0; e < cfg.n_experts; ++e) {
            const double bytes = placement.frequency(l, e, cfg.n_experts_active) * one;
            (placement.is_host(l, e) ? host : dev) += bytes;
        }
    }
    r.device_bytes_per_token = dev;
    r.host_bytes_per_token = host;
    // Decode reads the host experts in place (zero-copy), not with cudaMemcpy: the zero-copy rate.
    r.host_read_gbps = rates.zero_copy_gbps();
    OffloadComputeRates cr;
    cr.link_gbps = r.host_read_gbps;
    cr.cpu_gbps = rates.cpu_gbps;
    cr.host_call_ms = rates.host_call_ms;
    r.compute = choose_offload_compute(rates.compute, host, layers_with_host_experts(cfg, placement), cr);
    const double dev_ms = 1e3 * dev / (rates.device_gbps * 1e9);
    r.decode_gpu_ms = dev_ms + r.compute.gpu_ms;
    r.decode_cpu_ms = dev_ms + r.compute.cpu_ms;
    r.decode_ms = r.compute.cpu ? r.decode_cpu_ms : r.decode_gpu_ms;
    r.decode_tokens_per_s = r.decode_ms > 0 ? 1e3 / r.decode_ms : 0;

    r.prefill_tokens = std::max<int64_t>(prefill_tokens, 0);
    r.prefill_chunk = std::max<int64_t>(prefill_chunk, 1);
    const int64_t chunks = (r.prefill_tokens + r.prefill_chunk - 1) / r.prefill_chunk;
    r.prefill_compute_measured = measured_prefill_compute_ms.has_value() && *measured_prefill_compute_ms > 0;
    r.prefill_compute_ms =
        r.prefill_compute_measured
            ? *measured_prefill_compute_ms
            : 1e3 * 2 * active_macs_per_token(cfg) * static_cast<double>(r.prefill_tokens) / (rates.device_tflops * 1e12);
    r.prefill_stream_ms = 1e3 * static_cast<double>(chunks) * static_cast<double>(placement.n_host) * one /
                          (rates.host_link_gbps * 1e9);
    // Per chunk and layer: a layer's copies overlap its own GEMMs (an equal share of the compute), not
    // another layer's, so a layer with more host experts than its GEMMs can hide costs the difference.
    if (chunks > 0 && cfg.n_layers > 0) {
        const double layer_ms = r.prefill_compute_ms / static_cast<double>(chunks * cfg.n_layers);
        double per_chunk = 0;
        for (int64_t l = 0; l < cfg.n_layers; ++l) {
            const double copy_ms = cfg.layer_is_moe(l) ? 1e3 * static_cast<double>(placement.host_in_layer(l)) * one /
                                                             (rates.host_link_gbps * 1e9)
                                                       : 0;
            per_chunk += std::max(layer_ms, copy_ms);
        }
        r.prefill_ms = static_cast<double>(chunks) * per_chunk;
    }
    return r;
}

}  // namespace hr
