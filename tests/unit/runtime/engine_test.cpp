// Engine against the fake paged-KV runner: continuous batching gives each request the output it
// gets alone; cancellation, deadlines, queue bound, non-finite logits, runner failure and stop.
#include <gtest/gtest.h>

#include <thread>

#include "runtime/engine.h"
#include "unit/runtime/fake_runner.h"

namespace hr {
namespace {

using namespace std::chrono_literals;
using testing::FakeRunner;

constexpr int64_t kVocab = 64;
constexpr int kBlock = 4;

EngineConfig small_config(int64_t n_blocks = 64) {
    EngineConfig c;
    c.limits = {.max_tokens_per_step = 16, .max_seqs = 8, .max_blocks_per_seq = 16};
    c.n_kv_blocks = n_blocks;
    c.block_size = kBlock;
    c.max_queue = 32;
    c.context = 64;
    c.log_interval_s = 0;
    return c;
}

GenerationRequest greedy(std::vector<int32_t> prompt, int64_t max_tokens) {
    GenerationRequest r;
    r.prompt = std::move(prompt);
    r.max_tokens = max_tokens;
    r.sampling.temperature = 0.0f;
    return r;
}

struct Collected {
    std::vector<int32_t> tokens;
    FinishReason reason = FinishReason::error;
    std::string error;
    bool finished = false;
};

Collected collect(RequestStream& s, std::chrono::seconds limit = 20s) {
    Collected c;
    auto end = Clock::now() + limit;
    while (Clock::now() < end) {
        auto ev = s.next(100ms);
        if (!ev) continue;
        if (ev->kind == StreamEvent::Kind::token) {
            c.tokens.push_back(ev->token);
        } else {
            c.reason = ev->reason;
            c.error = ev->error;
            c.finished = true;
            break;
        }
    }
    return c;
}

std::shared_ptr<RequestStream> must_submit(Engine& e, GenerationRequest r) {
    SubmitResult res = e.submit(std::move(r));
    if (auto* err = std::get_if<SubmitError>(&res)) {
        ADD_FAILURE() << "submit refused: " << err->message;
        return nullptr;
    }
    return std::get<std::shared_ptr<RequestStream>>(res);
}

bool wait_until(const std::function<bool()>& pred) {
    for (int i = 0; i < 400; ++i) {
        if (pred()) return true;
        std::this_thread::sleep_for(10ms);
    }
    return pred();
}

}  // namespace

TEST(Engine, GreedyMatchesReferenceAndEndsOnLength) {
    FakeRunner runner(kVocab, 64, kBlock);
    Engine e(small_config(), runner);
    ASSERT_TRUE(e.start().ok());
    std::vector<int32_t> prompt = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
    auto s = must_submit(e, greedy(prompt, 8));
    ASSERT_TRUE(s);
    Collected c = collect(*s);
    ASSERT_TRUE(c.finished);
    EXPECT_EQ(c.reason, FinishReason::length);
    EXPECT_EQ(c.tokens, FakeRunner::expected_greedy(prompt, kVocab, 8));
    RequestStats st = s->stats();
    EXPECT_EQ(st.prompt_tokens, 20);
    EXPECT_EQ(st.generated_tokens, 8);
    EXPECT_TRUE(wait_until([&] { return e.metrics().kv_blocks_used.load() == 0; }));
    EXPECT_EQ(e.metrics().finished[static_cast<size_t>(FinishReason::length)].load(), 1u);
    EXPECT_EQ(e.metrics().generated_tokens.load(), 8u);
}

TEST(Engine, StopTokenEndsWithStopAndIsNotEmitted) {
    FakeRunner runner(kVocab, 64, kBlock);
    Engine e(small_config(), runner);
    ASSERT_TRUE(e.start().ok());
    std::vector<int32_t> prompt = {3, 1, 4, 1, 5};
    auto ref = FakeRunner::expected_greedy(prompt, kVocab, 6);
    ASSERT_GE(ref.size(), 3u);
    GenerationRequest r = greedy(prompt, 6);
    r.stop_token_ids = {ref[2]};
    auto s = must_submit(e, r);
    Collected c = collect(*s);
    EXPECT_EQ(c.reason, FinishReason::stop);
    EXPECT_EQ(c.tokens, FakeRunner::expected_greedy(prompt, kVocab, 6, ref[2]));
}

TEST(Engine, ConcurrentGreedyRequestsMatchEachAlone) {
    FakeRunner runner(kVocab, 96, kBlock);
    EngineConfig cfg = small_config(96);
    cfg.limits.max_tokens_per_step = 12;  // forces chunked prefill mixed with decodes
    Engine e(cfg, runner);
    ASSERT_TRUE(e.start().ok());
    std::vector<std::vector<int32_t>> prompts;
    std::vector<std::shared_ptr<RequestStream>> streams;
    for (int i = 0; i < 16; ++i) {
        std::vector<int32_t> p;
        for (int j = 0; j < 5 + 2 * i; ++j) p.push_back((i * 7 + j * 3) % kVocab);
        prompts.push_back(p);
        streams.push_back(must_submit(e, greedy(p, 10)));
    }
    for (int i = 0; i < 16; ++i) {
        ASSERT_TRUE(streams[i]);
        Collected c = collect(*streams[i]);
        EXPECT_EQ(c.reason, FinishReason::length) << i;
        EXPECT_EQ(c.tokens, FakeRunner::expected_greedy(prompts[i], kVocab, 10)) << "request " << i;
    }
    EXPECT_LE(runner.max_tokens_seen.load(), 12);
    EXPECT_TRUE(wait_until([&] { return e.metrics().kv_blocks_used.load() == 0; }));
    EXPECT_EQ(e.metrics().kv_blocks_reserved.load(), 0);
}

TEST(Engine, SeededSamplingIsReproducible) {
    FakeRunner runner(kVocab, 64, kBlock);
    Engine e(small_config(), runner);
    ASSERT_TRUE(e.start().ok());
    GenerationRequest r = greedy({9, 8, 7}, 12);
    r.sampling.temperature = 1.0f;
    r.sampling.seed = 42;
    r.sampling.has_seed = true;
    Collected a = collect(*must_submit(e, r));
    Collected b = collect(*must_submit(e, r));
    EXPECT_EQ(a.tokens.size(), 12u);
    EXPECT_EQ(a.tokens, b.tokens);
}

TEST(Engine, CancelFreesBlocksWithinAStep) {
    FakeRunner runner(kVocab, 64, kBlock);
    runner.step_delay_ms = 5;
    Engine e(small_config(), runner);
    ASSERT_TRUE(e.start().ok());
    auto s = must_submit(e, greedy({1, 2, 3}, 40));
    auto first = s->next(10s);
    ASSERT_TRUE(first && first->kind == StreamEvent::Kind::token);
    EXPECT_GT(e.metrics().kv_blocks_used.load() + e.metrics().kv_blocks_reserved.load(), 0);
    e.cancel(*s);
    Collected c = collect(*s);
    EXPECT_EQ(c.reason, FinishReason::cancelled);
    EXPECT_TRUE(wait_until([&] { return e.metrics().kv_blocks_used.load() == 0; }));
    EXPECT_EQ(e.metrics().kv_blocks_reserved.load(), 0);
    EXPECT_EQ(e.n_in_flight(), 0);
}

TEST(Engine, CancelWhileQueuedEndsTheRequest) {
    FakeRunner runner(kVocab, 16, kBlock);
    runner.step_delay_ms = 5;
    Engine e(small_config(16), runner);
    ASSERT_TRUE(e.start().ok());
    auto big = must_submit(e, greedy(std::vector<int32_t>(20, 1), 40));  // 15 of 16 blocks
    auto queued = must_submit(e, greedy({1, 2}, 8));                     // waits for blocks
    ASSERT_TRUE(big && queued);
    ASSERT_TRUE(wait_until([&] { return e.metrics().waiting.load() == 1; }));
    e.cancel(*queued);
    Collected c = collect(*queued);
    EXPECT_EQ(c.reason, FinishReason::cancelled);
    EXPECT_TRUE(c.tokens.empty());
    e.cancel(*big);
    EXPECT_EQ(collect(*big).reason, FinishReason::cancelled);
}

TEST(Engine, QueueBoundRefusesWithRetryHint) {
    FakeRunner runner(kVocab, 16, kBlock);
    runner.step_delay_ms = 5;
    EngineConfig cfg = small_config(16);
    cfg.max_queue = 1;
    Engine e(cfg, runner);
    ASSERT_TRUE(e.start().ok());
    auto big = must_submit(e, greedy(std::vector<int32_t>(20, 1), 40));
    ASSERT_TRUE(wait_until([&] { return e.metrics().running.load() == 1; }));
    auto queued = must_submit(e, greedy({1, 2}, 8));
    SubmitResult third = e.submit(greedy({1, 2}, 8));
    auto* err = std::get_if<SubmitError>(&third);
    ASSERT_NE(err, nullptr);
    EXPECT_EQ(err->kind, SubmitErrorKind::queue_full);
    EXPECT_GE(err->retry_after_s, 1.0);
    e.cancel(*big);
    EXPECT_EQ(collect(*queued).reason, FinishReason::length);  // admitted once blocks came back
}

TEST(Engine, RefusesWhatCanNeverFit) {
    FakeRunner runner(kVocab, 64, kBlock);
    Engine e(small_config(), runner);
    ASSERT_TRUE(e.start().ok());
    auto refused = [&](GenerationRequest r) {
        SubmitResult res = e.submit(std::move(r));
        auto* err = std::get_if<SubmitError>(&res);
        return err ? err->kind == SubmitErrorKind::invalid : false;
    };
    EXPECT_TRUE(refused(greedy({}, 4)));
    EXPECT_TRUE(refused(greedy({1, 64}, 4)));  // id == vocab
    EXPECT_TRUE(refused(greedy({-1}, 4)));
    EXPECT_TRUE(refused(greedy({1}, 0)));
    EXPECT_TRUE(refused(greedy(std::vector<int32_t>(60, 1), 5)));  // 65 > context 64
    GenerationRequest bad_stop = greedy({1}, 4);
    bad_stop.stop_token_ids = {99};
    EXPECT_TRUE(refused(bad_stop));
    SubmitResult res = e.submit(greedy(std::vector<int32_t>(60, 1), 5));
    EXPECT_NE(std::get<SubmitError>(res).message.find("64"), std::string::npos);
    EXPECT_NE(std::get<SubmitError>(res).message.find("65"), std::string::npos);
}

TEST(Engine, ExpiredDeadlineRefusedAndRunningDeadlineEnds) {
    FakeRunner runner(kVocab, 64, kBlock);
    runner.step_delay_ms = 20;
    Engine e(small_config(), runner);
    ASSERT_TRUE(e.start().ok());
    GenerationRequest past = greedy({1, 2}, 4);
    past.deadline = Clock::now() - 1ms;
    SubmitResult res = e.submit(past);
    ASSERT_TRUE(std::holds_alternative<SubmitError>(res));
    EXPECT_EQ(std::get<SubmitError>(res).kind, SubmitErrorKind::deadline);
    GenerationRequest soon = greedy({1, 2}, 50);
    soon.deadline = Clock::now() + 150ms;
    Collected c = collect(*must_submit(e, soon));
    EXPECT_EQ(c.reason, FinishReason::timeout);
    EXPECT_FALSE(c.error.empty());
    EXPECT_LT(c.tokens.size(), 50u);
    EXPECT_TRUE(wait_until([&] { return e.metrics().kv_blocks_used.load() == 0; }));
}

TEST(Engine, NonFiniteLogitsFailOnlyThatRequest) {
    FakeRunner runner(kVocab, 64, kBlock);
    runner.nan_for_first_token = 5;
    Engine e(small_config(), runner);
    ASSERT_TRUE(e.start().ok());
    auto bad = must_submit(e, greedy({5}, 4));
    auto good = must_submit(e, greedy({6, 7}, 4));
    Collected cb = collect(*bad);
    EXPECT_EQ(cb.reason, FinishReason::error);
    EXPECT_NE(cb.error.find("non-finite"), std::string::npos);
    EXPECT_EQ(collect(*good).reason, FinishReason::length);
    EXPECT_EQ(e.health(), EngineHealth::ready);
}

TEST(Engine, RunnerFailureMarksDeadAndFailsEveryone) {
    FakeRunner runner(kVocab, 64, kBlock);
    Engine e(small_config(), runner);
    ASSERT_TRUE(e.start().ok());
    runner.fail_next = true;
    Collected c = collect(*must_submit(e, greedy({1, 2, 3}, 4)));
    EXPECT_EQ(c.reason, FinishReason::error);
    EXPECT_TRUE(wait_until([&] { return e.health() == EngineHealth::dead; }));
    SubmitResult res = e.submit(greedy({1}, 2));
    ASSERT_TRUE(std::holds_alternative<SubmitError>(res));
    EXPECT_EQ(std::get<SubmitError>(res).kind, SubmitErrorKind::unavailable);
}

TEST(Engine, DrainRefusesNewWorkAndStopEndsTheRest) {
    FakeRunner runner(kVocab, 64, kBlock);
    runner.step_delay_ms = 5;
    Engine e(small_config(), runner);
    ASSERT_TRUE(e.start().ok());
    auto s = must_submit(e, greedy({1, 2, 3}, 50));
    ASSERT_TRUE(s->next(10s).has_value());
    e.begin_drain();
    EXPECT_EQ(e.health(), EngineHealth::draining);
    SubmitResult res = e.submit(greedy({1}, 2));
    ASSERT_TRUE(std::holds_alternative<SubmitError>(res));
    EXPECT_EQ(std::get<SubmitError>(res).kind, SubmitErrorKind::unavailable);
    e.stop(FinishReason::shutdown, "server shutting down");
    Collected c = collect(*s);
    EXPECT_EQ(c.reason, FinishReason::shutdown);
    EXPECT_EQ(c.error, "server shutting down");
    EXPECT_EQ(e.n_in_flight(), 0);
}

TEST(Engine, ProgressClockShowsALongStep) {
    FakeRunner runner(kVocab, 64, kBlock);
    Engine e(small_config(), runner);
    ASSERT_TRUE(e.start().ok());
    EXPECT_TRUE(wait_until([&] { return e.seconds_since_progress() < 1.0; }));  // idle waits are progress
    runner.step_delay_ms = 1500;
    auto s = must_submit(e, greedy({1, 2}, 1));
    EXPECT_TRUE(wait_until([&] { return e.seconds_since_progress() > 1.0; }));  // inside the long step
    EXPECT_EQ(collect(*s).reason, FinishReason::length);
    runner.step_delay_ms = 0;
    EXPECT_TRUE(wait_until([&] { return e.seconds_since_progress() < 1.0; }));
}

TEST(Engine, LogitsProcessorSeamConstrainsSampling) {
    struct OnlyToken : LogitsProcessor {
        void apply(std::span<float> logits, std::span<const int32_t>) override {
            for (size_t i = 0; i < logits.size(); ++i) {
                if (i != 13) logits[i] = -INFINITY;
            }
        }
    };
    FakeRunner runner(kVocab, 64, kBlock);
    Engine e(small_config(), runner);
    ASSERT_TRUE(e.start().ok());
    GenerationRequest r = greedy({1, 2}, 3);
    r.logits_processor = std::make_shared<OnlyToken>();
    Collected c = collect(*must_submit(e, r));
    EXPECT_EQ(c.tokens, (std::vector<int32_t>{13, 13, 13}));
}

}  // namespace hr

namespace hr {

TEST(Engine, PrefixCacheHitsGiveTheSameOutputAndAreCounted) {
    FakeRunner runner(kVocab, 64, kBlock);
    Engine e(small_config(), runner);
    ASSERT_TRUE(e.start().ok());
    std::vector<int32_t> p(14);
    for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<int32_t>(3 + i);
    Collected first = collect(*must_submit(e, greedy(p, 5)));
    EXPECT_EQ(first.tokens, FakeRunner::expected_greedy(p, kVocab, 5));
    EXPECT_EQ(e.metrics().prefix_cache_hit_tokens.load(), 0u);
    // The same prompt again, and one that shares its first three blocks: both start at token 12 (the
    // fake model reads every earlier token back through the block table, so a wrong block would show).
    std::vector<int32_t> q = p;
    q[13] = 60;
    auto s1 = must_submit(e, greedy(p, 5));
    auto s2 = must_submit(e, greedy(q, 5));
    EXPECT_EQ(collect(*s1).tokens, first.tokens);
    EXPECT_EQ(collect(*s2).tokens, FakeRunner::expected_greedy(q, kVocab, 5));
    EXPECT_EQ(e.metrics().prefix_cache_hit_tokens.load(), 24u);
    EXPECT_GT(e.metrics().kv_blocks_cached.load(), 0);
    EXPECT_TRUE(wait_until([&] { return e.metrics().kv_blocks_used.load() == 0; }));
}

TEST(Engine, PrefixCacheUnderEvictionPressureStaysCorrect) {
    // 12 blocks of 4 tokens; each request needs 6. Prompts share heads of various lengths, so hits,
    // misses and evictions of cached blocks interleave.
    FakeRunner runner(kVocab, 12, kBlock);
    Engine e(small_config(12), runner);
    ASSERT_TRUE(e.start().ok());
    for (int round = 0; round < 3; ++round) {
        std::vector<std::shared_ptr<RequestStream>> streams;
        std::vector<std::vector<int32_t>> prompts;
        for (int i = 0; i < 5; ++i) {
            std::vector<int32_t> p(18);
            for (size_t t = 0; t < p.size(); ++t) p[t] = static_cast<int32_t>(t < static_cast<size_t>(4 * i) ? 1 + t : 40 + i + round);
            prompts.push_back(p);
            streams.push_back(must_submit(e, greedy(p, 5)));
        }
        for (size_t i = 0; i < streams.size(); ++i) {
            Collected c = collect(*streams[i]);
            EXPECT_EQ(c.reason, FinishReason::length) << c.error;
            EXPECT_EQ(c.tokens, FakeRunner::expected_greedy(prompts[i], kVocab, 5)) << "round " << round << " prompt " << i;
        }
    }
    EXPECT_GT(e.metrics().prefix_cache_hit_tokens.load(), 0u);
    EXPECT_TRUE(wait_until([&] { return e.metrics().kv_blocks_used.load() == 0; }));
    EXPECT_EQ(e.metrics().kv_blocks_reserved.load(), 0);
}

}  // namespace hr
