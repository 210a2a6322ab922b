// ModelRunner over N tensor-parallel ranks (docs/parallel.md): rank r's backend holds the rank's weights
// (shard_weights), activations and KV cache for the rank-local config, each allocated once at create();
// a persistent host thread per rank runs forward() with the rank's communicator on every step, and rank 0's
// logits (the same on every rank) are the step's. One process, one thread per device.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "backend/backend.h"
#include "backend/communicator.h"
#include "model/activations.h"
#include "model/forward.h"
#include "model/shard.h"
#include "model/shard_weights.h"
#include "runtime/model_runner.h"

namespace hr {

struct TensorParallelOptions {
    StepLimits limits;
    int64_t n_kv_blocks = 0;  // per rank (each rank's cache has its KV heads of every block)
    int block_size = 16;
    DType kv_dtype = DType::f32;
    // Bound on one step's wait for every rank (run()). A rank stuck in a collective returns within its
    // communicator's timeout; this catches one stuck anywhere else (a device wait that never ends).
    std::chrono::milliseconds step_timeout = 2 * kDefaultCollectiveTimeout;
};

class TensorParallelRunner : public ModelRunner {
public:
    // backends[r] and comms[r] are rank r's (comms[r]->rank() == r); `full` is the whole model in
    // host-readable memory (loaded on a CPU backend), cut per rank here. Errors: sizes that disagree,
    // a dimension that does not divide (plan_shards), an allocation that fails.
    static Result<std::unique_ptr<TensorParallelRunner>> create(std::vector<Backend*> backends,
                                                                std::vector<std::unique_ptr<Communicator>> comms,
                                                                const ModelConfig& cfg, const ModelWeights& full,
                                                                const TensorParallelOptions& opts);
    // The same with every rank's weights loaded already (loader/rank_load.h: read straight from the
    // checkpoint): shards[r] on backends[r], shaped for shard_config(cfg, plan_shards(cfg, N)).
    static Result<std::unique_ptr<TensorParallelRunner>> create(std::vector<Backend*> backends,
                                                                std::vector<std::unique_ptr<Communicator>> comms,
                                                                const ModelConfig& cfg, std::vector<RankWeights> shards,
                                                                const TensorParallelOptions& opts);
    ~TensorParallelRunner() override;
    TensorParallelRunner(const TensorParallelRunner&) = delete;
    TensorParallelRunner& operator=(const TensorParallelRunner&) = delete;

    int64_t vocab_size() const override { return cfg_.vocab_size; }
    // Every rank runs the step; the first rank error (or communicator error) is returned and the
    // runner is dead afterwards (a failed all-reduce leaves the ranks' states apart). A rank that has not
    // finished within opts.step_timeout: a typed error naming it, the runner dead and hung().
    Status run(const StepBatch& batch, std::span<float> logits) override;
    // Pooling taps rank 0's layer outputs (the residual stream, the same on every rank after the sum).
    int64_t n_layers() const override { return cfg_.n_layers; }
    int64_t hidden_dim() const override { return cfg_.dim; }
    Status run_pooled(const StepBatch& batch, std::span<float> logits, std::span<const PoolSlot> pools) override;

    int ranks() const { return static_cast<int>(ranks_.size()); }
    // A step timed out with a rank still inside it: its thread cannot be joined, so the owner must end
    // the process without destroying the runner (the destructor waits a second, then detaches it).
    bool hung() const { return hung_; }
    const ModelConfig& rank_config() const { return local_; }
    // Bytes rank r allocated (weights + activations + KV cache), each in one allocation.
    uint64_t rank_bytes(int r) const;
    uint64_t rank_weight_bytes(int r) const { return ranks_.at(static_cast<size_t>(r))->weights.bytes; }

private:
    struct Rank {
        Backend* be = nullptr;
        std::unique_ptr<Communicator> comm;
        RankWeights weights;
        std::shared_ptr<void> act_region, kv_region;
        uint64_t act_bytes = 0, kv_bytes = 0;
        Activations act;
        KvCache kv;
        Status status;
    };
    TensorParallelRunner() = default;
    void worker(int r);

    ModelConfig cfg_, local_;
    StepLimits limits_;
    std::vector<std::unique_ptr<Rank>> ranks_;
    std::vector<std::thread> threads_;
    std::mutex mu_;
    std::condition_variable cv_;
    uint64_t job_ = 0;        // bumped per step
    int done_ = 0;            // ranks finished with job_
    bool stop_ = false;
    bool dead_ = false;
    bool hung_ = false;
    std::chrono::milliseconds step_timeout_{0};
    std::vector<char> finished_;  // [rank] 1 once the rank finished job_
    const StepBatch* batch_ = nullptr;
    std::span<const PoolSlot> pools_;  // the step's pooling slots (rank 0 taps them)
    std::vector<float> pool_rows_;     // rank 0's host copy of one tapped layer output
};

}  // namespace hr
