// The engine: one loop thread that schedules, runs a step on the ModelRunner, samples, and emits
// tokens to each request's RequestStream. submit()/cancel() are safe from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "core/fatal_hooks.h"
#include "model/forward.h"
#include "runtime/embed.h"
#include "runtime/fault_injection.h"
#include "runtime/kv_blocks.h"
#include "runtime/metrics.h"
#include "runtime/model_runner.h"
#include "runtime/request.h"
#include "runtime/scheduler.h"
#include "runtime/score_group.h"

namespace hr {

struct EngineConfig {
    SchedulerLimits limits;
    int64_t n_kv_blocks = 0;
    int block_size = 16;
    int64_t max_queue = 64;     // requests waiting for admission; one more is refused (HTTP 429)
    int64_t context = 0;        // prompt + max_tokens at most
    int64_t n_valid_tokens = 0; // ids >= this are never sampled (tokenizer smaller than the head); 0: all
    double log_interval_s = 10; // periodic throughput line; 0: never
    bool prefix_caching = true; // reuse the K/V of cached full prompt blocks (kv_blocks.h)
};

enum class EngineHealth : uint8_t { ready, draining, dead, stopped };

enum class SubmitErrorKind : uint8_t {
    invalid,      // the request itself is wrong (empty prompt, id outside the vocabulary, too long)
    queue_full,   // HTTP 429 with Retry-After
    deadline,     // its deadline cannot be met
    unavailable,  // draining, stopped or dead (HTTP 503)
};

struct SubmitError {
    SubmitErrorKind kind = SubmitErrorKind::invalid;
    std::string message;      // fixed text plus numbers; never request content
    double retry_after_s = 0; // queue_full: a hint for Retry-After
};

using SubmitResult = std::variant<std::shared_ptr<RequestStream>, SubmitError>;

class Engine {
public:
    // note: the runner outlives the engine. No backend memory is allocated by the engine: the
    // logits staging buffer and step batches live in host memory sized at construction.
    Engine(const EngineConfig& cfg, ModelRunner& runner);
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    // Also registers the engine's fatal hook: on hr::fatal (from any thread, typically the loop thread
    // inside a step) the engine is marked dead at once; requests in flight learn it through their
    // streams (RequestStream::next). Reads HEADROOM_FAULT_INJECT once (test-only, fault_injection.h).
    Status start();
    SubmitResult submit(GenerationRequest req);
    // Scores each label as a continuation of the prompt (score_group.h) through the scheduler,
    // batched with generation under the same budgets. The future gets the log-probabilities, or an
    // error when the engine stops or fails first. Refusals as submit().
    std::variant<std::future<ScoreOutcome>, SubmitError> submit_score(ScoreRequest req);
    // The mean of each layer output in [layer_begin, layer_end) over the text's positions (embed.h),
    // computed through the scheduler, batched with generation and scoring under the same budgets; the
    // text's blocks are reserved at admission and freed at the end. Refusals as submit(), and invalid
    // when the runner cannot pool (pool_layers() 0) or the layers are not a range of the model's.
    std::variant<std::future<EmbedOutcome>, SubmitError> submit_embed(EmbedRequest req);
    // Layers (and their width) submit_embed() can pool; 0 when the runner cannot.
    int64_t pool_layers() const { return runner_.n_layers(); }
    int64_t pool_dim() const { return runner_.hidden_dim(); }
    // Ends the request within one step (reason cancelled) and frees its blocks.
    void cancel(RequestStream& stream);
    // Refuse new requests; those in flight continue.
    void begin_drain();
    // Ends everything still queued or running with `reason` and `message`, then stops the loop.
    void stop(FinishReason reason = FinishReason::shutdown, std::string message = "server shutting down");

    EngineHealth health() const { return health_.load(); }
    int64_t n_in_flight() const { return in_flight_.load(); }
    const EngineMetrics& metrics() const { return metrics_; }
    const EngineConfig& config() const { return cfg_; }
    int64_t vocab_size() const { return runner_.vocab_size(); }
    // Seconds per step, smoothed; 0 before the first step.
    double step_seconds() const { return step_s_.load(); }
    // Seconds since the loop last made progress (finished a step or an idle wait, which lasts at most
    // 50 ms). Large while a step runs; a value far above step_seconds() means the engine is wedged.
    double seconds_since_progress() const;

private:
    // The refusal of a request arriving while the engine is not ready (stopping or dead), or nullopt.
    std::optional<SubmitError> refuse_unless_ready() const;
    // Queues an admitted-to-the-inbox item under mu_ (generation/embed sequences or score groups),
    // counting it as waiting; or the refusal when stopping or the queue is full.
    template <class T>
    std::optional<SubmitError> enqueue(std::vector<T>& inbox, T item);
    void loop();
    void drain_inbox();
    void expire_and_cancel(Clock::time_point now);
    void sample_outputs(const Schedule& s, Clock::time_point now);
    void finish(Sequence* seq, FinishReason reason, std::string error);
    // What a step's score sequences reached; applied once the step's items are no longer read.
    struct GroupEvents {
        std::vector<std::pair<Sequence*, std::shared_ptr<ScoreGroup>>> prompts_done, labels_done;
        std::vector<std::shared_ptr<ScoreGroup>> failed;
    };
    // A score item of a step: sums its scored rows' log-probabilities into the group and notes a
    // computed group prompt, a finished label or a failure. Returns the next logits row.
    size_t score_outputs(const ScheduledSeq& it, size_t row, GroupEvents& ev);
    // Hands computed group prompts to their labels, ends finished labels, groups and failed groups.
    void apply_group_events(GroupEvents& ev);
    // Ends a group: removes its sequences, frees what it holds, delivers the scores or `error`.
    void end_group(ScoreGroup& g, std::string error);
    // Ends an embed sequence: removes it, delivers its means or `error`.
    void end_embed(Sequence* seq, std::string error);
    void fail_all(FinishReason reason, const std::string& message);
    void publish_gauges();
    void maybe_log_throughput(Clock::time_point now);

    EngineConfig cfg_;
    ModelRunner& runner_;
    KvBlockPool pool_;
    Scheduler sched_;
    EngineMetrics metrics_;

    std::mutex mu_;
    std::condition_variable cv_;
    std::vector<std::unique_ptr<Sequence>> inbox_;  // guarded by mu_
    std::vector<std::shared_ptr<ScoreGroup>> group_inbox_;  // guarded by mu_
    int64_t queued_ = 0;                            // guarded by mu_: inbox + scheduler waiting
    bool wake_ = false;                             // guarded by mu_
    bool stop_requested_ = false;                   // guarded by mu_
    FinishReason stop_reason_ = FinishReason::shutdown;
    std::string stop_message_;

    std::atomic<EngineHealth> health_{EngineHealth::stopped};
    std::atomic<int64_t> in_flight_{0};
    std::atomic<double> step_s_{0};
    std::atomic<Clock::rep> heartbeat_{0};  // Clock::now() of the loop's last progress, in ticks
    std::atomic<uint64_t> next_id_{1};
    std::mt19937_64 seed_rng_;  // seeds requests without a seed; loop thread only
    std::thread thread_;
    FatalHookHandle fatal_hook_;
    std::optional<FaultInjector> fault_;  // test-only: set when HEADROOM_FAULT_INJECT is

    // loop-thread state, sized once
    std::vector<float> logits_;  // [max_seqs, vocab]
    StepBatch batch_;
    std::vector<PoolSlot> pools_;  // the step's embed sequences
    Clock::time_point last_log_{};
    uint64_t last_log_prompt_ = 0, last_log_gen_ = 0;
};

}  // namespace hr
