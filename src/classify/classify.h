// Document classification: validates the request, builds the prompt from the built-in template (or the
// model's chat template) with optional label descriptions and few-shot examples, scores every label with
// LabelScorer, and returns one of the labels with probabilities that sum to 1, optionally length-
// normalised and calibrated on content-free inputs (calibration.h); or compares the document's hidden
// states with the few-shot examples' (the embedding method, embedding.h), or both. Never a default label:
// every failure is an error.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "classify/embedding.h"
#include "classify/label_scorer.h"
#include "tokenizer/tokenizer.h"

namespace hr {

// The built-in instruction text; `instructions` in a request replaces it (docs/classify.md).
inline constexpr const char* kDefaultClassifyInstructions =
    "Classify the document below into exactly one of the given labels.";

constexpr size_t kMaxClassifyLabels = 64;
constexpr size_t kMaxLabelBytes = 256;
constexpr size_t kMaxLabelDescriptionBytes = 1024;
constexpr size_t kMaxClassifyExamples = 32;

// Defaults of the accuracy options, chosen from the measurements in docs/classify.md.
inline constexpr bool kDefaultCalibrate = false;
inline constexpr bool kDefaultLengthNormalize = false;

// The content-free documents a calibrated request is also scored on (Zhao et al. 2021 use these three).
inline const std::vector<std::string>& content_free_documents() {
    static const std::vector<std::string> docs = {"N/A", "", "[MASK]"};
    return docs;
}

struct ClassifyExample {
    std::string text;   // an example document
    std::string label;  // its label: one of the request's labels
};

struct ClassifyRequest {
    std::string document;
    std::vector<std::string> labels;
    std::optional<std::string> instructions;
    bool truncate = false;  // cut the document to fit the context instead of failing
    std::vector<std::string> label_descriptions;  // empty, or one per label ("" = none for that label)
    std::vector<ClassifyExample> examples;        // few-shot examples, rendered as earlier turns
    bool calibrate = kDefaultCalibrate;           // divide out the content-free prior
    bool length_normalize = kDefaultLengthNormalize;  // mean log-probability per label token
    // How the probabilities are computed; absent: default_method() for the request's examples.
    std::optional<ClassifyMethod> method;
    EmbeddingOptions embedding;  // for the embedding and combined methods
};

// The method a request without one gets (chosen from the measurements in docs/classify.md).
ClassifyMethod default_method(bool has_examples);

// Everything the scorer needs for one request.
struct ClassifyPrompt {
    std::vector<int32_t> prompt;                 // ids, BOS included
    std::vector<std::vector<int32_t>> label_ids; // each label's continuation ids, end-of-sequence token last
    std::vector<std::vector<int32_t>> calibration_prompts;  // the prompt on each content-free document
    bool length_normalize = false;
    ClassifyMethod method = ClassifyMethod::labels;
    // The embedding and combined methods: the document's and each example's own tokens, the example's
    // label index, and the layers and temperature (the layer range is fixed by the scorer's model).
    std::vector<int32_t> embed_document;
    std::vector<std::vector<int32_t>> embed_examples;
    std::vector<size_t> example_labels;
    EmbeddingOptions embedding;
    bool truncated = false;
    int64_t document_tokens = 0;                 // tokens of the document as given
    int64_t document_tokens_kept = 0;            // after truncation
};

struct ClassifyResult {
    std::string label;
    std::vector<std::pair<std::string, double>> probabilities;  // in request order
    std::vector<double> logprobs;                // raw summed log-probabilities, request order
    std::vector<double> prior;                   // the content-free prior when calibrated, else empty
    std::vector<double> similarity;              // embedding/combined: each label's layer-averaged cosine
    int64_t prompt_tokens = 0;
    int64_t forward_tokens = 0;
    bool truncated = false;
    int64_t document_tokens = 0;
    int64_t document_tokens_kept = 0;
    double seconds = 0.0;
};

// Labels: 1..kMaxClassifyLabels, each non-empty, at most kMaxLabelBytes, no duplicates; document non-empty;
// descriptions none or one per label; examples at most kMaxClassifyExamples, non-empty, labelled with one
// of the labels.
Status validate_classify_request(const ClassifyRequest& req);

// The prompt and label ids for a context of `context` tokens. A document that does not fit is an error
// with both numbers unless req.truncate, which keeps the document's beginning and says how much.
Result<ClassifyPrompt> build_classify_prompt(const Tokenizer& tok, const ClassifyRequest& req, int64_t context);

// Scores a built prompt: the document prompt and, when calibrating, the content-free prompts (memoised by
// the scorer, so a batch with the same labels and examples pays for them once). logprob holds the raw
// sums, prob the final probabilities, prior the content-free prior (empty when not calibrating).
Result<LabelScores> score_classify_prompt(LabelScorer& scorer, const ClassifyPrompt& p);

// The prompt tokens the model runs for a document (examples, memoised, not counted): the label prompt
// (labels), the document alone (embedding), or both (combined).
int64_t classify_prompt_tokens(const ClassifyPrompt& p);

// The answer for a scored prompt (labels: the request's, in its order).
ClassifyResult classify_result(const std::vector<std::string>& labels, const ClassifyPrompt& p, const LabelScores& s,
                               double seconds);

Result<ClassifyResult> classify(LabelScorer& scorer, const Tokenizer& tok, const ClassifyRequest& req, int64_t context);

}  // namespace hr
