// /metrics in the Prometheus text exposition format: requests by outcome, tokens, latency
// histograms, queue and running gauges, KV blocks, planned bytes per region.
#pragma once

#include <cstdint>
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
};

std::string render_metrics(const MetricsInput& in);

}  // namespace hr::server
