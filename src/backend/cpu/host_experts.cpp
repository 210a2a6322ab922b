// One token's offloaded experts on the CPU (host_experts.h).
#include "backend/cpu/host_experts.h"

#include <algorithm>
#include <cmath>

#include "backend/cpu/cpu_ops.h"

namespace hr::cpu {

uint64_t host_expert_mask(const ExpertWeights& experts) {
    uint64_t m = 0;
    const size_t n = std::min<size_t>(experts.w1.size(), 64);
    for (size_t e = 0; e < n; ++e)
        if (experts.w1[e].host) m |= uint64_t{1} << e;
    return m;
}

int host_experts_token(float* out, const float* x, const int32_t* ids, const float* w, int64_t k,
                       const ExpertWeights& experts, uint64_t mask, const HostExpertScratch& scratch) {
    const int64_t E = static_cast<int64_t>(experts.w1.size());
    const int64_t dim = experts.w1.empty() ? 0 : experts.w1[0].cols;
    HR_CHECK_MSG(E == 0 || (static_cast<int64_t>(scratch.gate.size()) >= experts.w1[0].rows &&
                            static_cast<int64_t>(scratch.up.size()) >= experts.w1[0].rows &&
                            static_cast<int64_t>(scratch.y.size()) >= dim),
                 "host_experts_token: scratch smaller than one expert's hidden and output rows");
    std::fill_n(out, dim, 0.0f);
    int done = 0;
    for (int64_t j = 0; j < k; ++j) {
        const int32_t e = ids[j];
        if (e < 0 || e >= 64 || e >= E || ((mask >> e) & 1u) == 0) continue;
        const auto i = static_cast<size_t>(e);
        const Weight &w1 = experts.w1[i], &w3 = experts.w3[i], &w2 = experts.w2[i];
        const int64_t ffn = w1.rows;
        float* gate = scratch.gate.data();
        float* up = scratch.up.data();
        matmul_f32(gate, x, 1, w1);
        matmul_f32(up, x, 1, w3);
        // The expression of CpuBackend::silu_mul (and of the CUDA kernels' silu epilogue).
        for (int64_t r = 0; r < ffn; ++r) gate[r] = gate[r] / (1.0f + std::exp(-gate[r])) * up[r];
        float* y = scratch.y.data();
        matmul_f32(y, gate, 1, w2);
        const float wj = w[j];
        for (int64_t c = 0; c < dim; ++c) out[c] += wj * y[c];
        ++done;
    }
    return done;
}

}  // namespace hr::cpu
