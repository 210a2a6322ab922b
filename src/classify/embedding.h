// Nearest-example classification on the model's hidden states: a document and each few-shot example are
// run through the model on their own; each is represented by its mean hidden state (the token at position
// 0 left out: it is the attention sink, whose state is huge and nearly the same for every text) at each
// of a range of middle-to-late layers. A label's score is, averaged over those layers, the cosine
// similarity of the document with its most similar example of that label, after subtracting the mean
// of all the examples (which removes what every business document shares). Probabilities are a softmax
// of the scores over a temperature. Pure functions on host vectors; the model runs in
// LabelScorer::pooled_hidden_states. docs/classify.md has the measurements behind the defaults.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

namespace hr {

// The method that turns a document into label probabilities.
enum class ClassifyMethod {
    labels,     // the label continuations' log-probabilities after the prompt (no examples needed)
    embedding,  // nearest few-shot example by hidden-state similarity (needs examples)
    combined,   // the product of both distributions, renormalised (needs examples)
};
const char* method_name(ClassifyMethod m);
// "labels" | "embedding" | "combined"; anything else is an error naming the choices.
bool parse_method(std::string_view s, ClassifyMethod& out);

struct EmbeddingOptions {
    // Layers whose outputs are pooled: [floor(first * n_layers), floor(last * n_layers)), as fractions of
    // the depth so that they carry over to models of other depths.
    double first_layer = 0.3;
    double last_layer = 0.9;
    double temperature = 0.02;  // softmax(score / temperature); cosine gaps between labels are small
};

// The layer range [begin, end) for a model of n_layers layers (at least one layer).
std::pair<int64_t, int64_t> embedding_layers(int64_t n_layers, const EmbeddingOptions& o);

// Mean hidden states of one text: values[(l - first_layer) * dim + d] for each pooled layer l.
struct PooledStates {
    int64_t first_layer = 0;
    int64_t n_layers = 0;
    int64_t dim = 0;
    std::vector<float> values;
};

// Each label's score for a document: the layer-averaged cosine similarity to the nearest example of
// that label, all vectors centred on the examples' mean. example_labels[i] indexes the label of
// examples[i]; a label with no example scores -1 (the lowest cosine). Shapes must agree (checked by the
// caller: every PooledStates comes from the same layer range).
std::vector<double> embedding_label_scores(const PooledStates& document, std::span<const PooledStates> examples,
                                           std::span<const size_t> example_labels, size_t n_labels);

// softmax(scores / temperature).
std::vector<double> embedding_probabilities(std::span<const double> scores, double temperature);

// The combined method: p_i proportional to a_i * b_i (computed in the log domain; a probability of 0 in
// either is floored at the smallest normal double so the result stays finite).
std::vector<double> combine_probabilities(std::span<const double> a, std::span<const double> b);

}  // namespace hr
