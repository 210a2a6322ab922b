// A single-sequence runner over a loaded model: its KV cache and activations are allocated once at
// creation (the CLI's `logits`, `generate` and the fixture tests use it; the server has its engine).
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "loader/load.h"
#include "model/activations.h"
#include "model/forward.h"

namespace hr {

struct SessionOptions {
    int64_t context = 0;         // tokens the sequence may hold (prompt + generated)
    int64_t chunk = 256;         // prompt tokens per forward step
    bool all_logits = false;     // keep logits of every prompt position (the `logits` command)
    DType kv_dtype = DType::f32;
    int block_size = 16;
};

class Session {
public:
    static Result<std::unique_ptr<Session>> create(Backend& be, const LoadedModel& model, const SessionOptions& opts);
    ~Session();

    // Appends tokens to the sequence, in chunks. last_logits [vocab] receives the logits of the final
    // token; all_logits (if not null; needs opts.all_logits) receives [n_tokens, vocab].
    Status append(std::span<const int32_t> tokens, std::vector<float>& last_logits, std::vector<float>* all_logits);
    int64_t length() const { return len_; }
    int64_t context() const { return opts_.context; }
    uint64_t allocated_bytes() const { return act_bytes_ + kv_bytes_; }
    void reset() { len_ = 0; }
    // Named intermediates of every following step go to `tap` (model/blocks.h; --dump-activations).
    void set_tap(ActivationTap tap) { tap_ = std::move(tap); }

private:
    Session(Backend& be, const LoadedModel& m) : be_(be), model_(m) {}
    Backend& be_;
    const LoadedModel& model_;
    SessionOptions opts_;
    StepLimits lim_;
    void* act_base_ = nullptr;
    void* kv_base_ = nullptr;
    uint64_t act_bytes_ = 0, kv_bytes_ = 0;
    Activations act_;
    KvCache kv_;
    int64_t len_ = 0;
    ActivationTap tap_;
};

}  // namespace hr
