// --offload-compute: parsing and the choice between the GPU reading host experts and the host computing
// them (offload_compute.h).
#include "memory/offload_compute.h"

#include <fmt/format.h>

namespace hr {

Result<OffloadCompute> parse_offload_compute(std::string_view text) {
    if (text == "auto") return OffloadCompute::automatic;
    if (text == "gpu") return OffloadCompute::gpu;
    if (text == "cpu") return OffloadCompute::cpu;
    return errorf("--offload-compute: expected auto, gpu or cpu, found '{}'", text);
}

std::string_view offload_compute_name(OffloadCompute m) {
    switch (m) {
        case OffloadCompute::automatic: return "auto";
        case OffloadCompute::gpu: return "gpu";
        case OffloadCompute::cpu: return "cpu";
    }
    return "?";
}

OffloadComputeRates OffloadComputeRates::from_probe(const OffloadProbe& p) {
    OffloadComputeRates r;
    if (p.link_gbps() > 0) r.link_gbps = p.link_gbps();
    if (p.cpu_gbps() > 0) r.cpu_gbps = p.cpu_gbps();
    if (p.host_call_ms > 0) r.host_call_ms = p.host_call_ms;
    r.measured = true;
    return r;
}

OffloadComputeChoice choose_offload_compute(OffloadCompute requested, double host_bytes_per_token, int64_t host_layers,
                                            const OffloadComputeRates& rates) {
    OffloadComputeChoice c;
    c.requested = requested;
    c.rates = rates;
    c.host_bytes_per_token = host_bytes_per_token;
    c.host_layers = host_layers;
    c.gpu_ms = rates.link_gbps > 0 ? 1e3 * host_bytes_per_token / (rates.link_gbps * 1e9) : 0;
    c.cpu_ms = (rates.cpu_gbps > 0 ? 1e3 * host_bytes_per_token / (rates.cpu_gbps * 1e9) : 0) +
               static_cast<double>(host_layers) * rates.host_call_ms;
    if (host_layers <= 0) c.cpu = false;
    else if (requested == OffloadCompute::automatic) c.cpu = c.cpu_ms < c.gpu_ms;
    else c.cpu = requested == OffloadCompute::cpu;
    return c;
}

std::string OffloadComputeChoice::describe() const {
    const std::string why = host_layers <= 0                              ? "no experts in host memory"
                            : requested != OffloadCompute::automatic ? "as requested"
                            : cpu                                     ? "auto: the host is faster"
                                                                      : "auto: the GPU's read over the link is faster";
    return fmt::format("--offload-compute {} -> {} ({}; rates {}): per decode token the host experts cost {:.2f} ms "
                       "read by the GPU ({:.3f} GB at {:.1f} GB/s) vs {:.2f} ms computed by the CPU ({:.1f} GB/s, "
                       "{} layers x {:.3f} ms host call)",
                       offload_compute_name(requested), mode_name(), why, rates.measured ? "measured" : "stated defaults",
                       gpu_ms, host_bytes_per_token / 1e9, rates.link_gbps, cpu_ms, rates.cpu_gbps, host_layers,
                       rates.host_call_ms);
}

}  // namespace hr
