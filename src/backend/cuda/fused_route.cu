// The entry of an MoE layer as one kernel per token row (CudaOptions::fused_router): x += y, the RMSNorm
// of x into out, the router GEMV on the normalised row held in shared memory (f32 logits, also written
// for taps and --calibrate), then softmax + top-k by one warp (route.cuh). Replaces add_rms_norm, the
// router GEMV and moe_route: three launches per MoE layer become one.
#include <string>

#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.cuh"
#include "backend/cuda/route.cuh"

namespace hr::cuda {
namespace {

constexpr int kRowsPerPass = 8;         // router rows accumulated together (one pass over the row each)
constexpr int64_t kMaxSharedRow = 10240;  // floats of the normalised row in shared memory (40 KiB of 48)

// grid: one block per token; block: threads over the row (as add_rms_norm_kernel, so x and out are the
// very values the unfused kernel writes). dynamic shared memory: the normalised row, dim floats.
__global__ void add_rms_norm_route_kernel(float* out, float* x_io, const float* y_in, int64_t dim, Weight norm,
                                          float eps, Weight router, float* logits, int32_t* ids, float* tw, int k,
                                          bool renormalize) {
    extern __shared__ float xs[];
    __shared__ float scratch[32];
    __shared__ float red[32][kRowsPerPass];
    __shared__ float lg[kRouteMaxExperts];
    const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
    const int n_warps = static_cast<int>(blockDim.x) / kWarp;
    const int64_t t = blockIdx.x;
    float* x = x_io + t * dim;
    const float* y = y_in + t * dim;
    float* o = out + t * dim;
    float ss = 0.0f;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
        const float v = x[i] + y[i];
        x[i] = v;
        ss += v * v;
    }
    ss = block_sum(ss, scratch);
    const float inv = rsqrtf(ss / static_cast<float>(dim) + eps);
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
        const float v = x[i] * inv * load_plain(norm.dtype, norm.data, i);
        o[i] = v;
        xs[i] = v;
    }
    __syncthreads();
    // Router: every thread takes columns c = tid, tid + blockDim, ... of kRowsPerPass rows at a time (its
    // loads of one pass are independent), then warp sums and a sum over the warps per row.
    const int E = static_cast<int>(router.rows);
    for (int r0 = 0; r0 < E; r0 += kRowsPerPass) {
        float acc[kRowsPerPass];
#pragma unroll
        for (int j = 0; j < kRowsPerPass; ++j) acc[j] = 0.0f;
        for (int64_t c = threadIdx.x; c < dim; c += blockDim.x) {
            const float xv = xs[c];
#pragma unroll
            for (int j = 0; j < kRowsPerPass; ++j)
                if (r0 + j < E) acc[j] = fmaf(weight_at(router, r0 + j, c), xv, acc[j]);
        }
#pragma unroll
        for (int j = 0; j < kRowsPerPass; ++j) {
            const float v = warp_sum(acc[j]);
            if (lane == 0) red[warp][j] = v;
        }
        __syncthreads();
        if (threadIdx.x < kRowsPerPass && r0 + static_cast<int>(threadIdx.x) < E) {
            float v = 0.0f;
            for (int w = 0; w < n_warps; ++w) v += red[w][threadIdx.x];
            lg[r0 + threadIdx.x] = v;
            logits[t * E + r0 + threadIdx.x] = v;
        }
        __syncthreads();  // red is reused by the next pass; lg complete after the last
    }
    if (warp == 0) route_token_warp(lg, E, k, renormalize, ids + t * k, tw + t * k);
}

int row_threads(int64_t d) { return d >= 1024 ? 512 : d >= 256 ? 256 : d >= 64 ? 64 : 32; }

}  // namespace

bool add_rms_norm_route_supported(int64_t dim, int64_t n_experts, int64_t k) {
    return dim >= 1 && dim <= kMaxSharedRow && n_experts >= 1 && n_experts <= kRouteMaxExperts && k >= 1 &&
           k <= kRouteMaxK && k <= n_experts;
}

void launch_add_rms_norm_route(cudaStream_t s, float* out, float* x, const float* y, int64_t n, int64_t dim,
                               const Weight& norm, float eps, const Weight& router, float* logits, int32_t* ids,
                               float* w, int64_t k, bool renormalize) {
    HR_CHECK_MSG(add_rms_norm_route_supported(dim, router.rows, k) && router.cols == dim,
                 std::string("add_rms_norm_route: dim ") + std::to_string(dim) + ", router [" +
                     std::to_string(router.rows) + ", " + std::to_string(router.cols) + "], top-" + std::to_string(k) +
                     " (checked by the caller)");
    if (n == 0) return;
    const size_t shared = static_cast<size_t>(dim) * sizeof(float);
    add_rms_norm_route_kernel<<<static_cast<unsigned>(n), row_threads(dim), shared, s>>>(
        out, x, y, dim, norm, eps, router, logits, ids, w, static_cast<int>(k), renormalize);
    HR_CUDA_LAUNCH_CHECK();
}

}  // namespace hr::cuda
