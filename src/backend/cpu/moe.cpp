// CPU MoE: routing (softmax over all experts, top-k, optionally renormalised) and expert computation
// grouped by expert so each expert's weights are read once per step.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_ops.h"

namespace hr::cpu {

void CpuBackend::moe_route(Tensor topk_ids, Tensor topk_w, Tensor router_logits, bool renormalize) {
    const int64_t n = router_logits.rows(), E = router_logits.cols(), k = topk_ids.cols();
    HR_CHECK(topk_ids.rows() == n && topk_w.rows() == n && topk_w.cols() == k && k <= E);
    std::vector<float> prob(static_cast<size_t>(E));
    std::vector<int32_t> order(static_cast<size_t>(E));
    for (int64_t t = 0; t < n; ++t) {
        const float* lg = router_logits.as<float>() + t * E;
        const float mx = *std::max_element(lg, lg + E);
        float sum = 0.0f;
        for (int64_t e = 0; e < E; ++e) sum += (prob[static_cast<size_t>(e)] = std::exp(lg[e] - mx));
        for (auto& p : prob) p /= sum;
        std::iota(order.begin(), order.end(), 0);
        // note: ties resolve to the lower expert index, as torch.topk does on CPU.
        std::stable_sort(order.begin(), order.end(),
                         [&](int32_t a, int32_t b) { return prob[static_cast<size_t>(a)] > prob[static_cast<size_t>(b)]; });
        float ksum = 0.0f;
        for (int64_t j = 0; j < k; ++j) ksum += prob[static_cast<size_t>(order[static_cast<size_t>(j)])];
        if (!renormalize) ksum = 1.0f;
        for (int64_t j = 0; j < k; ++j) {
            const int32_t e = order[static_cast<size_t>(j)];
            topk_ids.as<int32_t>()[t * k + j] = e;
            topk_w.as<float>()[t * k + j] = prob[static_cast<size_t>(e)] / ksum;
        }
    }
}

void CpuBackend::moe_experts(const MoeArgs& a) {
    const int64_t n = a.in.rows(), dim = a.in.cols(), k = a.topk_ids.cols();
    const int64_t E = static_cast<int64_t>(a.experts.w1.size());
    const int64_t ffn = a.experts.w1.empty() ? 0 : a.experts.w1[0].rows;
    const int32_t* ids = a.topk_ids.as<int32_t>();
    const float* wts = a.topk_w.as<float>();
    float* out = a.out.as<float>();
    std::memset(out, 0, static_cast<size_t>(n * dim) * sizeof(float));

    // Assignments (token, slot) ordered by expert: rows [start[e], start[e+1]) of the workspaces.
    std::vector<int64_t> count(static_cast<size_t>(E + 1), 0);
    for (int64_t i = 0; i < n * k; ++i) {
        HR_CHECK(ids[i] >= 0 && ids[i] < E);
        ++count[static_cast<size_t>(ids[i]) + 1];
    }
    std::partial_sum(count.begin(), count.end(), count.begin());
    std::vector<int64_t> fill(count.begin(), count.end() - 1);
    std::vector<int64_t> assign(static_cast<size_t>(n * k));  // workspace row -> flat (token * k + slot)
    for (int64_t i = 0; i < n * k; ++i) assign[static_cast<size_t>(fill[static_cast<size_t>(ids[i])]++)] = i;

    float* ws_in = a.ws_in.as<float>();
    float* ws_gate = a.ws_gate.as<float>();
    float* ws_up = a.ws_up.as<float>();
    float* ws_out = a.ws_out.as<float>();
    for (int64_t r = 0; r < n * k; ++r)
        std::memcpy(ws_in + r * dim, a.in.as<float>() + (assign[static_cast<size_t>(r)] / k) * dim,
                    static_cast<size_t>(dim) * sizeof(float));
    for (int64_t e = 0; e < E; ++e) {
        const int64_t r0 = count[static_cast<size_t>(e)], m = count[static_cast<size_t>(e) + 1] - r0;
        if (m == 0) continue;
        const size_t ue = static_cast<size_t>(e);
        Tensor in = Tensor::make(DType::f32, ws_in + r0 * dim, {m, dim});
        Tensor gate = Tensor::make(DType::f32, ws_gate + r0 * ffn, {m, ffn});
        Tensor up = Tensor::make(DType::f32, ws_up + r0 * ffn, {m, ffn});
        matmul(gate, in, a.experts.w1[ue]);
        matmul(up, in, a.experts.w3[ue]);
        silu_mul(gate, gate, up);
        matmul(Tensor::make(DType::f32, ws_out + r0 * dim, {m, dim}), gate, a.experts.w2[ue]);
    }
    // note: summed in slot order per token (slot 0 then 1), like transformers' expert loop per token.
    std::vector<int64_t> row_of(static_cast<size_t>(n * k));
    for (int64_t r = 0; r < n * k; ++r) row_of[static_cast<size_t>(assign[static_cast<size_t>(r)])] = r;
    for (int64_t t = 0; t < n; ++t) {
        for (int64_t j = 0; j < k; ++j) {
            const int64_t r = row_of[static_cast<size_t>(t * k + j)];
            const float w = wts[t * k + j];
            for (int64_t i = 0; i < dim; ++i) out[t * dim + i] += w * ws_out[r * dim + i];
        }
    }
}

}  // namespace hr::cpu
