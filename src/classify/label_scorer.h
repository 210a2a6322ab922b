// Scores a set of label continuations after one shared prompt through the engine's scheduler
// (Engine::submit_score, runtime/score_group.h): the prompt's full blocks are computed once and
// shared by every label sequence, batched with the other requests' prefill and decode steps, in the
// engine's own planned KV cache. No memory of its own.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <deque>
#include <mutex>
#include <span>
#include <vector>

#include "classify/embedding.h"
#include "core/status.h"
#include "runtime/engine.h"

namespace hr {

struct LabelScores {
    std::vector<double> logprob;  // [n_labels] sum of log p(token | prompt, earlier label tokens)
    std::vector<double> prob;     // [n_labels] softmax of logprob over the labels
    size_t best = 0;              // argmax of prob (the first on ties)
    int64_t forward_tokens = 0;   // tokens run through the model (the prompt once, each label but its last token)
    int64_t cached_tokens = 0;    // prompt tokens whose K/V came from the engine's prefix cache
    std::vector<double> prior;    // [n_labels] content-free prior divided out (score_classify_prompt), or empty
    std::vector<double> similarity;  // [n_labels] embedding/combined methods (score_classify_prompt), or empty
};

// Softmax over label log-probabilities, in double.
std::vector<double> normalise_logprobs(std::span<const double> logprob);

// note: thread-safe; score() blocks the calling thread (not the engine loop) until the engine has
// scored, so several documents are in flight when several threads call it.
class LabelScorer {
public:
    explicit LabelScorer(Engine& engine) : engine_(engine), memo_(std::make_shared<Memo>()) {}
    // A view for one request: shares `shared`'s engine and memo, and ends its engine requests when
    // `cancel` is set (the client went away, the deadline passed). `submitted`, when given, is set once
    // this view has handed a request to the engine (or had it refused): a batch (classify_batch.h)
    // starts its next document only after that, so that the engine's queue shows this one.
    LabelScorer(LabelScorer& shared, std::shared_ptr<std::atomic<bool>> cancel,
                std::shared_ptr<std::atomic<bool>> submitted = nullptr)
        : engine_(shared.engine_), memo_(shared.memo_), cancel_(std::move(cancel)), submitted_(std::move(submitted)) {}
    // Waits until no Hold is alive. Stop the engine first: then every score() returns at once.
    ~LabelScorer();
    LabelScorer(const LabelScorer&) = delete;
    LabelScorer& operator=(const LabelScorer&) = delete;

    // Keeps the scorer (and so its engine) from being destroyed while a thread that is not the owner's
    // still uses it (the server scores on a worker thread that may outlive its HTTP request).
    class Hold {
    public:
        explicit Hold(LabelScorer& s);
        Hold(Hold&& o) noexcept : s_(o.s_) { o.s_ = nullptr; }
        Hold(const Hold&) = delete;
        Hold& operator=(const Hold&) = delete;
        Hold& operator=(Hold&&) = delete;
        ~Hold();
        LabelScorer& scorer() const { return *s_; }

    private:
        LabelScorer* s_;
    };

    // prompt: ids (BOS included); labels: the ids of each label continuation (non-empty each).
    // memoize: look the (prompt, labels) pair up among the last kMemoEntries memoised ones first, and
    // remember the answer (for prompts scored again and again, e.g. the content-free calibration prompts
    // of a batch). A memoised answer has forward_tokens 0.
    Result<LabelScores> score(std::span<const int32_t> prompt, const std::vector<std::vector<int32_t>>& labels,
                              bool memoize = false);
    static constexpr size_t kMemoEntries = 16;
    static constexpr size_t kMaxPoolMemo = 64;  // at least kMaxClassifyExamples (classify.h)

    // The mean output of layers [layer_begin, layer_end) over the token positions 1.. of `tokens` (position
    // 0 alone for a one-token text), the tokens run as one sequence of their own through the engine
    // (Engine::submit_embed, runtime/embed.h; never from the prefix cache), batched with other requests.
    // memoize: as in score(), for the few-shot examples a batch embeds again and again.
    Result<PooledStates> pooled_hidden_states(std::span<const int32_t> tokens, int64_t layer_begin, int64_t layer_end,
                                              bool memoize = false);

    // The model's layers (what pooled_hidden_states can pool; 0 when the engine's runner cannot pool).
    int64_t n_layers() const { return engine_.pool_layers(); }
    const Engine& engine() const { return engine_; }

private:
    Result<LabelScores> score_uncached(std::span<const int32_t> prompt, const std::vector<std::vector<int32_t>>& labels);
    Result<PooledStates> pool_uncached(std::span<const int32_t> tokens, int64_t layer_begin, int64_t layer_end);

    // Memoised answers: key = prompt ids, -1, each label's ids followed by -1; oldest first.
    struct Memo {
        std::mutex mu;
        std::deque<std::pair<std::vector<int32_t>, LabelScores>> entries;
        std::deque<std::pair<std::vector<int32_t>, PooledStates>> pooled;  // key: begin, end, -1, tokens
    };

    Engine& engine_;
    std::shared_ptr<Memo> memo_;
    std::shared_ptr<std::atomic<bool>> cancel_;  // may be null
    std::shared_ptr<std::atomic<bool>> submitted_;  // may be null
    std::mutex mu_;  // guards holds_
    std::condition_variable cv_;
    int64_t holds_ = 0;
};

}  // namespace hr
