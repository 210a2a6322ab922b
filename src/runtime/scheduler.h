// The scheduler deals in tokens: each step it picks {sequence -> n_tokens} under a token budget
// (StepLimits.max_tokens) and a sequence budget (max_seqs), decodes first, then prefill chunks in
// arrival order, and admits waiting sequences only when their whole KV need can be reserved. A
// prompt that starts with blocks in the prefix cache starts after them and reserves only the rest.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "runtime/kv_blocks.h"
#include "runtime/sequence.h"

namespace hr {

struct SchedulerLimits {
    int64_t max_tokens_per_step = 0;  // StepLimits.max_tokens
    int64_t max_seqs = 0;             // StepLimits.max_seqs: running sequences (one logits row each)
    int64_t max_blocks_per_seq = 0;   // StepLimits.max_blocks_per_seq
};

struct ScheduledSeq {
    Sequence* seq = nullptr;
    int64_t n_tokens = 0;       // tokens [seq->n_computed, seq->n_computed + n_tokens) run this step
    bool wants_logits = false;  // this chunk reaches the last known token: sample after it
};

struct Schedule {
    std::vector<ScheduledSeq> items;  // decodes first, then prefill chunks
    int64_t n_tokens = 0;
    bool empty() const { return items.empty(); }
};

// note: single-threaded (the engine loop owns it). Sequences are owned here from enqueue() until
// take_finished()/remove() hands them back.
class Scheduler {
public:
    Scheduler(const SchedulerLimits& limits, KvBlockPool& pool);

    // KV blocks a request of this size reserves at admission.
    int64_t blocks_needed(int64_t n_prompt, int64_t max_tokens) const;
    // True when a request of this size could ever be admitted (an empty pool would hold it).
    bool fits_at_all(int64_t n_prompt, int64_t max_tokens) const;

    void enqueue(std::unique_ptr<Sequence> seq);
    // Admits what fits (FIFO: a large request at the head is not overtaken, so it cannot starve),
    // allocates the blocks the chosen tokens need from each reservation, and returns the step.
    Schedule schedule();
    // After a step ran: the scheduled tokens are now in the cache; blocks they filled join the prefix
    // cache.
    void commit(const Schedule& s);
    // Removes a sequence (finished, cancelled, expired), frees its blocks and unused reservation.
    std::unique_ptr<Sequence> remove(Sequence* seq);

    const std::vector<std::unique_ptr<Sequence>>& running() const { return running_; }
    const std::deque<std::unique_ptr<Sequence>>& waiting() const { return waiting_; }
    int64_t n_running() const { return static_cast<int64_t>(running_.size()); }
    int64_t n_waiting() const { return static_cast<int64_t>(waiting_.size()); }
    const KvBlockPool& pool() const { return pool_; }
    const SchedulerLimits& limits() const { return limits_; }

private:
    void admit(Clock::time_point now);

    SchedulerLimits limits_;
    KvBlockPool& pool_;
    std::vector<std::unique_ptr<Sequence>> running_;  // admission order
    std::deque<std::unique_ptr<Sequence>> waiting_;
};

}  // namespace hr
