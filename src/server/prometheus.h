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

struct MetricsInput {
    ServerState state{};
    const Engine* engine = nullptr;  // null while loading
    const std::vector<std::pair<std::string, uint64_t>>* planned_bytes = nullptr;
    std::map<std::string, uint64_t> outcomes;
    // --offload-experts (with the engine): experts in host memory and the bytes copied over the host link.
    int64_t offloaded_experts = 0;
    const std::function<uint64_t()>* host_stream_bytes = nullptr;
};

std::string render_metrics(const MetricsInput& in);

}  // namespace hr::server
