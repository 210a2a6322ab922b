// The tensor-parallel runner (see tensor_parallel_runner.h): per step the caller publishes the batch,
// every rank's thread runs forward() on it, the caller waits for all of them and downloads rank 0's logits.
#include "runtime/tensor_parallel_runner.h"

#include <algorithm>

#include "runtime/pool_tap.h"

namespace hr {

Result<std::unique_ptr<TensorParallelRunner>> TensorParallelRunner::create(
    std::vector<Backend*> backends, std::vector<std::unique_ptr<Communicator>> comms, const ModelConfig& cfg,
    const ModelWeights& full, const TensorParallelOptions& o) {
    const int n = static_cast<int>(backends.size());
    if (n < 1 || comms.size() != backends.size())
        return errorf("tensor parallel: {} backends and {} communicators, expected the same number (at least 1)", n,
                      comms.size());
    HR_ASSIGN(const ShardPlan plan, plan_shards(cfg, n));
    std::vector<RankWeights> shards;
    for (int r = 0; r < n; ++r) {
        Backend* be = backends[static_cast<size_t>(r)];
        if (!be) return errorf("tensor parallel: rank {} has no backend", r);
        be->bind_thread();  // this rank's device current for its uploads (CUDA: one GPU per rank)
        HR_ASSIGN(RankWeights w, shard_weights(cfg, plan, r, full, *be));
        shards.push_back(std::move(w));
    }
    return create(std::move(backends), std::move(comms), cfg, std::move(shards), o);
}

Result<std::unique_ptr<TensorParallelRunner>> TensorParallelRunner::create(
    std::vector<Backend*> backends, std::vector<std::unique_ptr<Communicator>> comms, const ModelConfig& cfg,
    std::vector<RankWeights> shards, const TensorParallelOptions& o) {
    const int n = static_cast<int>(backends.size());
    if (n < 1 || comms.size() != backends.size() || shards.size() != backends.size())
        return errorf("tensor parallel: {} backends, {} communicators and {} weight shards, expected the same number "
                      "(at least 1)", n, comms.size(), shards.size());
    HR_ASSIGN(const ShardPlan plan, plan_shards(cfg, n));
    std::unique_ptr<TensorParallelRunner> t(new TensorParallelRunner());
    t->cfg_ = cfg;
    t->local_ = shard_config(cfg, plan);
    t->limits_ = o.limits;
    if (o.step_timeout.count() <= 0)
        return errorf("tensor parallel: the step timeout must be positive, found {} ms", o.step_timeout.count());
    t->step_timeout_ = o.step_timeout;
    t->finished_.assign(static_cast<size_t>(n), 0);
    for (int r = 0; r < n; ++r) {
        auto k = std::make_unique<Rank>();
        k->be = backends[static_cast<size_t>(r)];
        k->comm = std::move(comms[static_cast<size_t>(r)]);
        if (!k->be || !k->comm || k->comm->rank() != r || k->comm->size() != n)
            return errorf("tensor parallel: rank {} has no backend or a communicator of another rank", r);
        if (!shards[static_cast<size_t>(r)].region)
            return errorf("tensor parallel: rank {} has no weights", r);
        k->be->bind_thread();  // this rank's device current for its allocations (CUDA: one GPU per rank)
        k->weights = std::move(shards[static_cast<size_t>(r)]);
        Backend* be = k->be;
        const auto release = [be](void* p) { be->release(p); };
        k->act_bytes = activation_bytes(t->local_, o.limits);
        HR_ASSIGN(void* a, be->allocate(k->act_bytes, fmt::format("activations (rank {})", r)));
        k->act_region = std::shared_ptr<void>(a, release);
        k->act = carve_activations(t->local_, o.limits, a);
        k->kv_bytes = kv_cache_bytes(t->local_, o.n_kv_blocks, o.block_size, o.kv_dtype);
        HR_ASSIGN(void* kv, be->allocate(k->kv_bytes, fmt::format("kv cache (rank {})", r)));
        k->kv_region = std::shared_ptr<void>(kv, release);
        k->kv = carve_kv_cache(t->local_, o.n_kv_blocks, o.block_size, o.kv_dtype, kv);
        t->ranks_.push_back(std::move(k));
    }
    for (int r = 0; r < n; ++r) t->threads_.emplace_back([p = t.get(), r] { p->worker(r); });
    return t;
}

TensorParallelRunner::~TensorParallelRunner() {
    bool all_back = true;
    {
        std::unique_lock<std::mutex> lock(mu_);
        stop_ = true;
        cv_.notify_all();
        // After a hung step, give the rank a moment to come back (its collective may just have timed out).
        if (hung_)
            all_back = cv_.wait_for(lock, std::chrono::seconds(1),
                                    [&] { return done_ == static_cast<int>(ranks_.size()); });
    }
    cv_.notify_all();
    for (std::thread& th : threads_) {
        // note: a rank still stuck in a device call cannot be joined. Detached, it would touch freed state
        // if it ever woke, which is why hung() tells the owner to end the process instead (serve does, at
        // once, with _Exit: no destructor runs).
        if (all_back)
            th.join();
        else
            th.detach();
    }
}

uint64_t TensorParallelRunner::rank_bytes(int r) const {
    const Rank& k = *ranks_.at(static_cast<size_t>(r));
    return k.weights.bytes + k.act_bytes + k.kv_bytes;
}

void TensorParallelRunner::worker(int r) {
    Rank& k = *ranks_[static_cast<size_t>(r)];
    k.be->bind_thread();
    uint64_t seen = 0;
    for (;;) {
        const StepBatch* batch = nullptr;
        {
            std::unique_lock<std::mutex> lock(mu_);
            cv_.wait(lock, [&] { return stop_ || job_ != seen; });
            if (stop_) return;
            seen = job_;
            batch = batch_;
        }
        if (r == 0 && !pools_.empty()) {
            const PoolTap pool(*k.be, cfg_.dim, *batch, static_cast<int64_t>(batch->token_ids.size()), pools_,
                               pool_rows_);
            k.status = forward(*k.be, local_, k.weights.weights, limits_, k.act, k.kv, *batch, &pool.tap(),
                               k.comm.get());
            if (k.status.ok()) k.status = pool.status();
        } else {
            k.status = forward(*k.be, local_, k.weights.weights, limits_, k.act, k.kv, *batch, nullptr, k.comm.get());
        }
        // forward() waited for the collectives within the communicator's bound; this wait is for the
        // rank's own ops only.
        if (k.status.ok()) k.be->synchronize();
        {
            std::lock_guard<std::mutex> lock(mu_);
            finished_[static_cast<size_t>(r)] = 1;
            ++done_;
        }
        cv_.notify_all();
    }
}

Status TensorParallelRunner::run(const StepBatch& batch, std::span<float> logits) { return run_pooled(batch, logits, {}); }

Status TensorParallelRunner::run_pooled(const StepBatch& batch, std::span<float> logits,
                                        std::span<const PoolSlot> pools) {
    if (dead_) return errorf("tensor parallel: an earlier step failed; the ranks cannot continue");
    const size_t rows = batch.logit_rows.size();
    const size_t need = rows * static_cast<size_t>(cfg_.vocab_size);
    if (logits.size() < need)
        return errorf("logits buffer holds {} floats, step needs {} ({} rows x vocab {})", logits.size(), need, rows,
                      cfg_.vocab_size);
    {
        std::unique_lock<std::mutex> lock(mu_);
        batch_ = &batch;
        pools_ = pools;
        done_ = 0;
        std::fill(finished_.begin(), finished_.end(), 0);
        ++job_;
        cv_.notify_all();
        if (!cv_.wait_for(lock, step_timeout_, [&] { return done_ == static_cast<int>(ranks_.size()); })) {
            // The batch stays published: the stuck rank may still read it, one more reason for the owner
            // to end the process (hung()).
            dead_ = hung_ = true;
            std::string stuck;
            for (size_t r = 0; r < finished_.size(); ++r)
                if (!finished_[r]) stuck += fmt::format("{}{}", stuck.empty() ? "" : ", ", r);
            return errorf("tensor parallel: rank {} did not finish the step within {} ms (hung); the ranks cannot "
                          "continue", stuck, step_timeout_.count());
        }
        batch_ = nullptr;
        pools_ = {};
    }
    for (const auto& k : ranks_) {
        if (!k->status.ok()) {
            // With its communicator intact, the error is forward()'s batch validation, which every rank
            // makes alike before any op runs: the ranks stay in step. A collective's error leaves them apart.
            if (!k->comm->synchronize().ok()) dead_ = true;
            return k->status;
        }
    }
    Rank& r0 = *ranks_[0];
    if (rows > 0) {
        r0.be->bind_thread();
        r0.be->download(logits.data(), r0.act.logits.data, need * sizeof(float));
        r0.be->synchronize();
    }
    return ok();
}

}  // namespace hr
