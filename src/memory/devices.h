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
};

// Usable bandwidths of a x16 host link (about 80% of the raw rate), used for offload speed bounds.
constexpr double kPcie4x16Gbps = 25.0;
constexpr double kPcie5x16Gbps = 50.0;

std::span<const DeviceSpec> builtin_devices();
std::optional<DeviceSpec> find_device(std::string_view name);  // case-insensitive; nullopt when unknown

}  // namespace hr
