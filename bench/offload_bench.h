// The expert-offload part of the synthetic benchmark (`headroom bench --gpu-memory 24GiB
// --offload-experts auto|N`): the count from the planner under the capped budget, the pinned host-link
// rate, the device-memory check against the cap, and the measured numbers next to the planner's
// prediction (memory/expert_offload.h, the formula `headroom plan` prints, fed with the measured rates).
#pragma once

#include <cstdint>
#include <string>

#include <cuda_runtime.h>

#include "backend/cuda/cuda_backend.h"
#include "core/status.h"
#include "memory/expert_offload.h"
#include "memory/plan.h"

namespace hr::bench {

struct OffloadBenchPlan {
    ExpertPlacement placement;   // what the bench puts in pinned host memory
    MemoryPlan plan;             // the planner's plan for the bench's request under the cap (printed)
};

// --offload-experts text ("" = none; then placement is empty) planned for Mixtral-8x7B in `fmt` on a
// GPU of `budget` bytes (0: no cap, the card's total) for one sequence of `context` tokens, prompts of
// `chunk` tokens in one step, plus `extra_bytes` the bench allocates besides (its classification engine).
Result<OffloadBenchPlan> plan_bench_offload(const ModelConfig& cfg, DType fmt, const std::string& offload,
                                            uint64_t budget, int64_t context, int64_t chunk, uint64_t extra_bytes);

// Median milliseconds of one cudaMemcpyAsync of `bytes` from src to dst on stream s (10 timed after 2
// warm-ups, CUDA events): the copy-rate probes (device copy bandwidth, pinned host -> device) share it.
double median_copy_ms(cudaStream_t s, void* dst, const void* src, uint64_t bytes, cudaMemcpyKind kind);

// Pinned host -> device copy rate in GB/s (10^9): `bytes` from pinned memory into `dst` (device memory
// of at least that size), median of 10 after 2 warm-ups.
double measure_h2d_gbps(cuda::CudaBackend& be, void* dst, uint64_t bytes);

// Device memory in use by everything on the card (cudaMemGetInfo total - free: our allocations and the
// CUDA context), in bytes.
uint64_t device_in_use_bytes();

}  // namespace hr::bench
