// --offload-experts on the CPU backend: the offloaded experts load into one host region of the planned
// size (host.experts), their weights are marked host, and the model computes exactly what it computes
// without offload (placement is a no-op for the CPU backend's arithmetic), through a session.
#include <gtest/gtest.h>


#include "backend/cpu/cpu_backend.h"
#include "loader/load.h"
#include "loader/session.h"
#include "memory/plan.h"
#include "support/fixtures.h"

namespace hr {
namespace {

Result<LoadedModel> load(Backend& be, DType fmt, int64_t offloaded) {
    const std::string dir = test::model_fixture("tiny-mixtral");
    HR_ASSIGN(ModelConfig cfg, load_model_config(dir + "/config.json"));
    LoadOptions o;
    o.weights = fmt;
    HR_ASSIGN(o.offload, place_experts(cfg, offloaded));
    return load_model(dir, be, o);
}

std::vector<float> logits_of(Backend& be, const LoadedModel& m, int64_t chunk) {
    std::vector<int32_t> tokens{1};
    for (int i = 1; i < 40; ++i) tokens.push_back(3 + (i * 7919) % 31000);
    auto s = Session::create(be, m, {.context = 64, .chunk = chunk, .all_logits = true});
    EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
    if (!s.ok()) return {};
    std::vector<float> last, all;
    EXPECT_TRUE((*s)->append(tokens, last, &all).ok());
    return all;
}

TEST(OffloadLoad, ExpertsGoToTheHostRegionOfThePlannedSize) {
    cpu::CpuBackend be;
    auto m = load(be, DType::q8, 3);  // 2 layers x 4 experts: layer 0 expert 3, layer 1 experts 2 and 3
    ASSERT_TRUE(m.ok()) << m.error().message;
    EXPECT_EQ(be.allocation_count(), 2u);  // the weights region and the host region, once each
    EXPECT_EQ(m->offloaded_experts, 3);
    for (int64_t l = 0; l < 2; ++l)
        for (int64_t e = 0; e < 4; ++e) {
            const bool host = (l == 0 && e == 3) || (l == 1 && e >= 2);
            const auto& lw = m->weights.layers[static_cast<size_t>(l)];
            EXPECT_EQ(lw.ew1[static_cast<size_t>(e)].host, host) << l << " " << e;
            EXPECT_EQ(lw.ew2[static_cast<size_t>(e)].host, host) << l << " " << e;
            EXPECT_EQ(lw.ew3[static_cast<size_t>(e)].host, host) << l << " " << e;
        }
    EXPECT_FALSE(m->weights.layers[0].wq.host);
    // The plan's regions are exactly what was allocated.
    PlanRequest r;
    r.target = PlanTarget::cpu;
    r.budget_bytes = 1ull << 30;
    r.weight_format = DType::q8;
    r.kv_dtype = DType::f32;
    r.offload = OffloadRequest{.automatic = false, .experts = 3};
    Result<MemoryPlan> p = plan_memory(m->cfg, r);
    ASSERT_TRUE(p.ok()) << p.error().message;
    EXPECT_EQ(p->region_bytes("host.experts"), m->host_bytes);
    EXPECT_EQ(p->region_bytes("weights"), m->weight_bytes);
    EXPECT_EQ(m->weight_bytes + m->host_bytes, stored_weight_bytes(m->cfg, DType::q8, m->checkpoint_dtype));
}

TEST(OffloadLoad, SameLogitsAsWithoutOffload) {
    cpu::CpuBackend be;
    for (DType fmt : {DType::bf16, DType::q4}) {
        auto off = load(be, fmt, 5);
        auto res = load(be, fmt, 0);
        ASSERT_TRUE(off.ok() && res.ok());
        EXPECT_EQ(res->offloaded_experts, 0);
        EXPECT_FALSE(res->host_region);
        for (int64_t chunk : {1, 40}) EXPECT_EQ(logits_of(be, *off, chunk), logits_of(be, *res, chunk)) << chunk;
    }
}

TEST(OffloadLoad, PlacementForAnotherModelIsRefused) {
    cpu::CpuBackend be;
    LoadOptions o;
    o.offload.n_host = 2;
    o.offload.n_experts = 8;  // tiny-mixtral has 4
    o.offload.host_per_layer = {1, 1};
    auto m = load_model(test::model_fixture("tiny-mixtral"), be, o);
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.error().message.find("--offload-experts"), std::string::npos);
}

}  // namespace
}  // namespace hr
