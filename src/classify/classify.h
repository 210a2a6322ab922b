// Document classification: validates the request, builds the prompt from the built-in template (or the
// model's chat template), scores every label with LabelScorer, and returns one of the labels with
// probabilities that sum to 1. Never a default label: every failure is an error.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "classify/label_scorer.h"
#include "tokenizer/tokenizer.h"

namespace hr {

// The built-in instruction text; `instructions` in a request replaces it (docs/classify.md).
inline constexpr const char* kDefaultClassifyInstructions =
    "Classify the document below into exactly one of the given labels.";

constexpr size_t kMaxClassifyLabels = 64;
constexpr size_t kMaxLabelBytes = 256;

struct ClassifyRequest {
    std::string document;
    std::vector<std::string> labels;
    std::optional<std::string> instructions;
    bool truncate = false;  // cut the document to fit the context instead of failing
};

struct ClassifyPrompt {
    std::vector<int32_t> prompt;                 // ids, BOS included
    std::vector<std::vector<int32_t>> label_ids; // each label's continuation ids, end-of-sequence token last
    bool truncated = false;
    int64_t document_tokens = 0;                 // tokens of the document as given
    int64_t document_tokens_kept = 0;            // after truncation
};

struct ClassifyResult {
    std::string label;
    std::vector<std::pair<std::string, double>> probabilities;  // in request order
    std::vector<double> logprobs;
    int64_t prompt_tokens = 0;
    int64_t forward_tokens = 0;
    bool truncated = false;
    int64_t document_tokens = 0;
    int64_t document_tokens_kept = 0;
    double seconds = 0.0;
};

// Labels: 1..kMaxClassifyLabels, each non-empty, at most kMaxLabelBytes, no duplicates; document non-empty.
Status validate_classify_request(const ClassifyRequest& req);

// The prompt and label ids for a context of `context` tokens. A document that does not fit is an error
// with both numbers unless req.truncate, which keeps the document's beginning and says how much.
Result<ClassifyPrompt> build_classify_prompt(const Tokenizer& tok, const ClassifyRequest& req, int64_t context);

Result<ClassifyResult> classify(LabelScorer& scorer, const Tokenizer& tok, const ClassifyRequest& req, int64_t context);

}  // namespace hr
