// MoE routing of one token by one warp (softmax over the expert logits, top-k, optional renormalisation),
// shared by moe_route_kernel (ops.cu) and the fused add + norm + router kernel (fused_route.cu), so both
// pick the same experts with the same weights from the same logits.
#pragma once

#include <cfloat>
#include <cstdint>

#include "backend/cuda/common.cuh"

namespace hr::cuda {

constexpr int kRouteMaxExperts = 256;  // 8 logits per lane
constexpr int kRouteMaxK = 16;

// The whole warp calls it. logits [n_experts] (global or shared memory); ids, wout [k]. n_experts <=
// kRouteMaxExperts, k <= kRouteMaxK. Ties: the lowest expert index wins.
__device__ __forceinline__ void route_token_warp(const float* logits, int n_experts, int k, bool renormalize,
                                                 int32_t* ids, float* wout) {
    const int lane = threadIdx.x % kWarp;
    constexpr int kPer = kRouteMaxExperts / kWarp;
    float p[kPer];
    float mx = -FLT_MAX;
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
        const int e = lane + j * kWarp;
        p[j] = e < n_experts ? logits[e] : -FLT_MAX;
        mx = fmaxf(mx, p[j]);
    }
    mx = warp_max(mx);
    float sum = 0.0f;
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
        const int e = lane + j * kWarp;
        p[j] = e < n_experts ? expf(p[j] - mx) : -1.0f;  // -1: never selected (probabilities are >= 0)
        if (e < n_experts) sum += p[j];
    }
    sum = warp_sum(sum);
    float chosen_sum = 0.0f;
    float chosen_p = 0.0f;  // lane j < k keeps the j-th choice
    int chosen_e = 0;
    for (int r = 0; r < k; ++r) {
        float best = -2.0f;
        int best_e = 0x7fffffff;
#pragma unroll
        for (int j = 0; j < kPer; ++j) {
            const int e = lane + j * kWarp;
            if (p[j] > best) {  // strict: the lowest expert index wins a tie within a lane
                best = p[j];
                best_e = e;
            }
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            const float ob = __shfl_xor_sync(0xffffffffu, best, o);
            const int oe = __shfl_xor_sync(0xffffffffu, best_e, o);
            if (ob > best || (ob == best && oe < best_e)) {
                best = ob;
                best_e = oe;
            }
        }
        // Remove the winner from its lane's candidates.
#pragma unroll
        for (int j = 0; j < kPer; ++j)
            if (lane + j * kWarp == best_e) p[j] = -2.0f;
        const float prob = best / sum;
        chosen_sum += prob;
        if (lane == r) {
            chosen_p = prob;
            chosen_e = best_e;
        }
    }
    if (lane < k) {
        ids[lane] = chosen_e;
        wout[lane] = renormalize ? chosen_p / chosen_sum : chosen_p;
    }
}

}  // namespace hr::cuda
