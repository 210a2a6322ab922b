// MoE helpers on the device: grouping (token, expert) pairs by expert for the prefill path (one warp
// per expert, ballots keep token order), and the weighted combine of the experts' outputs.
#include <string>

#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.cuh"

namespace hr::cuda {
namespace {

constexpr int kPlanWarps = 32;

// One block. ids [nk]; offsets [n_experts + 1]; perm, inv [nk]. An id outside [0, n_experts) belongs to
// no expert: its pair is left out of perm and inv points at row nk - 1 (never produced by routing).
__global__ void moe_plan_kernel(int32_t* perm, int32_t* inv, int32_t* offsets, const int32_t* ids, int64_t nk,
                                int n_experts) {
    __shared__ int32_t counts[kMaxExperts + 1];
    const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
    for (int e = warp; e < n_experts; e += kPlanWarps) {
        int c = 0;
        for (int64_t base = 0; base < nk; base += kWarp) {
            const int64_t i = base + lane;
            c += __popc(__ballot_sync(0xffffffffu, i < nk && ids[i] == e));
        }
        if (lane == 0) counts[e] = c;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        int32_t run = 0;
        for (int e = 0; e < n_experts; ++e) {
            const int32_t c = counts[e];
            counts[e] = run;
            offsets[e] = run;
            run += c;
        }
        offsets[n_experts] = run;
    }
    __syncthreads();
    for (int e = warp; e < n_experts; e += kPlanWarps) {
        int32_t pos = counts[e];
        for (int64_t base = 0; base < nk; base += kWarp) {
            const int64_t i = base + lane;
            const bool mine = i < nk && ids[i] == e;
            const unsigned mask = __ballot_sync(0xffffffffu, mine);
            if (mine) {
                const int32_t at = pos + __popc(mask & ((1u << lane) - 1u));
                perm[at] = static_cast<int32_t>(i);
                inv[i] = at;
            }
            pos += __popc(mask);
        }
    }
    for (int64_t i = threadIdx.x; i < nk; i += blockDim.x)
        if (ids[i] < 0 || ids[i] >= n_experts) inv[i] = static_cast<int32_t>(nk - 1);
}

__global__ void moe_combine_kernel(float* out, const float* ys, const float* w, const int32_t* inv, int64_t k,
                                   int64_t d) {
    const int64_t t = blockIdx.x;
    for (int64_t c = threadIdx.x; c < d; c += blockDim.x) {
        float s = 0.0f;
        for (int64_t j = 0; j < k; ++j) {
            const int64_t row = inv ? inv[t * k + j] : t * k + j;
            s = fmaf(w[t * k + j], ys[row * d + c], s);
        }
        out[t * d + c] = s;
    }
}

}  // namespace

void launch_moe_plan(cudaStream_t s, int32_t* perm, int32_t* inv, int32_t* offsets, const int32_t* ids, int64_t nk,
                     int64_t n_experts) {
    HR_CHECK_MSG(n_experts >= 1 && n_experts <= kMaxExperts,
                 std::string("moe: ") + std::to_string(n_experts) + " experts (expected 1 to " +
                     std::to_string(kMaxExperts) + ")");
    moe_plan_kernel<<<1, kPlanWarps * kWarp, 0, s>>>(perm, inv, offsets, ids, nk, static_cast<int>(n_experts));
    HR_CUDA_LAUNCH_CHECK();
}

void launch_moe_combine(cudaStream_t s, float* out, const float* ys, const float* w, const int32_t* inv, int64_t n,
                        int64_t k, int64_t d) {
    if (n == 0) return;
    moe_combine_kernel<<<static_cast<unsigned>(n), d >= 512 ? 512 : 128, 0, s>>>(out, ys, w, inv, k, d);
    HR_CUDA_LAUNCH_CHECK();
}

}  // namespace hr::cuda

namespace hr::cuda {
namespace {

__global__ void moe_gather_kernel(float* out, const float* in, const int32_t* perm, int64_t k, int64_t d) {
    const int64_t i = blockIdx.x;
    const int64_t src = perm[i] / k;
    for (int64_t c = threadIdx.x; c < d; c += blockDim.x) out[i * d + c] = in[src * d + c];
}

}  // namespace

void launch_moe_gather(cudaStream_t s, float* out, const float* in, const int32_t* perm, int64_t rows, int64_t k,
                       int64_t d) {
    if (rows == 0) return;
    moe_gather_kernel<<<static_cast<unsigned>(rows), d >= 512 ? 512 : 128, 0, s>>>(out, in, perm, k, d);
    HR_CUDA_LAUNCH_CHECK();
}

}  // namespace hr::cuda

namespace hr::cuda {
namespace {

// One block: the token's row and its routing to mapped host memory, then a system-scope fence so the
// host function that follows in stream order reads them complete.
__global__ void moe_to_host_kernel(float* x_host, int32_t* ids_host, float* w_host, const float* x, const int32_t* ids,
                                   const float* w, int64_t dim, int64_t k) {
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) x_host[i] = x[i];
    for (int64_t j = threadIdx.x; j < k; j += blockDim.x) {
        ids_host[j] = ids[j];
        w_host[j] = w[j];
    }
    __threadfence_system();
}

}  // namespace

void launch_moe_to_host(cudaStream_t s, float* x_host, int32_t* ids_host, float* w_host, const float* x,
                        const int32_t* ids, const float* w, int64_t dim, int64_t k) {
    moe_to_host_kernel<<<1, 256, 0, s>>>(x_host, ids_host, w_host, x, ids, w, dim, k);
    HR_CUDA_LAUNCH_CHECK();
}

}  // namespace hr::cuda
