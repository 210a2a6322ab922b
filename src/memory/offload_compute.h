// --offload-compute auto|gpu|cpu: how batch-1 decode computes the selected experts that live in pinned
// host memory (--offload-experts). gpu: the GPU's decode kernels read their weights in place over the
// host link (zero-copy). cpu: the host computes them (backend/cpu/host_experts.h) next to the GPU's work
// on the token's other experts, and the GPU adds the result (llama.cpp's --n-cpu-moe does the same).
// auto: whichever the rates say is faster, measured once at start-up by a probe on one host expert
// (Backend::probe_offload_compute), or the stated defaults below where nothing can be measured (plan).
// Batched decode and prefill always take the GPU paths: with more than one token the weights that cross
// the link serve every token, while the host's GEMV time grows with the tokens.
//
// Why one choice per run and not a new one each step: both costs are linear in the host experts a step
// selects (bytes / rate) plus, on cpu, a fixed host-function round trip per layer with host experts
// (paid whether or not the step selects one there, since the graph holds the host node); the rates do
// not change between steps, so the step-by-step comparison comes out the same every step.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "backend/offload_probe.h"
#include "core/status.h"

namespace hr {

enum class OffloadCompute { automatic, gpu, cpu };

// "auto", "gpu" or "cpu"; anything else is an error naming the flag.
Result<OffloadCompute> parse_offload_compute(std::string_view text);
std::string_view offload_compute_name(OffloadCompute m);

// Stated defaults where nothing is measured (headroom plan): the host computing an int8 / int4 expert with
// headroom's AVX2 kernels on about 16 cores (the expert's bytes over its time; below a desktop's or
// server's memory bandwidth, since unpacking the weights costs instructions), and one host-function round
// trip in a CUDA stream. serve / generate / bench measure both on the machine (the probe).
constexpr double kDefaultCpuExpertGbps = 30.0;
constexpr double kDefaultHostCallMs = 0.03;

struct OffloadComputeRates {
    double link_gbps = 25.0;  // the device reading a host expert in place (GB/s, 10^9)
    double cpu_gbps = kDefaultCpuExpertGbps;  // the host computing one for one token
    double host_call_ms = kDefaultHostCallMs;  // per layer with host experts, cpu mode
    bool measured = false;    // from a probe (else the card table's link rate and the defaults)

    // The probe's rates (measured = true); a rate the probe could not measure stays at its default.
    static OffloadComputeRates from_probe(const OffloadProbe& p);
};

// The decision for one model: the host experts' expected share of a decode token's time each way.
struct OffloadComputeChoice {
    OffloadCompute requested = OffloadCompute::automatic;
    bool cpu = false;                 // the mode taken
    OffloadComputeRates rates;
    double host_bytes_per_token = 0;  // expected bytes of selected host experts per token
    int64_t host_layers = 0;          // MoE layers with at least one host expert
    double gpu_ms = 0;                // host bytes / link rate
    double cpu_ms = 0;                // host bytes / cpu rate + host_layers x host_call_ms

    std::string_view mode_name() const { return cpu ? "cpu" : "gpu"; }
    // One line for the log: the mode, why, and both times with their rates.
    std::string describe() const;
};

// requested gpu / cpu are taken as given; auto takes cpu when cpu_ms < gpu_ms. With no host experts
// (host_layers 0) the mode is gpu: there is nothing for the host to compute.
OffloadComputeChoice choose_offload_compute(OffloadCompute requested, double host_bytes_per_token, int64_t host_layers,
                                            const OffloadComputeRates& rates);

}  // namespace hr
