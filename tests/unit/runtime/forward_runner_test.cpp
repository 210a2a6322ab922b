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
#include "support/compare.h"

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

// Records the first logits row the engine samples from (the last prompt token's), untouched.
struct FirstRow : LogitsProcessor {
    std::vector<float> row;
    void apply(std::span<float> logits, std::span<const int32_t> generated) override {
        if (generated.empty()) row.assign(logits.begin(), logits.end());
    }
};

// A prompt whose K/V partly comes from the prefix cache gives the logits and greedy continuation of
// the same prompt computed from scratch (an engine without the cache is the reference).
TEST_P(EngineOnFixture, PrefixCacheHitGivesTheLogitsAndGreedyOfAColdRun) {
    const std::string dir = std::string(HR_FIXTURES_DIR) + "/models/" + GetParam();
    std::ifstream f(dir + "/expected.json");
    ASSERT_TRUE(f.good());
    nlohmann::json expected = nlohmann::json::parse(f);
    cpu::CpuBackend be;
    auto m = load_model(dir, be, {});
    ASSERT_TRUE(m.ok()) << m.error().message;
    constexpr int kBlock = 4;  // small blocks so the fixture prompts span several full ones
    StepLimits lim{.max_tokens = 8, .max_seqs = 4, .max_blocks_per_seq = 16};
    const int64_t n_blocks = 48;
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

    struct Run {
        std::vector<float> logits;
        std::vector<int32_t> tokens;
    };
    auto run_one = [&](Engine& e, const std::vector<int32_t>& prompt, int64_t n) {
        GenerationRequest r;
        r.prompt = prompt;
        r.max_tokens = n;
        r.sampling.temperature = 0;
        auto rec = std::make_shared<FirstRow>();
        r.logits_processor = rec;
        SubmitResult sub = e.submit(std::move(r));
        EXPECT_TRUE(std::holds_alternative<std::shared_ptr<RequestStream>>(sub));
        Run out;
        if (!std::holds_alternative<std::shared_ptr<RequestStream>>(sub)) return out;
        auto stream = std::get<std::shared_ptr<RequestStream>>(sub);
        for (int spin = 0; spin < 600; ++spin) {
            auto ev = stream->next(100ms);
            if (!ev) continue;
            if (ev->kind != StreamEvent::Kind::token) break;
            out.tokens.push_back(ev->token);
        }
        out.logits = rec->row;
        return out;
    };
    // The prompts and, for each, a variant that keeps all its full blocks but changes the last token.
    std::vector<std::vector<int32_t>> prompts;
    for (const auto& p : expected["prompts"]) {
        auto ids = p["ids"].get<std::vector<int32_t>>();
        if (ids.size() <= kBlock) continue;
        prompts.push_back(ids);
        ids.back() = ids[ids.size() - 2];
        prompts.push_back(ids);
    }
    ASSERT_GE(prompts.size(), 2u);
    constexpr int64_t kGen = 6;
    std::vector<Run> cold;
    {
        ec.prefix_caching = false;
        Engine e(ec, runner);
        ASSERT_TRUE(e.start().ok());
        for (const auto& p : prompts) cold.push_back(run_one(e, p, kGen));
        EXPECT_EQ(e.metrics().prefix_cache_hit_tokens.load(), 0u);
    }
    ec.prefix_caching = true;
    Engine e(ec, runner);
    ASSERT_TRUE(e.start().ok());
    for (size_t i = 0; i < prompts.size(); ++i) {
        const uint64_t hits_before = e.metrics().prefix_cache_hit_tokens.load();
        Run warm = run_one(e, prompts[i], kGen);
        if (i % 2 == 1) {  // the variant of the prompt just run: its full blocks are cached
            EXPECT_EQ(e.metrics().prefix_cache_hit_tokens.load() - hits_before,
                      (prompts[i].size() - 1) / kBlock * kBlock);
        }
        EXPECT_EQ(warm.tokens, cold[i].tokens) << GetParam() << " prompt " << i;
        ASSERT_EQ(warm.logits.size(), cold[i].logits.size());
        const test::Diff d = test::compare(warm.logits, cold[i].logits);
        EXPECT_LE(d.max_abs, test::kPrefixHitLogitsRelMax * d.max_ref) << GetParam() << " prompt " << i << " rel " << d.max_abs / d.max_ref;
    }
    EXPECT_GT(e.metrics().prefix_cache_hit_tokens.load(), 0u);
    e.stop();
    be.release(*act_base);
    be.release(*kv_base);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, EngineOnFixture, ::testing::Values("tiny-mixtral", "tiny-llama"));

}  // namespace
}  // namespace hr
