// The NCCL Communicator (backend/communicator.h): one process drives N GPUs, one host thread and one
// CudaBackend (device r, its own stream) per rank; the communicators are made together with
// ncclCommInitAll at start-up. all_reduce_sum enqueues ncclAllReduce on the rank's backend stream, so it
// orders with the forward's kernels and a CUDA graph may capture it.
// Built only when CMake finds NCCL (HEADROOM_HAVE_NCCL). UNVERIFIED: compiled, never run on GPUs yet.
#pragma once

#include <chrono>
#include <memory>
#include <vector>

#include "backend/communicator.h"
#include "backend/cuda/cuda_backend.h"

namespace hr::cuda {

// One communicator per backend, rank r on backends[r]->device(). Errors: no backends, two on one
// device, ncclCommInitAll failing (named with NCCL's message).
Result<std::vector<std::unique_ptr<Communicator>>> make_nccl_group(
    std::vector<CudaBackend*> backends, std::chrono::milliseconds timeout = kDefaultCollectiveTimeout);

}  // namespace hr::cuda
