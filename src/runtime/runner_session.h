// One sequence over any ModelRunner (loader/session.h does the same over one backend's forward): tokens
// appended in chunks, the sequence's KV blocks 0 .. n-1 in order. For `generate --tensor-parallel N`,
// whose model is a TensorParallelRunner.
#pragma once

#include <span>
#include <vector>

#include "runtime/model_runner.h"

namespace hr {

class RunnerSession {
public:
    // The runner's KV cache must hold ceil(context / block_size) blocks and its steps `chunk` tokens.
    RunnerSession(ModelRunner& runner, int64_t context, int block_size, int64_t chunk)
        : runner_(runner), context_(context), block_size_(block_size), chunk_(chunk) {}

    // Appends tokens; last_logits [vocab] receives the logits after the final one. An error for a sequence
    // longer than the context, or the runner's.
    Status append(std::span<const int32_t> tokens, std::vector<float>& last_logits);
    int64_t length() const { return len_; }

private:
    ModelRunner& runner_;
    int64_t context_;
    int block_size_;
    int64_t chunk_;
    int64_t len_ = 0;
};

}  // namespace hr
