// The CPU half of --offload-compute cpu (docs/memory.md, "Expert offload"): one decode token's offloaded
// experts computed on the host, from the very bytes that sit in pinned host memory (Weight::host), with
// the CPU backend's kernels (matmul_f32: the int4 fused per-row kernel, the tiled int8 / float paths) on
// its thread pool. The CUDA backend calls this from a host function inside the decode step (no CUDA API
// here); the GPU computes the token's other experts and adds this partial sum.
#pragma once

#include <cstdint>
#include <span>

#include "backend/op_args.h"

namespace hr::cpu {

// Scratch of one call, sized by the caller once (no allocation per token).
struct HostExpertScratch {
    std::span<float> gate;  // [ffn_dim]
    std::span<float> up;    // [ffn_dim]
    std::span<float> y;     // [dim]
};

// out [dim] = sum over j in [0, k) with bit ids[j] of `mask` set, in slot order, of
//             w[j] * W2_e (silu(W1_e x) * W3_e x),  e = ids[j]
// x [dim] f32, ids [k] i32, w [k] f32. out is overwritten (zeros when no selected expert is in the mask).
// An id outside [0, 64) or outside the layer's experts is never in the mask's range and is skipped: the
// GPU's kernels own every pair the mask does not name. Returns the experts computed.
// note: the same products, silu expression and slot-order sum as CpuBackend::moe_experts for one token,
// so with every selected expert in the mask the result equals the CPU backend's bit for bit.
int host_experts_token(float* out, const float* x, const int32_t* ids, const float* w, int64_t k,
                       const ExpertWeights& experts, uint64_t mask, const HostExpertScratch& scratch);

// Bit e set for every expert e < min(64, n_experts) of the layer whose w1 lives in host memory.
uint64_t host_expert_mask(const ExpertWeights& experts);

}  // namespace hr::cpu
