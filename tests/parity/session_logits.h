// Helpers of the expert-offload parity tests: all logits of a prompt through a Session, the worst
// per-row relative error between two such runs, its bound, and a deterministic prompt.
#pragma once

#include <algorithm>
#include <cmath>
#include <span>
#include <vector>

#include <gtest/gtest.h>

#include "loader/load.h"
#include "loader/session.h"
#include "model/config.h"
#include "parity_util.h"
#include "support/compare.h"
#include "tolerances.h"

namespace hr::test {

// Logits of every position of `tokens` ([tokens, vocab], row-major), appended in chunks of `chunk`.
inline std::vector<float> logits_of(Backend& be, const LoadedModel& m, const std::vector<int32_t>& tokens, int64_t chunk) {
    auto s = Session::create(be, m, {.context = 160, .chunk = chunk, .all_logits = true});
    EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
    if (!s.ok()) return {};
    std::vector<float> last, all;
    const Status st = (*s)->append(tokens, last, &all);
    EXPECT_TRUE(st.ok()) << (st.ok() ? "" : st.error().message);
    return all;
}

// The largest of the rows' max-abs errors relative to the row's largest reference value.
inline double worst_row_error(const std::vector<float>& got, const std::vector<float>& ref, int64_t vocab) {
    if (got.size() != ref.size() || got.empty()) return INFINITY;
    double worst = 0.0;
    for (size_t t = 0; t * static_cast<size_t>(vocab) < ref.size(); ++t) {
        std::span<const float> g(got.data() + t * vocab, static_cast<size_t>(vocab));
        std::span<const float> r(ref.data() + t * vocab, static_cast<size_t>(vocab));
        const Diff d = compare(g, r);
        worst = std::max(worst, d.max_ref > 0 ? d.max_abs / d.max_ref : d.max_abs);
    }
    return worst;
}

// The bound on worst_row_error between a run in chunks of `chunk` tokens on `be` and the CPU oracle, or
// another GPU run whose experts are computed elsewhere (resident, host): int4 and prefill (more than 64
// tokens: tensor-core GEMMs) round to bf16-sized errors; int8 decode GEMVs keep f32 activations on the
// CUDA cores (kFixtureLogitsRelMax) but round them to f16 on the tensor cores (gemv_tc.cu), as
// model_parity_test bounds them (kTolLogitsF16RelMax). The first H100 run measured 5.5e-4 there with
// every expert computed by the host in f32: the rest of the GPU's model, not the host's experts, was off.
inline double offload_logits_tol(const cuda::CudaBackend& be, DType fmt, int64_t chunk) {
    if (chunk > 64 || fmt == DType::q4) return kTolLogitsBf16RelMax;
    if (fmt == DType::q8 && be.options().gemv_tensor_cores) return kTolLogitsF16RelMax;
    return kFixtureLogitsRelMax;
}

// BOS, then n - 1 ids spread over the vocabulary.
inline std::vector<int32_t> prompt(size_t n) {
    std::vector<int32_t> t{1};
    for (size_t i = 1; i < n; ++i) t.push_back(static_cast<int32_t>(3 + (i * 7919) % 31000));
    return t;
}

// The parity backends are shared by every test and reserve their expert staging buffers once, at the
// first load with offloaded experts: reserving for bf16 experts (the largest format) up front lets any
// test load any format afterwards, whatever order the tests run in.
inline Status reserve_staging_for_largest_experts(Backend& be, const ModelConfig& cfg) {
    const uint64_t bf16_expert = 3ull * static_cast<uint64_t>(cfg.expert_ffn_dim()) * static_cast<uint64_t>(cfg.dim) * 2;
    return be.reserve_expert_staging(bf16_expert);
}

}  // namespace hr::test
