// The built-in card table. Totals are the MiB that nvidia-smi prints for each card (public nvidia-smi
// outputs; H100 and H200 measured on this project's machines, see docs/memory.md), not the marketing GB.
#include "memory/devices.h"

#include <cctype>

#include "memory/units.h"

namespace hr {

namespace {

constexpr DeviceSpec kDevices[] = {
    {"rtx4090", "NVIDIA GeForce RTX 4090 24 GB", 24564 * kMiB, kPcie4x16Gbps, "PCIe 4.0 x16", 900, 100},
    {"rtx3090", "NVIDIA GeForce RTX 3090 24 GB", 24576 * kMiB, kPcie4x16Gbps, "PCIe 4.0 x16", 830, 43},
    {"a10", "NVIDIA A10 24 GB", 23028 * kMiB, kPcie4x16Gbps, "PCIe 4.0 x16", 530, 75},
    {"l4", "NVIDIA L4 24 GB", 23034 * kMiB, kPcie4x16Gbps, "PCIe 4.0 x16", 260, 70},
    {"a100-40gb", "NVIDIA A100 40 GB", 40960 * kMiB, kPcie4x16Gbps, "PCIe 4.0 x16", 1350, 190},
    {"a100-80gb", "NVIDIA A100 80 GB", 81920 * kMiB, kPcie4x16Gbps, "PCIe 4.0 x16", 1750, 190},
    {"h100-80gb", "NVIDIA H100 80 GB HBM3", 81559 * kMiB, kPcie5x16Gbps, "PCIe 5.0 x16", kH100DeviceGbps, kH100DeviceTflops},
    {"h200", "NVIDIA H200 141 GB HBM3e", 143771 * kMiB, kPcie5x16Gbps, "PCIe 5.0 x16", 4200, 600},
};

bool iequal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
            return false;
    }
    return true;
}

}  // namespace

std::span<const DeviceSpec> builtin_devices() { return kDevices; }

std::optional<DeviceSpec> find_device(std::string_view name) {
    for (const DeviceSpec& d : kDevices) {
        if (iequal(d.name, name)) return d;
    }
    return std::nullopt;
}

}  // namespace hr
