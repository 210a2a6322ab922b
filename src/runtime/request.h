// What a client asks the engine for (GenerationRequest), how a request ends (FinishReason), and the
// handle through which its tokens come back (RequestStream: a thread-safe event queue).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/sampler.h"

namespace hr {

using Clock = std::chrono::steady_clock;

// The seam for per-request logits constraints (structured output, logit_bias): called on the loop
// thread with the request's logits row before sampling; it may set entries to -inf. It must not block.
class LogitsProcessor {
public:
    virtual ~LogitsProcessor() = default;
    // logits [vocab] f32 host; generated: the tokens this request produced so far.
    virtual void apply(std::span<float> logits, std::span<const int32_t> generated) = 0;
};

struct GenerationRequest {
    std::vector<int32_t> prompt;              // [n_prompt] token ids, BOS included if wanted
    int64_t max_tokens = 16;                  // generated tokens at most (>= 1)
    SamplingParams sampling;
    std::vector<int32_t> stop_token_ids;      // end the request (reason stop) when sampled
    std::optional<Clock::time_point> deadline;
    std::shared_ptr<LogitsProcessor> logits_processor;  // optional
};

enum class FinishReason : uint8_t {
    stop,       // a stop token (or, at the server, a stop string)
    length,     // max_tokens reached
    cancelled,  // the client went away or asked to stop
    timeout,    // the request's deadline passed
    error,      // the engine could not continue this request (non-finite logits, engine failure)
    shutdown,   // the server ended it while shutting down
};

constexpr std::string_view finish_reason_name(FinishReason r) {
    switch (r) {
        case FinishReason::stop: return "stop";
        case FinishReason::length: return "length";
        case FinishReason::cancelled: return "cancelled";
        case FinishReason::timeout: return "timeout";
        case FinishReason::error: return "error";
        case FinishReason::shutdown: return "shutdown";
    }
    return "?";
}

// What a request in flight is told when a fatal error (hr::fatal: a sticky CUDA error, a broken
// invariant) stops the engine: the process ends within seconds and a supervisor restarts it.
inline constexpr std::string_view kEngineFatalMessage =
    "a fatal device error stopped the engine; the server is restarting, retry the request";

struct StreamEvent {
    enum class Kind : uint8_t { token, finished };
    Kind kind = Kind::token;
    int32_t token = -1;                     // Kind::token
    FinishReason reason = FinishReason::stop;  // Kind::finished
    std::string error;                      // Kind::finished with timeout / error / shutdown
    bool engine_dead = false;               // Kind::finished (reason error): kEngineFatalMessage, process ending
};

// Counts and times of one request, final once the finished event was pushed.
struct RequestStats {
    int64_t prompt_tokens = 0;
    int64_t generated_tokens = 0;
    double queue_s = 0;  // submit -> admission (blocks reserved)
    double ttft_s = 0;   // submit -> first token
    double total_s = 0;  // submit -> finish
};

// One request's event queue. The engine pushes; one consumer (an HTTP handler) pops.
// note: after the finished event nothing else is pushed. Once hr::fatal was called anywhere in the
// process, next() replaces whatever is left with one engine_dead finished event: the engine thread
// may be the one stuck in fatal, so the consumer learns of it by itself, without a lock or a push.
class RequestStream {
public:
    explicit RequestStream(uint64_t id) : id_(id) {}
    uint64_t id() const { return id_; }

    // Next event, waiting at most `timeout`; nullopt when none arrived in time.
    std::optional<StreamEvent> next(std::chrono::milliseconds timeout);
    bool cancel_requested() const { return cancel_.load(std::memory_order_acquire); }
    RequestStats stats() const;

    // --- engine side ---
    void push(StreamEvent ev);
    void finish(FinishReason reason, std::string error, const RequestStats& stats);
    void request_cancel() { cancel_.store(true, std::memory_order_release); }

private:
    uint64_t id_;
    std::atomic<bool> cancel_{false};
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<StreamEvent> events_;
    RequestStats stats_;
    bool finished_ = false;
    bool fatal_delivered_ = false;  // the engine_dead event was returned
};

}  // namespace hr
