// Scoring continuations through the scheduler (score groups) against the fake paged-KV runner: the
// log-probabilities equal a direct computation without any KV cache, for prompts around block
// boundaries and labels longer than a step's logits rows; generation keeps producing tokens while a
// long prompt is scored; groups in flight together equal groups run one at a time.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <functional>
#include <thread>

#include "runtime/engine.h"
#include "unit/runtime/fake_runner.h"

namespace hr {
namespace {

using namespace std::chrono_literals;
using testing::FakeRunner;

constexpr int64_t kVocab = 64;
constexpr int kBlock = 4;

// Scores computed in double from the float logits, as the engine does: the comparison can be exact
// up to the order of a double sum over the vocabulary (the same order in both).
constexpr double kScoreAbs = 1e-9;

EngineConfig config(int64_t max_tokens = 16, int64_t max_seqs = 8, int64_t n_blocks = 128) {
    EngineConfig c;
    c.limits = {.max_tokens_per_step = max_tokens, .max_seqs = max_seqs, .max_blocks_per_seq = 32};
    c.n_kv_blocks = n_blocks;
    c.block_size = kBlock;
    c.max_queue = 32;
    c.context = 128;
    c.log_interval_s = 0;
    return c;
}

// log p(label | prompt) under the fake model, from its definition (no KV cache).
double reference(const std::vector<int32_t>& prompt, const std::vector<int32_t>& label) {
    std::vector<int32_t> ctx = prompt;
    double lp = 0.0;
    for (int32_t target : label) {
        uint64_t h = 1469598103934665603ull;
        for (int32_t t : ctx) h = FakeRunner::mix(h, t);
        std::vector<float> row(kVocab);
        for (int64_t v = 0; v < kVocab; ++v) row[static_cast<size_t>(v)] = FakeRunner::logit(h, v);
        double mx = -INFINITY, sum = 0.0;
        for (float x : row) mx = std::max(mx, static_cast<double>(x));
        for (float x : row) sum += std::exp(static_cast<double>(x) - mx);
        lp += static_cast<double>(row[static_cast<size_t>(target)]) - mx - std::log(sum);
        ctx.push_back(target);
    }
    return lp;
}

std::vector<int32_t> prompt_of(int n, int32_t seed) {
    std::vector<int32_t> p;
    for (int i = 0; i < n; ++i) p.push_back(static_cast<int32_t>((seed * 7 + i * 13) % kVocab));
    return p;
}

const std::vector<std::vector<int32_t>> kLabels = {{5}, {6, 7}, {8, 9, 10, 11, 12}, {5, 6, 7, 8, 9, 10, 11, 12, 13}};

std::future<ScoreOutcome> must_score(Engine& e, std::vector<int32_t> prompt, std::vector<std::vector<int32_t>> labels) {
    auto r = e.submit_score({std::move(prompt), std::move(labels)});
    if (auto* err = std::get_if<SubmitError>(&r)) {
        ADD_FAILURE() << "submit_score refused: " << err->message;
        std::promise<ScoreOutcome> p;
        p.set_value({.error = "refused"});
        return p.get_future();
    }
    return std::move(std::get<std::future<ScoreOutcome>>(r));
}

bool wait_until(const std::function<bool()>& pred) {
    for (int i = 0; i < 400; ++i) {
        if (pred()) return true;
        std::this_thread::sleep_for(10ms);
    }
    return pred();
}

ScoreOutcome wait(std::future<ScoreOutcome>& f) {
    EXPECT_EQ(f.wait_for(20s), std::future_status::ready);
    return f.get();
}

}  // namespace

TEST(ScoreGroups, EqualTheDirectComputationAroundBlockBoundaries) {
    // max_seqs 4: a 9-token label needs its rows spread over several steps.
    FakeRunner runner(kVocab, 128, kBlock);
    Engine e(config(16, 4), runner);
    ASSERT_TRUE(e.start().ok());
    for (int n : {1, 2, 3, 4, 5, 8, 9, 13, 30}) {
        const std::vector<int32_t> p = prompt_of(n, n);
        auto f = must_score(e, p, kLabels);
        ScoreOutcome o = wait(f);
        ASSERT_TRUE(o.error.empty()) << o.error;
        ASSERT_EQ(o.logprob.size(), kLabels.size());
        int64_t label_tokens = 0;
        for (size_t j = 0; j < kLabels.size(); ++j) {
            EXPECT_NEAR(o.logprob[j], reference(p, kLabels[j]), kScoreAbs) << "prompt " << n << " label " << j;
            label_tokens += static_cast<int64_t>(kLabels[j].size());
        }
        // The prompt once (less its cached blocks), then each label but its last token; a label
        // sequence copies the prompt's partial last block, but the last one to write into it.
        EXPECT_EQ(o.prompt_forward_tokens, n - o.cached_tokens);
        EXPECT_EQ(o.forward_tokens, n - o.cached_tokens + label_tokens - static_cast<int64_t>(kLabels.size()));
        EXPECT_EQ(o.block_copies, n % kBlock == 0 ? 0 : 2);  // three labels of two or more tokens
    }
    EXPECT_TRUE(wait_until([&] { return e.metrics().kv_blocks_used.load() == 0; }));
    EXPECT_EQ(e.metrics().kv_blocks_reserved.load(), 0);
}

TEST(ScoreGroups, LabelsShareThePromptAndCopyItsPartialBlockSoEachPromptTokenRunsOnce) {
    // A 13-token prompt (three full blocks and one token over), six labels of 1..9 tokens; max_seqs 3,
    // so the label sequences are admitted over several steps while the group holds the prompt's blocks.
    FakeRunner runner(kVocab, 128, kBlock);
    Engine e(config(16, 3), runner);
    ASSERT_TRUE(e.start().ok());
    const std::vector<int32_t> p = prompt_of(13, 4);
    std::vector<std::vector<int32_t>> labels = kLabels;
    labels.push_back({30, 31, 32});
    labels.push_back({40});
    auto f = must_score(e, p, labels);
    ScoreOutcome o = wait(f);
    ASSERT_TRUE(o.error.empty()) << o.error;
    for (size_t j = 0; j < labels.size(); ++j) {
        EXPECT_NEAR(o.logprob[j], reference(p, labels[j]), kScoreAbs) << "label " << j;
    }
    int64_t label_tokens = 0, multi = 0;
    for (const auto& l : labels) {
        label_tokens += static_cast<int64_t>(l.size()) - 1;  // the last token of a label never runs
        multi += l.size() > 1 ? 1 : 0;
    }
    EXPECT_EQ(o.cached_tokens, 0);
    EXPECT_EQ(o.prompt_forward_tokens, 13);  // every prompt token once
    EXPECT_EQ(o.forward_tokens, 13 + label_tokens);
    EXPECT_EQ(runner.tokens_run.load(), o.forward_tokens);
    EXPECT_EQ(multi, 4);
    EXPECT_EQ(o.block_copies, multi - 1);
    EXPECT_EQ(runner.block_copies.load(), multi - 1);
    EXPECT_EQ(e.metrics().kv_block_copies.load(), static_cast<uint64_t>(multi - 1));
    EXPECT_EQ(e.metrics().prefix_cache_recomputed_tokens.load(), 0u);
    EXPECT_TRUE(wait_until([&] { return e.metrics().kv_blocks_used.load() == 0; }));
    EXPECT_EQ(e.metrics().kv_blocks_reserved.load(), 0);

    // The same document against another label set: its three full blocks come from the cache, the
    // partial block is run again (it was never cached), nothing else of the prompt.
    auto f2 = must_score(e, p, {{50, 51}, {52, 53}});
    ScoreOutcome o2 = wait(f2);
    ASSERT_TRUE(o2.error.empty()) << o2.error;
    EXPECT_EQ(o2.cached_tokens, 12);
    EXPECT_EQ(o2.prompt_forward_tokens, 1);
    EXPECT_EQ(o2.block_copies, 1);
    EXPECT_NEAR(o2.logprob[0], reference(p, {50, 51}), kScoreAbs);
    EXPECT_NEAR(o2.logprob[1], reference(p, {52, 53}), kScoreAbs);
}

TEST(ScoreGroups, AWholeBlockPromptScoredAgainRecomputesItsLastBlockAndSaysSo) {
    FakeRunner runner(kVocab, 128, kBlock);
    Engine e(config(), runner);
    ASSERT_TRUE(e.start().ok());
    const std::vector<int32_t> p = prompt_of(12, 6);
    auto f1 = must_score(e, p, {{1, 2}, {3}});
    ASSERT_TRUE(wait(f1).error.empty());
    auto f2 = must_score(e, p, {{1, 2}, {3}});
    ScoreOutcome o = wait(f2);
    ASSERT_TRUE(o.error.empty()) << o.error;
    EXPECT_EQ(o.cached_tokens, 8);
    EXPECT_EQ(o.prompt_forward_tokens, 4);  // the last block, for the last token's logits
    EXPECT_EQ(o.block_copies, 0);
    EXPECT_EQ(e.metrics().prefix_cache_recomputed_tokens.load(), 4u);
    EXPECT_NEAR(o.logprob[0], reference(p, {1, 2}), kScoreAbs);
    EXPECT_NEAR(o.logprob[1], reference(p, {3}), kScoreAbs);
}

TEST(ScoreGroups, ASecondLabelSetReusesTheDocumentsCachedBlocks) {
    FakeRunner runner(kVocab, 128, kBlock);
    Engine e(config(), runner);
    ASSERT_TRUE(e.start().ok());
    const std::vector<int32_t> p = prompt_of(22, 3);
    auto f1 = must_score(e, p, {{1}, {2, 3}});
    ScoreOutcome a = wait(f1);
    ASSERT_TRUE(a.error.empty()) << a.error;
    EXPECT_EQ(a.cached_tokens, 0);
    auto f2 = must_score(e, p, {{4, 5}, {6}});
    ScoreOutcome b = wait(f2);
    ASSERT_TRUE(b.error.empty()) << b.error;
    EXPECT_EQ(b.cached_tokens, 20);  // every full block of the prompt
    EXPECT_NEAR(b.logprob[0], reference(p, {4, 5}), kScoreAbs);
    EXPECT_NEAR(b.logprob[1], reference(p, {6}), kScoreAbs);
}

TEST(ScoreGroups, GenerationKeepsProducingTokensWhileALongPromptIsScored) {
    // Budget 8 tokens a step: the 60-token prompt takes several chunks; the running generation
    // decodes in every one of them.
    FakeRunner runner(kVocab, 128, kBlock);
    runner.step_delay_ms = 5;
    Engine e(config(8, 4), runner);
    ASSERT_TRUE(e.start().ok());
    GenerationRequest g;
    g.prompt = {1, 2, 3};
    g.max_tokens = 100;
    g.sampling.temperature = 0;
    auto sub = e.submit(g);
    ASSERT_TRUE(std::holds_alternative<std::shared_ptr<RequestStream>>(sub));
    auto stream = std::get<std::shared_ptr<RequestStream>>(sub);
    std::atomic<int> produced{0};
    std::vector<int32_t> got;
    std::thread reader([&] {
        while (true) {
            auto ev = stream->next(100ms);
            if (!ev) continue;
            if (ev->kind != StreamEvent::Kind::token) break;
            got.push_back(ev->token);
            produced.fetch_add(1);
        }
    });
    while (produced.load() < 2) std::this_thread::sleep_for(1ms);
    const std::vector<int32_t> p = prompt_of(60, 9);
    const uint64_t steps0 = runner.steps.load();
    const int before = produced.load();
    auto f = must_score(e, p, kLabels);
    ScoreOutcome o = wait(f);
    const int during = produced.load() - before;
    const uint64_t steps = runner.steps.load() - steps0;
    ASSERT_TRUE(o.error.empty()) << o.error;
    for (size_t j = 0; j < kLabels.size(); ++j) EXPECT_NEAR(o.logprob[j], reference(p, kLabels[j]), kScoreAbs);
    // At least one token per step the group took, give or take the steps at its two ends.
    EXPECT_GE(during + 2, static_cast<int>(steps)) << "steps " << steps;
    EXPECT_GE(steps, 60u / 8u);
    EXPECT_LE(runner.max_tokens_seen.load(), 8);
    reader.join();
    EXPECT_EQ(got, FakeRunner::expected_greedy(g.prompt, kVocab, 100));
}

TEST(ScoreGroups, GroupsInFlightTogetherEqualGroupsOneAtATime) {
    std::vector<std::vector<int32_t>> prompts;
    for (int i = 0; i < 6; ++i) {
        std::vector<int32_t> p = prompt_of(12, 1);  // a shared instruction head
        std::vector<int32_t> doc = prompt_of(5 + 3 * i, 20 + i);
        p.insert(p.end(), doc.begin(), doc.end());
        prompts.push_back(p);
    }
    std::vector<ScoreOutcome> alone;
    {
        FakeRunner runner(kVocab, 64, kBlock);
        Engine e(config(16, 4, 64), runner);
        ASSERT_TRUE(e.start().ok());
        for (const auto& p : prompts) {
            auto f = must_score(e, p, kLabels);
            alone.push_back(wait(f));
        }
    }
    FakeRunner runner(kVocab, 64, kBlock);
    Engine e(config(16, 4, 64), runner);  // 64 blocks: not every group fits at once
    ASSERT_TRUE(e.start().ok());
    std::vector<std::future<ScoreOutcome>> fs;
    for (const auto& p : prompts) fs.push_back(must_score(e, p, kLabels));
    for (size_t i = 0; i < fs.size(); ++i) {
        ScoreOutcome o = wait(fs[i]);
        ASSERT_TRUE(o.error.empty()) << o.error;
        for (size_t j = 0; j < kLabels.size(); ++j) EXPECT_DOUBLE_EQ(o.logprob[j], alone[i].logprob[j]) << i << " " << j;
    }
    EXPECT_GT(e.metrics().prefix_cache_hit_tokens.load(), 0u);
    // The gauges are published after the step that delivered the last outcome.
    EXPECT_TRUE(wait_until([&] { return e.metrics().kv_blocks_used.load() == 0; }));
    EXPECT_EQ(e.metrics().kv_blocks_reserved.load(), 0);
}

TEST(ScoreGroups, RefusesBadInputAndFailsPendingGroupsOnStop) {
    FakeRunner runner(kVocab, 16, kBlock);
    Engine e(config(16, 4, 16), runner);
    ASSERT_TRUE(e.start().ok());
    auto refused = [&](ScoreRequest r) { return std::holds_alternative<SubmitError>(e.submit_score(std::move(r))); };
    EXPECT_TRUE(refused({{}, {{1}}}));
    EXPECT_TRUE(refused({{1, 2}, {}}));
    EXPECT_TRUE(refused({{1, 2}, {{1}, {}}}));
    EXPECT_TRUE(refused({{1, 99}, {{1}}}));
    EXPECT_TRUE(refused({{1, 2}, {{1, 64}}}));
    EXPECT_TRUE(refused({prompt_of(126, 1), {{1, 2, 3}}}));  // past the context
    // 8 labels of 9 tokens after 13 prompt tokens: 3 shared + 8 x 3 own blocks > 16.
    EXPECT_TRUE(refused({prompt_of(13, 1), std::vector<std::vector<int32_t>>(8, kLabels[3])}));
    runner.step_delay_ms = 200;
    auto f = must_score(e, prompt_of(20, 2), {{1}, {2, 3}});
    e.stop();
    ScoreOutcome o = wait(f);
    EXPECT_FALSE(o.error.empty());
    EXPECT_TRUE(o.logprob.empty());
}

TEST(ScoreGroups, CancelEndsTheGroupWithinAStepAndFreesItsBlocks) {
    FakeRunner runner(kVocab, 128, kBlock);
    runner.step_delay_ms = 20;
    Engine e(config(8, 4), runner);  // a 60-token prompt takes 8 steps: still running when cancelled
    ASSERT_TRUE(e.start().ok());
    auto cancel = std::make_shared<std::atomic<bool>>(false);
    auto r = e.submit_score({prompt_of(60, 5), kLabels, cancel});
    ASSERT_TRUE(std::holds_alternative<std::future<ScoreOutcome>>(r));
    auto& f = std::get<std::future<ScoreOutcome>>(r);
    ASSERT_TRUE(wait_until([&] { return runner.steps.load() >= 2; }));
    cancel->store(true);
    ASSERT_EQ(f.wait_for(2s), std::future_status::ready);
    ScoreOutcome o = f.get();
    EXPECT_EQ(o.error, "cancelled");
    EXPECT_TRUE(wait_until([&] { return e.metrics().kv_blocks_used.load() == 0; }));
    EXPECT_EQ(e.metrics().kv_blocks_reserved.load(), 0);
    // The engine goes on serving.
    auto f2 = must_score(e, prompt_of(6, 1), {{1}});
    ScoreOutcome ok = wait(f2);
    EXPECT_TRUE(ok.error.empty()) << ok.error;
    EXPECT_NEAR(ok.logprob[0], reference(prompt_of(6, 1), {1}), kScoreAbs);
}

}  // namespace hr
