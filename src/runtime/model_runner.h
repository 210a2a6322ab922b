// The engine's view of the model: a step batch in, one logits row per requested token out.
// The real runner wraps forward(); tests use a fake one, so the engine is tested without a model.
#pragma once

#include <cstdint>
#include <span>

#include "core/status.h"
#include "model/forward.h"

namespace hr {

class ModelRunner {
public:
    virtual ~ModelRunner() = default;
    virtual int64_t vocab_size() const = 0;
    // Runs one step. On success logits [batch.logit_rows.size(), vocab_size()] f32 (host memory)
    // holds row i for batch.logit_rows[i]. An error means the model cannot continue (engine dead).
    virtual Status run(const StepBatch& batch, std::span<float> logits) = 0;
};

}  // namespace hr
