// The combine epilogue of the fused MoE decode GEMVs (gemv.cu's block-K kernel and gemv_tc.cu): one
// output row's weighted sum over a token's k (token, expert) pairs, leaving out the pairs whose expert
// the host computes (--offload-compute cpu, GemvParams::skip_experts; the host's row is added after).
// Plain C++ with __host__ __device__ functions, so tests/unit/backend_cpu/host_experts_test.cpp runs this
// exact code on the host next to the host's share (host_experts_token).
#pragma once

#include <cmath>

#include "core/half.h"  // HR_HD

#if defined(__CUDA_ARCH__)
#define HR_PAIR_UNROLL _Pragma("unroll")
#else
#define HR_PAIR_UNROLL
#endif

namespace hr::cuda {

// sum over j in [0, K), in slot order, of w[j] * v[j], a skipped pair contributing nothing (0 when all
// are skipped). note: a skipped pair must leave the running sum alone, not reset it: an epilogue that
// wrote `total = v` for it dropped the GPU's own experts of the token whenever a host expert came in a
// later slot (the 0.63 logit error of the first H100 run). Without skipped pairs this is the fmaf chain
// the kernels used before the mask existed, so resident rows are unchanged bit for bit.
template <int K>
HR_HD float combine_pairs(const float* w, const float (&v)[K], const bool (&skip)[K]) {
    float total = 0.0f;
    HR_PAIR_UNROLL
    for (int j = 0; j < K; ++j)
        if (!skip[j]) total = fmaf(w[j], v[j], total);
    return total;
}

}  // namespace hr::cuda
