// /metrics in the Prometheus text exposition format: requests by outcome, tokens, latency
// histograms, queue and running gauges, KV blocks, planned bytes per region.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "runtime/engine.h"

namespace hr::server {

enum class ServerState : uint8_t;

// --offload-compute (memory/offload_compute.h): the choice made at start-up and its rates; the host's
// running count of the experts it computed.
struct OffloadComputeInfo {
    std::string requested;  // auto | gpu | cpu
    std::string mode;       // gpu | cpu: the one taken (empty: nothing was chosen, no metrics)
    double link_gbps = 0;   // the GPU reading a host expert in place
    double cpu_gbps = 0;    // the host computing one
    double host_call_ms = 0;
    bool measured = false;  // the rates come from the start-up probe (else stated defaults)
    std::function<uint64_t()> cpu_experts;  // any thread
};

// One region of the memory plan in /metrics. rank >= 0 (--tensor-parallel N > 1): the region of that
// rank's device, shown with a rank label; -1: the one device's (no label, as before tensor parallel).
struct PlannedRegion {
    std::string region;
    uint64_t bytes = 0;
    int rank = -1;
};
using PlannedBytes = std::vector<PlannedRegion>;

struct MetricsInput {
    ServerState state{};
    const Engine* engine = nullptr;  // null while loading
    const PlannedBytes* planned_bytes = nullptr;
    std::map<std::string, uint64_t> outcomes;
    // --offload-experts (with the engine): experts in host memory and the bytes copied over the host link.
    int64_t offloaded_experts = 0;
    const std::function<uint64_t()>* host_stream_bytes = nullptr;
    const OffloadComputeInfo* offload_compute = nullptr;  // with the engine, when a choice was made
};

std::string render_metrics(const MetricsInput& in);

}  // namespace hr::server
