// Built-in cards for planning without a GPU: the total memory the driver reports and the host link.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace hr {

struct DeviceSpec {
    std::string_view name;         // the --gpu name, e.g. "rtx4090"
    std::string_view description;  // e.g. "NVIDIA GeForce RTX 4090"
    uint64_t memory_bytes;         // total as nvidia-smi / cudaMemGetInfo report it (MiB exact)
    double host_link_gbps;         // usable host <-> device bandwidth, GB/s (10^9), for offload estimates
    std::string_view host_link;    // e.g. "PCIe 4.0 x16"
    // For the offload speed prediction (memory/expert_offload.h): the copy rate a bandwidth-bound kernel
    // reaches (about 85-90% of the spec sheet's memory bandwidth) and the dense bf16 tensor-core rate
    // cuBLAS GEMMs reach (about 60% of the spec sheet's dense rate with f32 accumulation). Estimates
    // from public spec sheets, not measurements; the bench measures the real ones.
    double device_gbps = 0;
    double device_tflops = 0;
};

// Usable bandwidths of a x16 host link (about 80% of the raw rate), used for offload speed bounds.
constexpr double kPcie4x16Gbps = 25.0;
constexpr double kPcie5x16Gbps = 50.0;
// The planner's default card (h100-80gb) for the offload prediction when no card is named.
constexpr double kH100DeviceGbps = 2900.0;
constexpr double kH100DeviceTflops = 600.0;

std::span<const DeviceSpec> builtin_devices();
std::optional<DeviceSpec> find_device(std::string_view name);  // case-insensitive; nullopt when unknown

}  // namespace hr
