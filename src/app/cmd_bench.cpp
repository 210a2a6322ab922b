// `headroom bench`: the synthetic GPU benchmark (bench/mixtral_bench.h). Exists only in CUDA builds.
#ifdef HEADROOM_HAVE_CUDA
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "memory/weight_format.h"
#include "memory/expert_offload.h"
#include "memory/offload_compute.h"
#include "memory/units.h"
#ifdef HEADROOM_HAVE_BENCH
#include "bench/mixtral_bench.h"
#endif

namespace hr::app {

void add_bench_command(CLI::App& app, int& exit_code) {
    auto* cmd = app.add_subcommand("bench", "Benchmark the CUDA backend on a model's exact shapes with random weights");
    struct Args {
        std::string synthetic = "mixtral-8x7b";
        std::string weights = "int8";
        std::string kv_cache = "f16";
        std::vector<int> contexts{512, 4096};
        std::vector<int> prompts{512, 2048};
        std::vector<int> batches{8, 32};
        int iters = 50;
        int device = 0;
        std::string out;
        std::string commit;
        std::string gemv = "block";
        int grouped_max = 64;
        std::string prefill_gemm = "cublas";
        std::string fused = "off";
        std::string gpu_memory;
        std::string offload_experts;
        std::string offload_compute = "auto";
        int tensor_parallel = 1;
    };
    auto a = std::make_shared<Args>();
    cmd->add_option("--synthetic", a->synthetic, "model shapes to generate on the GPU (mixtral-8x7b)")
        ->capture_default_str();
    cmd->add_option("--weights", a->weights, "weight format: int8 or int4")
        ->check(CLI::IsMember({"int8", "int4"}))
        ->capture_default_str();
    cmd->add_option("--kv-cache", a->kv_cache, "KV cache: f16, bf16, int8 or fp8 (int8/fp8: f32 scale per token and kv head)")
        ->check(CLI::IsMember({"f16", "bf16", "int8", "fp8"}))
        ->capture_default_str();
    cmd->add_option("--contexts", a->contexts, "decode contexts (tokens attended to)")->delimiter(',');
    cmd->add_option("--prompts", a->prompts, "prefill prompt lengths")->delimiter(',');
    cmd->add_option("--batches", a->batches, "batched decode: sequences per step (2 to 256)")->delimiter(',');
    cmd->add_option("--iters", a->iters, "timed decode steps per context")->check(CLI::PositiveNumber);
    cmd->add_option("--device", a->device, "CUDA device")->check(CLI::NonNegativeNumber);
    cmd->add_option("--out", a->out, "write the results as markdown to this file");
    cmd->add_option("--commit", a->commit, "commit recorded in the results");
    cmd->add_option("--grouped-max", a->grouped_max,
                    "MoE layers of up to this many tokens group them by expert on the GPU (0: cuBLAS above 8)")
        ->check(CLI::Range(0, 4096))
        ->capture_default_str();
    cmd->add_option("--gpu-memory", a->gpu_memory,
                    "plan for this much device memory (e.g. 24GiB) and check with cudaMemGetInfo that the card's "
                    "memory in use stays within it");
    cmd->add_option("--offload-experts", a->offload_experts,
                    "experts generated into pinned host memory: auto (the fewest the plan under --gpu-memory "
                    "needs) or a number of (layer, expert) instances");
    cmd->add_option("--offload-compute", a->offload_compute,
                    "batch-1 decode of the host experts in the main decode table: gpu (read over the link), cpu "
                    "(computed by the CPU) or auto (the faster by the start-up probe); the offload table measures both")
        ->check(CLI::IsMember({"auto", "gpu", "cpu"}))
        ->capture_default_str();
    cmd->add_option("--gemv", a->gemv,
                    "single-token GEMV kernel: tc (int4/int8 on the tensor cores, else block-K), block (block-K, "
                    "dp4a for int4) or warp (one warp per row)")
        ->check(CLI::IsMember({"tc", "block", "warp"}))
        ->capture_default_str();
    cmd->add_option("--fused", a->fused,
                    "fused decode kernels (rotary + KV write + attention + combine in one launch; residual add + "
                    "norm + router + top-k in one): on, off, or both (on, and the decode table also without them)")
        ->check(CLI::IsMember({"on", "off", "both"}))
        ->capture_default_str();
    cmd->add_option("--prefill-gemm", a->prefill_gemm,
                    "prefill int4/int8 products: tc (quantized tensor-core GEMM, weights dequantized in registers) "
                    "or cublas (each weight dequantized to bf16, then cuBLAS)")
        ->check(CLI::IsMember({"tc", "cublas"}))
        ->capture_default_str();
    cmd->add_option("--tensor-parallel", a->tensor_parallel,
                    "bench ONE rank of N tensor-parallel GPUs (its shapes on this GPU, compute only; "
                    "allreduce_bench gives the all-reduce time per step)")
        ->check(CLI::Range(1, 64))
        ->capture_default_str();
    cmd->callback([a, &exit_code] {
#ifdef HEADROOM_HAVE_BENCH
        bench::BenchOptions o;
        o.model = a->synthetic;
        o.weights = a->weights == "int4" ? DType::q4 : DType::q8;
        o.kv_dtype = *parse_kv_dtype(a->kv_cache);  // one of the names checked above
        o.contexts = a->contexts;
        o.prompts = a->prompts;
        o.batches = a->batches;
        for (int v : o.batches)
            if (v < 2 || v > 256) {
                std::fprintf(stderr, "bench: batch sizes must be 2 to 256, found %d\n", v);
                exit_code = 2;
                return;
            }
        o.iters = a->iters;
        o.tensor_parallel = a->tensor_parallel;
        o.device = a->device;
        o.out = a->out;
        o.commit = a->commit;
        o.gemv_block_k = a->gemv != "warp";
        o.gemv_tensor_cores = a->gemv == "tc";
        // The int4 grouped tensor-core experts are a candidate too: on with the other tensor-core GEMVs.
        o.grouped_tensor_cores_q4 = a->gemv == "tc";
        o.grouped_max_tokens = a->grouped_max;
        o.prefill_qgemm = a->prefill_gemm == "tc";
        o.fused = a->fused != "off";
        o.fused_both = a->fused == "both";
        if (!a->gpu_memory.empty()) {
            Result<uint64_t> cap = parse_byte_size(a->gpu_memory, "--gpu-memory");
            if (!cap.ok()) {
                std::fprintf(stderr, "bench: %s\n", cap.error().message.c_str());
                exit_code = 2;
                return;
            }
            o.gpu_memory = *cap;
        }
        if (!a->offload_experts.empty()) {
            Result<OffloadRequest> off = parse_offload_experts(a->offload_experts);
            if (!off.ok()) {
                std::fprintf(stderr, "bench: %s\n", off.error().message.c_str());
                exit_code = 2;
                return;
            }
            o.offload_experts = a->offload_experts;
        }
        o.offload_compute = *parse_offload_compute(a->offload_compute);  // one of the names checked above
        for (int v : o.contexts)
            if (v < 1) {
                std::fprintf(stderr, "bench: contexts must be positive, found %d\n", v);
                exit_code = 2;
                return;
            }
        for (int v : o.prompts)
            if (v < 1) {
                std::fprintf(stderr, "bench: prompt lengths must be positive, found %d\n", v);
                exit_code = 2;
                return;
            }
        exit_code = bench::run_synthetic_bench(o);
#else
        std::fprintf(stderr, "bench: this build has no benchmarks (configure with -DHEADROOM_BENCH=ON)\n");
        exit_code = 2;
#endif
    });
}

}  // namespace hr::app
#endif
