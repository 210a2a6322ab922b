// --offload-compute cpu, the CPU half: one decode token's offloaded experts computed by
// host_experts_token (backend/cpu/host_experts.h) equal the CPU backend's MoE (CpuBackend::moe_experts)
// on tiny-mixtral in int8 and int4: bit for bit when every selected expert is in the mask, and split
// between a mask and its complement (the GPU's share, added afterwards) within float rounding.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/host_experts.h"
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

INSTANTIATE_TEST_SUITE_P(Formats, HostExperts, ::testing::Values(DType::q8, DType::q4),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace hr::test
