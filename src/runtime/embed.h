// Pooled hidden states through the scheduler (Engine::submit_embed): a text runs as a prompt-only
// sequence (no sampling, no logits read) in blocks from the engine's pool, batched with the other
// requests' steps, and the runner sums its rows of the layer outputs "layer<l>.out" as the steps run
// (ModelRunner::run_pooled). The result is their mean over the text's positions from `from_position`.
#pragma once

#include <atomic>
#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <vector>

namespace hr {

struct EmbedRequest {
    std::vector<int32_t> tokens;  // [T] ids, BOS included if wanted
    int64_t layer_begin = 0;      // layers [layer_begin, layer_end) are pooled
    int64_t layer_end = 0;
    // Positions [from_position, T) are averaged (clamped to T - 1, so a one-token text pools position 0).
    int64_t from_position = 1;
    // Optional: set it (any thread) to end the request within one step with the error "cancelled".
    std::shared_ptr<std::atomic<bool>> cancel;
};

struct EmbedOutcome {
    std::string error;          // empty: the values are valid
    int64_t n_layers = 0;       // layer_end - layer_begin
    int64_t dim = 0;
    std::vector<float> values;  // [n_layers, dim] the mean of each layer's output rows
    int64_t forward_tokens = 0; // tokens run through the model (every token: the prefix cache is not used)
};

// note: owned by its sequence (shared_ptr); the engine loop thread alone touches it.
struct EmbedJob {
    uint64_t id = 0;
    EmbedRequest req;
    std::vector<double> sums;  // [n_layers, dim] accumulated by the runner, step by step
    EmbedOutcome outcome;
    std::promise<EmbedOutcome> promise;
};

}  // namespace hr
