// An engine over a loaded model for a command that serves itself (headroom classify, tests, benches):
// its activations and KV cache allocated once, a ForwardRunner over them, and the engine's loop
// started. `serve` builds the same from its memory plan (cmd_serve.cpp).
#pragma once

#include <memory>

#include "backend/backend.h"
#include "loader/load.h"
#include "model/activations.h"
#include "runtime/engine.h"
#include "runtime/forward_runner.h"

namespace hr {

struct LocalEngineOptions {
    int64_t context = 0;        // tokens of one sequence at most
    int64_t max_seqs = 16;      // running sequences, and logits rows of a step
    int64_t max_tokens = 512;   // tokens of a step (prefill chunk)
    int64_t n_kv_blocks = 0;    // 0: max_seqs x ceil(context / block_size)
    int block_size = 16;
    DType kv_dtype = DType::f32;
    int64_t n_valid_tokens = 0; // EngineConfig::n_valid_tokens
    int64_t max_queue = 1024;
    bool prefix_caching = true;
};

// Device bytes start() allocates for these options (activations + KV cache).
uint64_t local_engine_bytes(const ModelConfig& cfg, const LocalEngineOptions& o);

class LocalEngine {
public:
    static Result<std::unique_ptr<LocalEngine>> start(Backend& be, const LoadedModel& m, const LocalEngineOptions& o);
    ~LocalEngine();
    LocalEngine(const LocalEngine&) = delete;
    LocalEngine& operator=(const LocalEngine&) = delete;

    Engine& engine() { return *engine_; }
    const StepLimits& limits() const { return limits_; }

private:
    explicit LocalEngine(Backend& be) : be_(be) {}
    Backend& be_;
    StepLimits limits_;
    void* act_base_ = nullptr;
    void* kv_base_ = nullptr;
    Activations act_;
    KvCache kv_;
    std::unique_ptr<ForwardRunner> runner_;
    std::unique_ptr<Engine> engine_;
};

}  // namespace hr
