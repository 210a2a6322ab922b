// --offload-compute: what the start-up probe of a backend measures on one expert that lives in host
// memory (Backend::probe_offload_compute), from which memory/offload_compute.h picks how batch-1 decode
// computes the offloaded experts.
#pragma once

#include <cstdint>

namespace hr {

struct OffloadProbe {
    uint64_t expert_bytes = 0;  // w1, w3, w2 of the expert with their scales
    double gpu_expert_ms = 0;   // the GPU's fused decode kernels reading it in place over the link (zero-copy)
    double cpu_expert_ms = 0;   // the host computing it (backend/cpu/host_experts.h) for one token
    double host_call_ms = 0;    // a host function's round trip inside the GPU's stream (paid per layer on cpu)

    // Bytes per second (10^9) each way reads the expert at; 0 when not measured.
    double link_gbps() const { return gpu_expert_ms > 0 ? static_cast<double>(expert_bytes) / (gpu_expert_ms * 1e6) : 0; }
    double cpu_gbps() const { return cpu_expert_ms > 0 ? static_cast<double>(expert_bytes) / (cpu_expert_ms * 1e6) : 0; }
};

}  // namespace hr
