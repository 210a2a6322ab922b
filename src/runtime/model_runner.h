// The engine's view of the model: a step batch in, one logits row per requested token out.
// The real runner wraps forward(); tests use a fake one, so the engine is tested without a model.
#pragma once

#include <cstdint>
#include <span>

#include "core/status.h"
#include "model/forward.h"

namespace hr {

// One sequence's rows of a step whose layer outputs the runner sums (Engine::submit_embed).
struct PoolSlot {
    int32_t seq_row = 0;        // the sequence's value in StepBatch::token_seq
    int32_t from_position = 0;  // only rows at positions >= this are summed
    int64_t layer_begin = 0;    // layers [layer_begin, layer_end)
    int64_t layer_end = 0;
    double* sums = nullptr;     // [(layer_end - layer_begin), hidden_dim()], added to
};

class ModelRunner {
public:
    virtual ~ModelRunner() = default;
    virtual int64_t vocab_size() const = 0;
    // Runs one step. On success logits [batch.logit_rows.size(), vocab_size()] f32 (host memory)
    // holds row i for batch.logit_rows[i]. An error means the model cannot continue (engine dead).
    virtual Status run(const StepBatch& batch, std::span<float> logits) = 0;
    // Layers and width of the outputs run_pooled() can sum; 0 layers: this runner cannot pool.
    virtual int64_t n_layers() const { return 0; }
    virtual int64_t hidden_dim() const { return 0; }
    // run(), also adding each slot's rows of the layer outputs to its sums (no slot: run()).
    virtual Status run_pooled(const StepBatch& batch, std::span<float> logits, std::span<const PoolSlot> pools) {
        if (!pools.empty()) return make_error("this model runner cannot pool layer outputs");
        return run(batch, logits);
    }
};

}  // namespace hr
