// Expert offload in the synthetic benchmark (see offload_bench.h).
#include "bench/offload_bench.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

#include "backend/cuda/check.h"

namespace hr::bench {

Result<OffloadBenchPlan> plan_bench_offload(const ModelConfig& cfg, DType fmt, const std::string& offload,
                                            uint64_t budget, int64_t context, int64_t chunk, uint64_t extra_bytes) {
    OffloadBenchPlan out;
    out.placement.n_experts = cfg.n_experts;
    out.placement.host_per_layer.assign(static_cast<size_t>(cfg.n_layers), 0);
    if (offload.empty()) return out;
    HR_ASSIGN(OffloadRequest req, parse_offload_experts(offload));
    PlanRequest r;
    r.weight_format = fmt;
    r.budget_bytes = budget;
    r.device_name = "bench";
    r.context = context;
    r.sequences = 1;
    r.prefill_chunk = chunk;
    r.suggest = false;
    r.offload = req;
    if (extra_bytes > 0)
        r.extra_regions.push_back(PlanRegion{"bench.classify", extra_bytes, RegionKind::workspace,
                                             "the bench's classification engine (KV cache and activations)"});
    HR_ASSIGN(out.plan, plan_memory(cfg, r));
    if (!out.plan.fits)
        return errorf("--offload-experts {}: the plan does not fit {} (short by {})", offload, format_bytes(budget),
                      format_bytes(out.plan.shortfall_bytes()));
    out.placement = out.plan.offload;
    return out;
}

double median_copy_ms(cudaStream_t s, void* dst, const void* src, uint64_t bytes, cudaMemcpyKind kind) {
    cudaEvent_t e0, e1;
    HR_CUDA_CHECK(cudaEventCreate(&e0));
    HR_CUDA_CHECK(cudaEventCreate(&e1));
    std::vector<double> ms;
    for (int r = 0; r < 12; ++r) {
        HR_CUDA_CHECK(cudaEventRecord(e0, s));
        HR_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, s));
        HR_CUDA_CHECK(cudaEventRecord(e1, s));
        HR_CUDA_CHECK(cudaEventSynchronize(e1));
        float t = 0.0f;
        HR_CUDA_CHECK(cudaEventElapsedTime(&t, e0, e1));
        if (r >= 2) ms.push_back(t);
    }
    HR_CUDA_CHECK(cudaEventDestroy(e0));
    HR_CUDA_CHECK(cudaEventDestroy(e1));
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
}

double measure_h2d_gbps(cuda::CudaBackend& be, void* dst, uint64_t bytes) {
    void* src = nullptr;
    HR_CUDA_CHECK(cudaHostAlloc(&src, bytes, cudaHostAllocDefault));
    std::fill_n(static_cast<uint8_t*>(src), bytes, uint8_t{1});  // touch every page
    const double ms = median_copy_ms(be.stream(), dst, src, bytes, cudaMemcpyHostToDevice);
    HR_CUDA_CHECK(cudaFreeHost(src));
    return static_cast<double>(bytes) / (ms * 1e-3) / 1e9;
}

uint64_t device_in_use_bytes() {
    size_t free_b = 0, total_b = 0;
    HR_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    return static_cast<uint64_t>(total_b - free_b);
}

}  // namespace hr::bench
