// Scoring continuations through the scheduler (classification): one prompt, several continuations
// ("labels"), and for each the summed log-probability of its tokens after the prompt. A prompt sequence
// computes the whole prompt once; its last row scores every label's first token. Each label of two or
// more tokens then runs as a label sequence over the rest of its label (its last token is never run: no
// logits follow it), batched with other requests' steps. A label sequence holds the prompt's blocks by
// reference; the prompt's partial last block, which its first token writes into, is copied on write
// (Scheduler::schedule: a private copy for every writer but the last).
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
    int64_t prompt_forward_tokens = 0;  // of them, prompt positions (each at most once: P - cached_tokens)
    int64_t cached_tokens = 0;    // prompt tokens whose K/V came from the prefix cache
    int64_t block_copies = 0;     // copies of the prompt's partial last block made for label sequences
};

// note: owned jointly by its sequences (shared_ptr); the engine loop thread alone touches it.
struct ScoreGroup {
    uint64_t id = 0;
    std::vector<int32_t> prompt;
    std::vector<std::vector<int32_t>> labels;
    std::shared_ptr<std::atomic<bool>> cancel;  // may be null
    // The prompt's blocks (full ones, then the partial last one if any), held by the group from the prompt
    // sequence's end until every label sequence holds them too.
    std::vector<int32_t> prompt_blocks;
    int64_t reserved = 0;                  // blocks reserved for label sequences not admitted yet
    std::vector<std::unique_ptr<Sequence>> labels_waiting;  // queued when the prompt sequence is done
    int64_t n_label_seqs = 0;              // labels of two or more tokens (one-token labels need no sequence)
    int64_t n_labels_admitted = 0;
    bool admitted = false;                 // its first sequence was admitted (left the queue)
    bool done = false;                     // the outcome was delivered (scores or an error)
    int64_t n_labels_done = 0;
    ScoreOutcome outcome;
    std::promise<ScoreOutcome> promise;
};

}  // namespace hr
