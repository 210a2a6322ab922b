// --offload-compute cpu, the CPU half: one decode token's offloaded experts computed by
// host_experts_token (backend/cpu/host_experts.h) equal the CPU backend's MoE (CpuBackend::moe_experts)
// on tiny-mixtral in int8 and int4: bit for bit when every selected expert is in the mask, and split
// between a mask and its complement (the GPU's share, added afterwards) within float rounding. The GPU's
// share is also computed by the fused decode kernels' own combine epilogue (backend/cuda/pair_combine.h,
// the code gemv.cu and gemv_tc.cu run) with the layer's mask, for every routing of a mixed layer.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/host_experts.h"
#include "backend/cuda/pair_combine.h"
#include "loader/load.h"
#include "memory/expert_offload.h"
#include "support/fixtures.h"

namespace hr::test {
namespace {

struct Fixture {
    std::unique_ptr<Backend> be = cpu::make_cpu_backend();
    LoadedModel m;
};

Fixture load(DType fmt, int64_t offloaded) {
    Fixture f;
    const std::string dir = model_fixture("tiny-mixtral");
    auto cfg = load_model_config(dir + "/config.json");
    EXPECT_TRUE(cfg.ok());
    LoadOptions o;
    o.weights = fmt;
    auto placement = place_experts(*cfg, offloaded);
    EXPECT_TRUE(placement.ok());
    o.offload = *placement;
    auto m = load_model(dir, *f.be, o);
    EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error().message);
    if (m.ok()) f.m = std::move(*m);
    return f;
}

ExpertWeights experts_of(const LayerWeights& l) { return {l.ew1, l.ew3, l.ew2}; }

// The CPU backend's MoE for one token: out [dim].
std::vector<float> reference(Backend& be, const ExpertWeights& ex, const std::vector<float>& x,
                             const std::vector<int32_t>& ids, const std::vector<float>& w, int64_t ffn) {
    const int64_t dim = static_cast<int64_t>(x.size()), k = static_cast<int64_t>(ids.size());
    std::vector<float> out(static_cast<size_t>(dim)), in = x, wi = w;
    std::vector<int32_t> id = ids;
    std::vector<float> ws_in(static_cast<size_t>(k * dim)), ws_gate(static_cast<size_t>(k * ffn)),
        ws_up(static_cast<size_t>(k * ffn)), ws_out(static_cast<size_t>(k * dim));
    MoeArgs a;
    a.out = Tensor::make(DType::f32, out.data(), {1, dim});
    a.in = Tensor::make(DType::f32, in.data(), {1, dim});
    a.topk_ids = Tensor::make(DType::i32, id.data(), {1, k});
    a.topk_w = Tensor::make(DType::f32, wi.data(), {1, k});
    a.experts = ex;
    a.ws_in = Tensor::make(DType::f32, ws_in.data(), {k, dim});
    a.ws_gate = Tensor::make(DType::f32, ws_gate.data(), {k, ffn});
    a.ws_up = Tensor::make(DType::f32, ws_up.data(), {k, ffn});
    a.ws_out = Tensor::make(DType::f32, ws_out.data(), {k, dim});
    be.moe_experts(a);
    return out;
}

std::vector<float> on_host(const ExpertWeights& ex, const std::vector<float>& x, const std::vector<int32_t>& ids,
                           const std::vector<float>& w, uint64_t mask, int64_t ffn, int* computed) {
    const int64_t dim = static_cast<int64_t>(x.size());
    std::vector<float> out(static_cast<size_t>(dim), -1.0f), gate(static_cast<size_t>(ffn)), up(gate.size()),
        y(static_cast<size_t>(dim));
    *computed = cpu::host_experts_token(out.data(), x.data(), ids.data(), w.data(), static_cast<int64_t>(ids.size()),
                                        ex, mask, {gate, up, y});
    return out;
}

class HostExperts : public ::testing::TestWithParam<DType> {};

TEST_P(HostExperts, EqualsCpuMoeForOneToken) {
    Fixture f = load(GetParam(), 8);  // every expert of both layers in host memory
    ASSERT_GT(f.m.offloaded_experts, 0);
    const int64_t dim = f.m.cfg.dim, ffn = f.m.cfg.expert_ffn_dim(), E = f.m.cfg.n_experts;
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (size_t l = 0; l < f.m.weights.layers.size(); ++l) {
        const ExpertWeights ex = experts_of(f.m.weights.layers[l]);
        ASSERT_EQ(cpu::host_expert_mask(ex), (uint64_t{1} << E) - 1);
        for (int trial = 0; trial < 6; ++trial) {
            std::vector<float> x(static_cast<size_t>(dim));
            for (float& v : x) v = nd(rng);
            const int32_t e0 = trial % static_cast<int32_t>(E), e1 = (trial + 1 + trial / 4) % static_cast<int32_t>(E);
            const std::vector<int32_t> ids{e0, e1};
            const std::vector<float> w{0.625f, 0.375f};
            const std::vector<float> ref = reference(*f.be, ex, x, ids, w, ffn);
            int n = 0;
            // Every selected expert on the host: the CPU backend's own sum, bit for bit.
            EXPECT_EQ(on_host(ex, x, ids, w, ~uint64_t{0}, ffn, &n), ref) << "layer " << l << " trial " << trial;
            EXPECT_EQ(n, 2);
            // Split between the host (mask) and the rest (complement), then added as the GPU adds them.
            for (uint64_t mask : {uint64_t{1} << e0, uint64_t{1} << e1, uint64_t{0}}) {
                int a = 0, b = 0;
                const std::vector<float> part = on_host(ex, x, ids, w, mask, ffn, &a);
                const std::vector<float> rest = on_host(ex, x, ids, w, ~mask, ffn, &b);
                EXPECT_EQ(a + b, 2);
                float worst = 0.0f, scale = 0.0f;
                for (size_t i = 0; i < ref.size(); ++i) {
                    worst = std::max(worst, std::abs(part[i] + rest[i] - ref[i]));
                    scale = std::max(scale, std::abs(ref[i]));
                }
                EXPECT_LE(worst, 1e-6f * std::max(1.0f, scale)) << "mask " << mask;
            }
        }
    }
}

TEST_P(HostExperts, SkipsExpertsOutsideTheMaskAndInvalidIds) {
    Fixture f = load(GetParam(), 3);  // layer 0: expert 3; layer 1: experts 2, 3
    const ExpertWeights ex = experts_of(f.m.weights.layers[1]);
    EXPECT_EQ(cpu::host_expert_mask(ex), uint64_t{0b1100});
    const int64_t dim = f.m.cfg.dim, ffn = f.m.cfg.expert_ffn_dim();
    const std::vector<float> x(static_cast<size_t>(dim), 0.5f);
    int n = -1;
    // Neither selected expert is offloaded: zeros, nothing computed.
    const std::vector<float> none = on_host(ex, x, {0, 1}, {0.5f, 0.5f}, cpu::host_expert_mask(ex), ffn, &n);
    EXPECT_EQ(n, 0);
    for (float v : none) EXPECT_EQ(v, 0.0f);
    // Ids no routing produces (negative, past the layer, past 64) are the GPU's to flag, never computed here.
    const std::vector<float> bad = on_host(ex, x, {-1, 70}, {0.5f, 0.5f}, ~uint64_t{0}, ffn, &n);
    EXPECT_EQ(n, 0);
    const std::vector<float> past = on_host(ex, x, {4, 3}, {0.5f, 0.5f}, ~uint64_t{0}, ffn, &n);
    EXPECT_EQ(n, 1);  // only expert 3 (the layer has 4)
}

// The decode step of --offload-compute cpu as the CUDA backend runs it, on the host: the GPU's combine
// kernel writes sum_j w_j y_j over the pairs whose expert is not in the layer's mask (combine_pairs, the
// kernels' epilogue), the host function computes the others (host_experts_token), join adds the two.
// Layer 1 of the 3-expert placement is mixed (experts 2, 3 on the host): every ordered pair of distinct
// experts puts a host expert in slot 0, in slot 1, in both and in neither. The first H100 run's 0.63 logit
// error was this epilogue dropping the GPU's slot-0 expert when slot 1 was a host expert.
TEST_P(HostExperts, GpuCombineEpiloguePlusHostShareEqualsCpuMoe) {
    Fixture f = load(GetParam(), 3);
    const int64_t dim = f.m.cfg.dim, ffn = f.m.cfg.expert_ffn_dim(), E = f.m.cfg.n_experts;
    std::mt19937 rng(11);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (size_t l = 0; l < f.m.weights.layers.size(); ++l) {
        const ExpertWeights ex = experts_of(f.m.weights.layers[l]);
        const uint64_t mask = cpu::host_expert_mask(ex);  // per layer: bit e = this layer's expert e
        ASSERT_NE(mask, 0u);
        ASSERT_NE(mask, (uint64_t{1} << E) - 1) << "layer " << l << " should mix resident and host experts";
        std::vector<float> x(static_cast<size_t>(dim));
        for (float& v : x) v = nd(rng);
        // Each expert's own output y_e (weight 1: exact), the per-pair rows the GPU's w2 GEMV produces.
        std::vector<std::vector<float>> y;
        for (int32_t e = 0; e < static_cast<int32_t>(E); ++e) {
            int n = 0;
            y.push_back(on_host(ex, x, {e}, {1.0f}, ~uint64_t{0}, ffn, &n));
        }
        for (int32_t e0 = 0; e0 < static_cast<int32_t>(E); ++e0)
            for (int32_t e1 = 0; e1 < static_cast<int32_t>(E); ++e1) {
                if (e0 == e1) continue;
                const std::vector<int32_t> ids{e0, e1};
                const std::vector<float> w{0.7f, 0.3f};
                const std::vector<float> ref = reference(*f.be, ex, x, ids, w, ffn);
                int n = 0;
                const std::vector<float> host = on_host(ex, x, ids, w, mask, ffn, &n);
                const bool skip[2] = {((mask >> e0) & 1u) != 0, ((mask >> e1) & 1u) != 0};
                EXPECT_EQ(n, int{skip[0]} + int{skip[1]});
                float worst = 0.0f, scale = 0.0f;
                for (size_t c = 0; c < ref.size(); ++c) {
                    const float v[2] = {y[static_cast<size_t>(e0)][c], y[static_cast<size_t>(e1)][c]};
                    const float gpu = cuda::combine_pairs<2>(w.data(), v, skip);
                    worst = std::max(worst, std::abs(gpu + host[c] - ref[c]));
                    scale = std::max(scale, std::abs(ref[c]));
                }
                EXPECT_LE(worst, 1e-6f * std::max(1.0f, scale))
                    << "layer " << l << " experts " << e0 << ", " << e1 << " (mask " << mask << ")";
            }
    }
}

// The epilogue itself: skipped pairs add nothing wherever they sit, and without any skipped pair the sum
// is the fmaf chain in slot order (the resident path's bits).
TEST(PairCombine, SkippedPairsAddNothingInAnySlot) {
    const float w[2] = {0.25f, 0.75f};
    const float v[2] = {8.0f, -4.0f};
    EXPECT_EQ(cuda::combine_pairs<2>(w, v, {false, false}), std::fmaf(0.75f, -4.0f, std::fmaf(0.25f, 8.0f, 0.0f)));
    EXPECT_EQ(cuda::combine_pairs<2>(w, v, {false, true}), 2.0f);  // the bug returned 0 here
    EXPECT_EQ(cuda::combine_pairs<2>(w, v, {true, false}), -3.0f);
    EXPECT_EQ(cuda::combine_pairs<2>(w, v, {true, true}), 0.0f);
    const float one[1] = {5.0f};
    EXPECT_EQ(cuda::combine_pairs<1>(w, one, {true}), 0.0f);
    EXPECT_EQ(cuda::combine_pairs<1>(w, one, {false}), 1.25f);
}

INSTANTIATE_TEST_SUITE_P(Formats, HostExperts, ::testing::Values(DType::q8, DType::q4),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace hr::test
