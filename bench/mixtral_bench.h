// `headroom bench --synthetic mixtral-8x7b`: Mixtral-8x7B's exact shapes with random int8/int4 weights
// generated on the GPU; decode tok/s at several contexts (CUDA graph), prefill time, per-op breakdown,
// the card's measured copy bandwidth and the achieved fraction of it.
#pragma once

#include <string>
#include <vector>

#include "core/dtype.h"
#include "memory/offload_compute.h"

namespace hr::bench {

struct BenchOptions {
    std::string model = "mixtral-8x7b";
    DType weights = DType::q8;              // q8 (int8) or q4 (int4)
    DType kv_dtype = DType::f16;            // --kv-cache: f16, bf16, i8 (int8) or f8_e4m3 (fp8)
    std::vector<int> contexts{512, 4096};   // decode: tokens attended to
    std::vector<int> prompts{512, 2048};    // prefill: prompt lengths
    std::vector<int> batches{8, 32};        // batched decode: sequences per step
    int iters = 50;                         // timed decode steps per context
    int device = 0;
    std::string out;                        // markdown results file ("" = none)
    std::string commit;                     // recorded in the results
    bool gemv_block_k = true;               // false: one-warp-per-row GEMVs (for comparison)
    bool gemv_tensor_cores = false;         // --gemv tc: int4 / int8 GEMVs on the tensor cores (candidate)
    bool grouped_tensor_cores_q4 = false;   // --gemv tc: also the int4 grouped experts on the tensor cores
    int grouped_max_tokens = 64;            // MoE tokens grouped by expert (0: cuBLAS above 8 tokens)
    bool prefill_qgemm = false;             // --prefill-gemm tc: quantized tensor-core prefill GEMM (candidate)
    // --fused on: CudaOptions::fused_decode_attention and fused_router (candidates, issue 15); --fused both:
    // on, and the decode table measures each context's graph with the fusions off too (same run, same card).
    bool fused = false;
    bool fused_both = false;
    // --gpu-memory: the plan's budget (0: no cap); with it the bench checks with cudaMemGetInfo that the
    // card's memory in use stays within it. --offload-experts auto|N ("" = none): experts generated into
    // pinned host memory (memory/expert_offload.h), measured next to the planner's prediction.
    uint64_t gpu_memory = 0;
    std::string offload_experts;
    // --offload-compute auto|gpu|cpu (memory/offload_compute.h): how batch-1 decode computes the selected
    // host experts in the main decode table; the offload table measures both modes.
    OffloadCompute offload_compute = OffloadCompute::automatic;
    // --tensor-parallel N: the shapes of ONE rank of N (model/shard.h: its heads, its expert columns,
    // embedding / router / head whole) on this one GPU: a rank's compute per step, without the all-reduces
    // (bench/allreduce measures those). 1: the whole model.
    int tensor_parallel = 1;
};

// Runs the benchmark, prints the tables, writes opts.out; returns the process exit code.
int run_synthetic_bench(const BenchOptions& opts);

}  // namespace hr::bench
