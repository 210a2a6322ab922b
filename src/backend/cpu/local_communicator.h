// The in-process Communicator (backend/communicator.h) for CPU backends: N ranks, each a host thread with
// its own CpuBackend, meeting at a shared barrier. The reference for the tensor-parallel forward in tests
// (the NCCL one runs on GPUs).
//
// The sum is deterministic and the same on every rank: element i is ((b_0[i] + b_1[i]) + ...) + b_{N-1}[i]
// in rank order, whichever rank computes it.
#pragma once

#include <chrono>
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "backend/communicator.h"

namespace hr::cpu {

struct LocalGroupState;  // local_communicator.cpp

// Makes the n communicators of one group; rank r's all_reduce_sum reads and writes host memory of
// backends[r] (which synchronize()s before the sum). Errors: n < 1, a backend that is not a CPU backend.
Result<std::vector<std::unique_ptr<Communicator>>> make_local_group(
    std::vector<Backend*> backends, std::chrono::milliseconds timeout = kDefaultCollectiveTimeout);

}  // namespace hr::cpu
