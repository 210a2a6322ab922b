// What the server says about itself before the model is ready (issue #19, cold start): the phase of
// start-up and the weights' loading progress, as the GET /health body. The loader adds to weights()
// from its reader threads; the HTTP I/O thread reads a snapshot. Lock-free: only atomics.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "core/byte_progress.h"

namespace hr::server {

// starting: planning, opening files; loading: the weights stream in; warming: the warm-up step runs.
enum class StartupPhase : uint8_t { starting, loading, warming };

class StartupStatus {
public:
    StartupStatus() : t0_(std::chrono::steady_clock::now()) {}
    void set_phase(StartupPhase p) { phase_.store(p); }
    StartupPhase phase() const { return phase_.load(); }
    ByteProgress& weights() { return weights_; }
    // {"status": "starting" | "loading", "phase": "starting" | "weights" | "warm-up", "uptime_s": ..,
    //  "weights": {"done_bytes", "total_bytes", "fraction", "gb_per_s", "eta_s"}} (weights once the loader has counted them).
    std::string health_json() const;

private:
    std::chrono::steady_clock::time_point t0_;
    std::atomic<StartupPhase> phase_{StartupPhase::starting};
    ByteProgress weights_;
};

}  // namespace hr::server
