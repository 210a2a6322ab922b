// Scores a set of label continuations after one shared prompt: the prompt is prefilled once, then every
// label is scored in one batched step whose sequences share the prompt's KV blocks.
#pragma once

#include <deque>
#include <memory>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "classify/embedding.h"
#include "loader/load.h"
#include "model/activations.h"
#include "model/forward.h"

namespace hr {

struct ScorerLimits {
    int64_t context = 0;           // prompt + longest label, in tokens
    int64_t max_labels = 0;
    int64_t max_label_tokens = 0;  // tokens of the longest label (its end token included)
    int64_t chunk = 256;           // prompt tokens per forward step
    DType kv_dtype = DType::f32;
    int block_size = 16;
};

struct LabelScores {
    std::vector<double> logprob;  // [n_labels] sum of log p(token | prompt, earlier label tokens)
    std::vector<double> prob;     // [n_labels] softmax of logprob over the labels
    size_t best = 0;              // argmax of prob (the first on ties)
    int64_t forward_tokens = 0;   // tokens run through the model (prompt + shared-tail reruns + labels)
    std::vector<double> prior;    // [n_labels] content-free prior divided out (score_classify_prompt), or empty
    std::vector<double> similarity;  // [n_labels] embedding/combined methods (score_classify_prompt), or empty
};

// Bytes LabelScorer::create() allocates for these limits (its KV cache and activations, each one
// allocation), so a caller can put them in the memory plan before anything is allocated.
uint64_t scorer_bytes(const ModelConfig& cfg, const ScorerLimits& lim);

// Softmax over label log-probabilities, in double.
std::vector<double> normalise_logprobs(std::span<const double> logprob);

class LabelScorer {
public:
    // Allocates the KV cache and activations for these limits once.
    static Result<std::unique_ptr<LabelScorer>> create(Backend& be, const LoadedModel& model, const ScorerLimits& lim);
    ~LabelScorer();

    // prompt: ids (BOS included); labels: the ids of each label continuation (non-empty each).
    // memoize: look the (prompt, labels) pair up among the last kMemoEntries memoised ones first, and
    // remember the answer (for prompts scored again and again, e.g. the content-free calibration prompts
    // of a batch). A memoised answer has forward_tokens 0.
    Result<LabelScores> score(std::span<const int32_t> prompt, const std::vector<std::vector<int32_t>>& labels,
                              bool memoize = false);
    static constexpr size_t kMemoEntries = 16;
    static constexpr size_t kMaxPoolMemo = 64;  // at least kMaxClassifyExamples (classify.h)

    // The mean output of layers [layer_begin, layer_end) over the token positions 1.. of `tokens` (position
    // 0 alone for a one-token text), the tokens run as one sequence on their own in this scorer's prompt
    // blocks (classify/embedding.h; label_scorer_pool.cpp). memoize: as in score(), for the few-shot
    // examples a batch embeds again and again.
    Result<PooledStates> pooled_hidden_states(std::span<const int32_t> tokens, int64_t layer_begin, int64_t layer_end,
                                              bool memoize = false);

    const ModelConfig& model_config() const { return model_.cfg; }

    // Device bytes held (activations + KV cache), for reports.
    uint64_t allocated_bytes() const { return act_bytes_ + kv_bytes_; }

private:
    LabelScorer(Backend& be, const LoadedModel& m) : be_(be), model_(m) {}
    Backend& be_;
    const LoadedModel& model_;
    ScorerLimits lim_;
    StepLimits step_;
    int64_t prompt_blocks_ = 0;  // blocks reserved for the shared prompt
    int64_t label_blocks_ = 0;   // blocks per label sequence
    void* act_base_ = nullptr;
    void* kv_base_ = nullptr;
    uint64_t act_bytes_ = 0, kv_bytes_ = 0;
    Activations act_;
    KvCache kv_;
    // Memoised answers: key = prompt ids, -1, each label's ids followed by -1; oldest first.
    std::deque<std::pair<std::vector<int32_t>, LabelScores>> memo_;
    std::deque<std::pair<std::vector<int32_t>, PooledStates>> pool_memo_;  // key: begin, end, -1, tokens
    Result<PooledStates> pool_uncached(std::span<const int32_t> tokens, int64_t layer_begin, int64_t layer_end);
    Result<LabelScores> score_uncached(std::span<const int32_t> prompt, const std::vector<std::vector<int32_t>>& labels);
};

}  // namespace hr
