// Scoring continuations through the scheduler (classification): one prompt, several continuations
// ("labels"), and for each the summed log-probability of its tokens after the prompt. The prompt's
// full blocks are computed once by a prompt sequence; every label sequence then shares those blocks
// and runs the prompt's last partial block (1..block_size tokens, so that no sequence writes into a
// block another one reads) plus its label, batched with other requests' steps.
#pragma once

#include <atomic>
#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <vector>

namespace hr {

struct Sequence;

struct ScoreRequest {
    std::vector<int32_t> prompt;               // [P] ids, BOS included if wanted
    std::vector<std::vector<int32_t>> labels;  // each a non-empty continuation
    // Optional: set it (any thread) to end the request within one step with the error "cancelled" (a
    // client that went away, a deadline that passed) and free its blocks.
    std::shared_ptr<std::atomic<bool>> cancel;
};

struct ScoreOutcome {
    std::string error;            // empty: the scores are valid
    std::vector<double> logprob;  // [n_labels] sum over the label's tokens of log p(token | everything before)
    int64_t forward_tokens = 0;   // tokens run through the model for this request
    int64_t cached_tokens = 0;    // prompt tokens whose K/V came from the prefix cache
};

// note: owned jointly by its sequences (shared_ptr); the engine loop thread alone touches it.
struct ScoreGroup {
    uint64_t id = 0;
    std::vector<int32_t> prompt;
    std::vector<std::vector<int32_t>> labels;
    std::shared_ptr<std::atomic<bool>> cancel;  // may be null
    int64_t shared_tokens = 0;             // full prompt blocks' tokens, computed once (0: none to share)
    std::vector<int32_t> shared_blocks;    // held by the group from the prompt's end to the group's end
    int64_t reserved = 0;                  // blocks reserved for label sequences not admitted yet
    std::vector<std::unique_ptr<Sequence>> labels_waiting;  // queued when the prompt sequence is done
    bool admitted = false;                 // its first sequence was admitted (left the queue)
    bool done = false;                     // the outcome was delivered (scores or an error)
    int64_t n_labels_done = 0;
    ScoreOutcome outcome;
    std::promise<ScoreOutcome> promise;
};

}  // namespace hr
