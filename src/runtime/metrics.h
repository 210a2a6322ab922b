// Counters and latency histograms the engine updates and /metrics renders (Prometheus text format).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace hr {

// Cumulative histogram over fixed upper bounds (seconds), Prometheus-style.
class Histogram {
public:
    explicit Histogram(std::vector<double> bounds);
    void observe(double v);
    struct Snapshot {
        std::vector<double> bounds;
        std::vector<uint64_t> cumulative;  // [bounds.size()] count of observations <= bound
        uint64_t count = 0;
        double sum = 0;
    };
    Snapshot snapshot() const;

private:
    mutable std::mutex mu_;
    std::vector<double> bounds_;
    std::vector<uint64_t> counts_;  // [bounds.size() + 1] per bucket, last is +Inf
    uint64_t count_ = 0;
    double sum_ = 0;
};

struct EngineMetrics {
    std::atomic<uint64_t> prompt_tokens{0};     // prompt tokens of admitted requests, once prefilled
    std::atomic<uint64_t> prefix_cache_hit_tokens{0};  // of prompt_tokens, those whose K/V was cached
    // Of prompt_tokens, those run although cached: a whole-block prompt's last block (Scheduler::Admitted).
    std::atomic<uint64_t> prefix_cache_recomputed_tokens{0};
    std::atomic<uint64_t> kv_block_copies{0};   // copy-on-write copies of shared KV blocks (score labels)
    std::atomic<uint64_t> generated_tokens{0};
    std::atomic<uint64_t> score_requests{0};    // score groups ended (scores or an error)
    std::atomic<uint64_t> steps{0};
    std::atomic<uint64_t> step_tokens{0};       // tokens run through the model (prefill + decode)
    std::atomic<int64_t> waiting{0};            // queue length (inbox + scheduler waiting)
    std::atomic<int64_t> running{0};
    // Requests whose tokens ran in the last step (a score group counts once), and the most in any step
    // since start: how many requests (documents of a batch among them) the scheduler runs side by side.
    std::atomic<int64_t> step_requests{0};
    std::atomic<int64_t> step_requests_max{0};
    std::atomic<int64_t> kv_blocks_used{0};
    std::atomic<int64_t> kv_blocks_reserved{0};
    std::atomic<int64_t> kv_blocks_total{0};
    std::atomic<int64_t> kv_blocks_cached{0};   // in the prefix cache (held by a sequence or evictable)
    // finished requests by reason, indexed by FinishReason
    std::array<std::atomic<uint64_t>, 6> finished{};
    Histogram ttft{{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}};
    Histogram inter_token{{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}};
};

}  // namespace hr
