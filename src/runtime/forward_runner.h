// ModelRunner over the real forward pass: the planned activations and KV cache on a Backend.
#pragma once

#include "backend/backend.h"
#include "model/activations.h"
#include "model/config.h"
#include "model/forward.h"
#include "model/weights.h"
#include "runtime/model_runner.h"

#include <vector>

namespace hr {

// note: borrows everything; the owner (the serve command) keeps backend, weights, activations
// and KV cache alive for the runner's lifetime. run() allocates no backend memory.
class ForwardRunner : public ModelRunner {
public:
    ForwardRunner(Backend& be, const ModelConfig& cfg, const ModelWeights& weights, const StepLimits& limits,
                  Activations& act, KvCache& kv)
        : be_(be), cfg_(cfg), weights_(weights), limits_(limits), act_(act), kv_(kv) {}

    int64_t vocab_size() const override { return cfg_.vocab_size; }
    Status run(const StepBatch& batch, std::span<float> logits) override;
    int64_t n_layers() const override { return cfg_.n_layers; }
    int64_t hidden_dim() const override { return cfg_.dim; }
    // With slots: forward() with an activation tap on "layer<l>.out" (never a recorded graph); each
    // tapped layer that a slot wants is downloaded once ([step tokens, dim] f32) and its rows summed.
    Status run_pooled(const StepBatch& batch, std::span<float> logits, std::span<const PoolSlot> pools) override;

    // Records the ops of decode steps of 1 .. max_tokens tokens (one token per sequence, logits for
    // every token) as backend graphs, once, at start-up; run() replays them for such steps instead of
    // launching each op from the host. Capped by the backend's graph_max_tokens() and the plan's
    // sequences; does nothing on a backend without graphs. Returns how many were recorded.
    Result<int64_t> record_decode_graphs(int64_t max_tokens);

private:
    Backend& be_;
    const ModelConfig& cfg_;
    const ModelWeights& weights_;
    StepLimits limits_;
    Activations& act_;
    KvCache& kv_;
    std::vector<int> graphs_;  // [T - 1]: graph of a decode step of T tokens
    std::vector<float> pool_rows_;  // host copy of one tapped layer output
};

}  // namespace hr
