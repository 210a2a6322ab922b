// The start-up probe and choice of --offload-compute (offload_compute_setup.h).
#include "loader/offload_compute_setup.h"

#include <cstdlib>
#include <string_view>

#include "core/log.h"
#include "quant/formats.h"

namespace hr {

namespace {

uint64_t bytes_of(const Weight& w) {
    return static_cast<uint64_t>(quant::weight_data_bytes(w.dtype, w.rows, w.cols)) +
           (w.scales ? static_cast<uint64_t>(quant::weight_scale_bytes(w.dtype, w.rows, w.cols)) : 0);
}

}  // namespace

Result<std::optional<OffloadComputeChoice>> setup_offload_compute(Backend& be, const ModelConfig& cfg,
                                                                  const ModelWeights& w,
                                                                  const ExpertPlacement& placement,
                                                                  OffloadCompute requested) {
    if (!placement.any() || be.kind() == DeviceKind::cpu) return std::optional<OffloadComputeChoice>{};
    // The first host expert: the probe's sample (every expert has the same shapes and format).
    const LayerWeights* layer = nullptr;
    int64_t expert = -1;
    for (const LayerWeights& l : w.layers) {
        for (size_t e = 0; e < l.ew1.size() && expert < 0; ++e)
            if (l.ew1[e].host) expert = static_cast<int64_t>(e);
        if (expert >= 0) {
            layer = &l;
            break;
        }
    }
    if (!layer) return std::optional<OffloadComputeChoice>{};
    const ExpertWeights sample{layer->ew1, layer->ew3, layer->ew2};
    const auto ei = static_cast<size_t>(expert);
    const uint64_t one = bytes_of(layer->ew1[ei]) + bytes_of(layer->ew3[ei]) + bytes_of(layer->ew2[ei]);
    OffloadComputeRates rates;
    Result<OffloadProbe> probe = be.probe_offload_compute(sample, expert);
    if (probe.ok()) {
        rates = OffloadComputeRates::from_probe(*probe);
        log_info("--offload-compute probe (one {:.1f} MiB expert, median of 5): GPU reading it over the link {:.3f} ms "
                 "({:.1f} GB/s), CPU computing it {:.3f} ms ({:.1f} GB/s), host call {:.3f} ms",
                 static_cast<double>(probe->expert_bytes) / (1 << 20), probe->gpu_expert_ms, probe->link_gbps(),
                 probe->cpu_expert_ms, probe->cpu_gbps(), probe->host_call_ms);
    } else {
        log_warn("--offload-compute: no probe ({}); the stated default rates decide", probe.error().message);
    }
    OffloadComputeChoice c = choose_offload_compute(requested, host_expert_bytes_per_token(cfg, one, placement),
                                                    layers_with_host_experts(cfg, placement), rates);
    // The host-computed path failed GPU parity on an H100 at 980cf03 (bench/results/2026-12-08-h100-parity-
    // 980cf03.md: a layer with both resident and host experts gives wrong logits). Until it passes it is
    // refused when asked for and never chosen by auto; the parity tests opt in to keep testing it.
    const char* opt_in = std::getenv("HEADROOM_UNVERIFIED_OFFLOAD_CPU");
    if (c.cpu && !(opt_in && std::string_view(opt_in) == "1")) {
        if (requested == OffloadCompute::cpu)
            return errorf("--offload-compute cpu is disabled: it failed the GPU parity tests (a layer with both "
                          "resident and host experts gives wrong logits); use --offload-compute gpu or auto");
        log_warn("--offload-compute auto: the rates favour cpu, but the cpu path is disabled until it passes GPU "
                 "parity; taking gpu");
        c.cpu = false;
    }
    HR_TRY(be.set_offload_compute(c.cpu, sample));
    log_info("{}", c.describe());
    return std::optional<OffloadComputeChoice>{c};
}

}  // namespace hr
