// The engine over the real forward pass (CPU backend, fixture models): all fixture prompts at once,
// chunked prefill mixed with decodes and non-identity block tables, give transformers' greedy
// continuations; and the engine allocates no backend memory after start.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "backend/cpu/cpu_backend.h"
#include "loader/load.h"
#include "runtime/engine.h"
#include "runtime/forward_runner.h"

namespace hr {
namespace {

using namespace std::chrono_literals;

class EngineOnFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(EngineOnFixture, ConcurrentGreedyMatchesTransformersWithoutAllocating) {
    const std::string dir = std::string(HR_FIXTURES_DIR) + "/models/" + GetParam();
    std::ifstream f(dir + "/expected.json");
    ASSERT_TRUE(f.good());
    nlohmann::json expected = nlohmann::json::parse(f);

    cpu::CpuBackend be;
    auto m = load_model(dir, be, {});
    ASSERT_TRUE(m.ok()) << m.error().message;
    constexpr int kBlock = 16;
    // Small steps so prompts span several chunks and share steps with other sequences' decodes.
    StepLimits lim{.max_tokens = 8, .max_seqs = 4, .max_blocks_per_seq = 8};
    const int64_t n_blocks = 40;  // more than 4 x 8: block ids are not the identity
    auto act_base = be.allocate(activation_bytes(m->cfg, lim), "activations");
    auto kv_base = be.allocate(kv_cache_bytes(m->cfg, n_blocks, kBlock, DType::f32), "kv");
    ASSERT_TRUE(act_base.ok() && kv_base.ok());
    Activations act = carve_activations(m->cfg, lim, *act_base);
    KvCache kv = carve_kv_cache(m->cfg, n_blocks, kBlock, DType::f32, *kv_base);
    ForwardRunner runner(be, m->cfg, m->weights, lim, act, kv);

    EngineConfig ec;
    ec.limits = {.max_tokens_per_step = lim.max_tokens, .max_seqs = lim.max_seqs,
                 .max_blocks_per_seq = lim.max_blocks_per_seq};
    ec.n_kv_blocks = n_blocks;
    ec.block_size = kBlock;
    ec.context = lim.max_blocks_per_seq * kBlock;
    ec.log_interval_s = 0;
    Engine engine(ec, runner);
    ASSERT_TRUE(engine.start().ok());
    const uint64_t allocs = be.allocation_count();

    std::vector<std::shared_ptr<RequestStream>> streams;
    std::vector<std::vector<int32_t>> want;
    for (const auto& p : expected["prompts"]) {
        GenerationRequest r;
        r.prompt = p["ids"].get<std::vector<int32_t>>();
        want.push_back(p["greedy_ids"].get<std::vector<int32_t>>());
        r.max_tokens = static_cast<int64_t>(want.back().size());
        r.sampling.temperature = 0;  // no stop tokens: the fixture continuations ignore EOS
        SubmitResult sub = engine.submit(std::move(r));
        ASSERT_TRUE(std::holds_alternative<std::shared_ptr<RequestStream>>(sub));
        streams.push_back(std::get<std::shared_ptr<RequestStream>>(sub));
    }
    ASSERT_GE(streams.size(), 2u);
    for (size_t i = 0; i < streams.size(); ++i) {
        std::vector<int32_t> got;
        bool finished = false;
        for (int spin = 0; spin < 600 && !finished; ++spin) {
            auto ev = streams[i]->next(100ms);
            if (!ev) continue;
            if (ev->kind == StreamEvent::Kind::token) {
                got.push_back(ev->token);
            } else {
                EXPECT_EQ(ev->reason, FinishReason::length) << ev->error;
                finished = true;
            }
        }
        EXPECT_TRUE(finished);
        EXPECT_EQ(got, want[i]) << GetParam() << " prompt " << i;
    }
    EXPECT_EQ(be.allocation_count(), allocs);
    engine.stop();
    be.release(*act_base);
    be.release(*kv_base);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, EngineOnFixture, ::testing::Values("tiny-mixtral", "tiny-llama"));

}  // namespace
}  // namespace hr
