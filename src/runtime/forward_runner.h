// ModelRunner over the real forward pass: the planned activations and KV cache on a Backend.
#pragma once

#include "backend/backend.h"
#include "model/activations.h"
#include "model/config.h"
#include "model/forward.h"
#include "model/weights.h"
#include "runtime/model_runner.h"

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

private:
    Backend& be_;
    const ModelConfig& cfg_;
    const ModelWeights& weights_;
    StepLimits limits_;
    Activations& act_;
    KvCache& kv_;
};

}  // namespace hr
