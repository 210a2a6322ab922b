// `--tensor-parallel N` for the commands that run a model (docs/parallel.md): N backends of --device, the
// communicators (CPU: in-process; CUDA: NCCL over GPUs 0..N-1), and a TensorParallelRunner over the ranks'
// weights, each rank's read straight from the checkpoint (loader/rank_load.h).
#pragma once

#include <memory>
#include <vector>

#include "backend/backend.h"
#include "loader/load.h"
#include "runtime/tensor_parallel_runner.h"

namespace hr::app {

struct TensorParallelSetup {
    std::vector<std::unique_ptr<Backend>> backends;  // rank r's; outlive the runner
    std::unique_ptr<TensorParallelRunner> runner;
    // load_tensor_parallel: the model's description (cfg, formats, checkpoint dtype); no weights of its
    // own (weights and region are empty: each rank holds its shard).
    LoadedModel model;
    ~TensorParallelSetup() { runner.reset(); }  // the rank threads stop before their backends go
};

// The ranks over a model already loaded whole in host memory (each rank's part cut by shard_weights).
// Errors: n < 2, a device other than cpu / cuda, a CUDA build without NCCL, fewer GPUs than n, a model
// whose dimensions do not divide by n.
Result<std::unique_ptr<TensorParallelSetup>> start_tensor_parallel(const std::string& device, int n,
                                                                  const LoadedModel& host_model,
                                                                  const TensorParallelOptions& opts);

// The ranks for the checkpoint at model_dir (what serve and generate run): each rank reads only its slices
// of the checkpoint onto its backend (load_sharded, with `lo`: format, progress, reader threads); host
// memory holds no copy of the model. Errors: those of start_tensor_parallel and of load_sharded.
Result<std::unique_ptr<TensorParallelSetup>> load_tensor_parallel(const std::string& device, int n,
                                                                 const std::string& model_dir, const LoadOptions& lo,
                                                                 const TensorParallelOptions& opts);

}  // namespace hr::app
