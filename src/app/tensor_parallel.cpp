// Building the ranks of --tensor-parallel (see tensor_parallel.h).
#include "tensor_parallel.h"

#include <algorithm>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/local_communicator.h"
#include "loader/rank_load.h"
#include "model/builtin_models.h"
#include "model/shard.h"
#include "model_args.h"
#ifdef HEADROOM_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#ifdef HEADROOM_HAVE_NCCL
#include "backend/cuda/nccl_communicator.h"
#endif
#endif

namespace hr::app {

namespace {

// The ranks' backends (kept in s) and their communicators. cfg: the whole model's config.
Result<std::vector<std::unique_ptr<Communicator>>> make_ranks(const std::string& device, int n, const ModelConfig& cfg,
                                                              const TensorParallelOptions& opts,
                                                              TensorParallelSetup& s, std::vector<Backend*>& raw) {
    if (n < 2) return errorf("--tensor-parallel: expected 2 or more ranks, found {}", n);
    HR_ASSIGN(const ShardPlan plan, plan_shards(cfg, n));  // a dimension that does not divide, before any device
    (void)plan;  // CUDA sizes its workspaces from the rank-local config
    (void)opts;
    std::vector<std::unique_ptr<Communicator>> comms;
    if (device == "cpu") {
        // Every rank a CPU backend in this process: the path the CPU tests verify, for trying the split.
        for (int r = 0; r < n; ++r) {
            s.backends.push_back(cpu::make_cpu_backend());
            raw.push_back(s.backends.back().get());
        }
        HR_ASSIGN(comms, cpu::make_local_group(raw));
    } else if (device == "cuda") {
#if defined(HEADROOM_HAVE_CUDA) && defined(HEADROOM_HAVE_NCCL)
        if (cuda::cuda_device_count() < n)
            return errorf("--tensor-parallel {}: {} CUDA devices found", n, cuda::cuda_device_count());
        const ModelConfig local = shard_config(cfg, plan);
        std::vector<cuda::CudaBackend*> gpus;
        for (int r = 0; r < n; ++r) {
            HR_ASSIGN(auto be, cuda::CudaBackend::create(r));
            HR_TRY(reserve_cuda_workspace(*be, local, opts.limits.max_tokens));
            gpus.push_back(be.get());
            raw.push_back(be.get());
            s.backends.push_back(std::move(be));
        }
        HR_ASSIGN(comms, cuda::make_nccl_group(gpus));
#else
        return errorf("--tensor-parallel on --device cuda: this build has no {} (docs/parallel.md)",
#ifdef HEADROOM_HAVE_CUDA
                      "NCCL"
#else
                      "CUDA backend"
#endif
        );
#endif
    } else {
        return errorf("--tensor-parallel: unknown device '{}' (expected cpu or cuda)", device);
    }
    return comms;
}

}  // namespace

Result<std::unique_ptr<TensorParallelSetup>> start_tensor_parallel(const std::string& device, int n,
                                                                  const LoadedModel& m,
                                                                  const TensorParallelOptions& opts) {
    auto s = std::make_unique<TensorParallelSetup>();
    std::vector<Backend*> raw;
    HR_ASSIGN(auto comms, make_ranks(device, n, m.cfg, opts, *s, raw));
    HR_ASSIGN(s->runner, TensorParallelRunner::create(raw, std::move(comms), m.cfg, m.weights, opts));
    return s;
}

Result<std::unique_ptr<TensorParallelSetup>> load_tensor_parallel(const std::string& device, int n,
                                                                 const std::string& model_dir, const LoadOptions& lo,
                                                                 const TensorParallelOptions& opts) {
    // Each rank reads its slices straight from the checkpoint onto its own backend (loader/rank_load.h):
    // no copy of the whole model in host memory.
    HR_ASSIGN(const ModelConfig cfg, resolve_model_config(model_dir));
    auto s = std::make_unique<TensorParallelSetup>();
    std::vector<Backend*> raw;
    HR_ASSIGN(auto comms, make_ranks(device, n, cfg, opts, *s, raw));
    HR_ASSIGN(ShardedModel sharded, load_sharded(model_dir, raw, lo));
    HR_ASSIGN(s->runner, TensorParallelRunner::create(raw, std::move(comms), sharded.model.cfg,
                                                      std::move(sharded.ranks), opts));
    s->model = std::move(sharded.model);
    return s;
}

}  // namespace hr::app
