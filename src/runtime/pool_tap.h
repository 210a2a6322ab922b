// The activation tap behind ModelRunner::run_pooled: adds each PoolSlot's rows of the "layer<l>.out"
// outputs (the residual stream after layer l) to its sums. Shared by ForwardRunner and the
// tensor-parallel runner (there on rank 0: after the all-reduce the residual stream is the same on
// every rank, so one rank's copy is the model's).
#pragma once

#include <span>
#include <vector>

#include "backend/backend.h"
#include "model/blocks.h"
#include "model/forward.h"
#include "runtime/model_runner.h"

namespace hr {

class PoolTap {
public:
    // be: the backend the forward runs on (its tensors are downloaded); dim: the residual width;
    // rows: host scratch kept by the caller (one tapped layer, [tokens, dim] f32).
    PoolTap(Backend& be, int64_t dim, const StepBatch& batch, int64_t tokens, std::span<const PoolSlot> pools,
            std::vector<float>& rows);
    PoolTap(const PoolTap&) = delete;  // tap() calls back into this object
    PoolTap& operator=(const PoolTap&) = delete;
    const ActivationTap& tap() const { return tap_; }
    // The first malformed layer output seen (a bug in the forward, reported as an error).
    Status status() const { return status_; }

private:
    void on(std::string_view name, const Tensor& t);

    Backend& be_;
    int64_t dim_;
    const StepBatch& batch_;
    int64_t tokens_;
    std::span<const PoolSlot> pools_;
    std::vector<float>& rows_;
    Status status_;
    ActivationTap tap_;
};

}  // namespace hr
