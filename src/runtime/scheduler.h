// The scheduler deals in tokens: each step it picks {sequence -> n_tokens} under a token budget
// (StepLimits.max_tokens) and a sequence budget (max_seqs), decodes first, then prefill chunks in
// arrival order, and admits waiting sequences only when their whole KV need can be reserved. A
// prompt that starts with blocks in the prefix cache starts after them and reserves only the rest. A
// chunk that writes into a block it does not own alone (KvBlockPool::writable) first gets a private copy
// of it (copy-on-write, Schedule::copies), taken from its own reservation.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "backend/op_args.h"
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
    int64_t score_rows = 0;     // score sequences: logits rows of this chunk (Sequence::score_rows)
};

struct Schedule {
    std::vector<ScheduledSeq> items;  // decodes first, then prefill chunks
    std::vector<KvBlockCopy> copies;  // in order, before the step runs (StepBatch::block_copies)
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
    // A score group (score_group.h): queues its prompt sequence, whose admission reserves the blocks
    // of the whole group (the prompt's once, each label sequence's own), so that a group never waits
    // for memory once started.
    void enqueue_group(const std::shared_ptr<ScoreGroup>& g);
    // KV blocks a group reserves when its prompt sequence is admitted.
    int64_t group_blocks_needed(const ScoreGroup& g) const;
    // The group's prompt sequence has computed the whole prompt: the group holds its blocks, its label
    // sequences go to the front of the queue (they draw on the group's reservation), and the prompt
    // sequence is destroyed.
    void complete_group_prompt(Sequence* prompt_seq);
    // Releases what a finished or failed group still holds (its blocks and unused reservation) and
    // drops its label sequences that never reached the queue.
    void release_group(ScoreGroup& g);
    // Requests admitted by the last schedule() (a group counts once, when its first sequence is).
    struct Admitted {
        int64_t requests = 0;
        int64_t prompt_tokens = 0;
        int64_t cached_tokens = 0;  // of them, from the prefix cache
        // Prompt tokens run although the prefix cache held their block: the block of a prompt's last
        // token, run again for that token's logits, when it is a full block.
        int64_t recomputed_tokens = 0;
    };
    const Admitted& admitted() const { return admitted_; }
    // Admits what fits (FIFO: a large request at the head is not overtaken, so it cannot starve),
    // allocates the blocks the chosen tokens need from each reservation (and the copies of blocks they
    // would write into but do not own alone), and returns the step. Logits rows stay within max_seqs
    // (one per sampling sequence; a score sequence's chunk is cut to fit).
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
    Admitted admitted_;
};

}  // namespace hr
