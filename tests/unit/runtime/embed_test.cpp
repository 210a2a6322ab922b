// Engine::submit_embed over the real forward pass (CPU backend, tiny-mixtral): the pooled layer outputs
// of a text run alone, batched with a generating request's decode steps, and after the text's blocks
// are in the prefix cache (not reused: every position is recomputed) are the same, and equal the mean
// of the layer outputs that an independent Session run (one step, activation dump) gives; bad requests
// are refused; a cancelled request ends with "cancelled".
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "loader/activation_dump.h"
#include "loader/load.h"
#include "loader/session.h"
#include "runtime/local_engine.h"
#include "support/compare.h"
#include "support/fixtures.h"

namespace hr {
namespace {

using namespace std::chrono_literals;

std::vector<int32_t> text(int n, int salt) {
    std::vector<int32_t> ids{1};
    for (int i = 1; i < n; ++i) ids.push_back(100 + (i * 37 + salt * 11) % 5000);
    return ids;
}

EmbedOutcome embed(Engine& e, const std::vector<int32_t>& ids, int64_t b, int64_t end,
                   std::shared_ptr<std::atomic<bool>> cancel = nullptr) {
    auto sub = e.submit_embed({.tokens = ids, .layer_begin = b, .layer_end = end, .from_position = 1, .cancel = cancel});
    if (auto* err = std::get_if<SubmitError>(&sub)) return EmbedOutcome{.error = "refused: " + err->message};
    return std::get<std::future<EmbedOutcome>>(sub).get();
}

void expect_close(const EmbedOutcome& got, const EmbedOutcome& want, const char* what) {
    ASSERT_EQ(got.values.size(), want.values.size()) << what;
    for (size_t i = 0; i < got.values.size(); ++i) {
        const double w = want.values[i];
        ASSERT_NEAR(got.values[i], w, test::kPooledStatesTol * (1.0 + std::abs(w))) << what << " value " << i;
    }
}

TEST(EmbedRequest, BatchedWithGenerationEqualsAloneAndTheDirectRun) {
    cpu::CpuBackend be;
    auto m = load_model(test::model_fixture("tiny-mixtral"), be, {});
    ASSERT_TRUE(m.ok()) << m.error().message;
    // Small steps (7 tokens): the text spans several steps, each shared with the generation's decode.
    auto le = LocalEngine::start(be, *m, {.context = 512, .max_seqs = 4, .max_tokens = 7, .n_kv_blocks = 64});
    ASSERT_TRUE(le.ok()) << le.error().message;
    Engine& engine = (*le)->engine();
    const int64_t L = m->cfg.n_layers, D = m->cfg.dim;
    ASSERT_EQ(engine.pool_layers(), L);
    const std::vector<int32_t> ids = text(41, 0);  // two full blocks and a partial one
    const int64_t T = static_cast<int64_t>(ids.size());

    const EmbedOutcome alone = embed(engine, ids, 0, L);
    ASSERT_TRUE(alone.error.empty()) << alone.error;
    ASSERT_EQ(alone.n_layers, L);
    ASSERT_EQ(alone.dim, D);
    EXPECT_EQ(alone.forward_tokens, T);

    // The reference: one Session step over the whole text, the layer outputs from the activation dump.
    {
        auto sess = Session::create(be, *m, {.context = 256, .chunk = 256});
        ASSERT_TRUE(sess.ok()) << sess.error().message;
        ActivationDump dump(be);
        (*sess)->set_tap(dump.tap());
        std::vector<float> last;
        ASSERT_TRUE((*sess)->append(ids, last, nullptr).ok());
        EmbedOutcome ref{.n_layers = L, .dim = D};
        for (int64_t l = 0; l < L; ++l) {
            const auto& e = dump.entries().at(fmt::format("layer{}.out", l));
            ASSERT_EQ(static_cast<int64_t>(e.values.size()), T * D);
            for (int64_t d = 0; d < D; ++d) {
                double s = 0.0;
                for (int64_t t = 1; t < T; ++t) s += e.values[static_cast<size_t>(t * D + d)];
                ref.values.push_back(static_cast<float>(s / static_cast<double>(T - 1)));
            }
        }
        expect_close(alone, ref, "alone vs direct run");
    }

    // Batched: a long generation is decoding (its first token arrived) when the text is submitted, and is
    // still running when the text's states come back, so every step of the text shared a decode.
    GenerationRequest gen;
    gen.prompt = text(20, 1);
    gen.max_tokens = 480;  // hundreds of steps: far longer than the text's few
    auto sub = engine.submit(gen);
    ASSERT_TRUE(std::holds_alternative<std::shared_ptr<RequestStream>>(sub));
    auto stream = std::get<std::shared_ptr<RequestStream>>(sub);
    auto first = stream->next(60000ms);
    ASSERT_TRUE(first && first->kind == StreamEvent::Kind::token);
    const uint64_t steps_before = engine.metrics().steps.load();
    const EmbedOutcome batched = embed(engine, ids, 0, L);
    const uint64_t steps = engine.metrics().steps.load() - steps_before;
    ASSERT_EQ(engine.n_in_flight(), 1) << "the generation ended before the text: nothing was batched";
    engine.cancel(*stream);
    ASSERT_TRUE(batched.error.empty()) << batched.error;
    EXPECT_EQ(batched.forward_tokens, T);
    EXPECT_GE(steps, static_cast<uint64_t>((T + 5) / 6));  // 6 text tokens a step beside the decode
    expect_close(batched, alone, "batched vs alone");
    // A sub-range holds the same layers.
    const EmbedOutcome tail = embed(engine, ids, L - 1, L);
    ASSERT_TRUE(tail.error.empty()) << tail.error;
    ASSERT_EQ(tail.n_layers, 1);
    for (int64_t d = 0; d < D; ++d)
        EXPECT_FLOAT_EQ(tail.values[static_cast<size_t>(d)], alone.values[static_cast<size_t>((L - 1) * D + d)]);

    // The text as a generation prompt puts its full blocks in the prefix cache; an embed request does not
    // reuse them (their positions' hidden states were never computed for it): all T tokens run again.
    gen.prompt = ids;
    gen.max_tokens = 1;
    auto sub2 = engine.submit(gen);
    ASSERT_TRUE(std::holds_alternative<std::shared_ptr<RequestStream>>(sub2));
    auto s2 = std::get<std::shared_ptr<RequestStream>>(sub2);
    while (true) {
        auto ev = s2->next(60000ms);
        ASSERT_TRUE(ev);
        if (ev->kind == StreamEvent::Kind::finished) break;
    }
    const uint64_t hits = engine.metrics().prefix_cache_hit_tokens.load();
    const EmbedOutcome after_cache = embed(engine, ids, 0, L);
    ASSERT_TRUE(after_cache.error.empty()) << after_cache.error;
    EXPECT_EQ(after_cache.forward_tokens, T);
    EXPECT_EQ(engine.metrics().prefix_cache_hit_tokens.load(), hits);
    expect_close(after_cache, alone, "after the prefix cache holds the text vs alone");

    // A one-token text pools position 0.
    const EmbedOutcome one = embed(engine, {1}, 0, L);
    ASSERT_TRUE(one.error.empty()) << one.error;
    EXPECT_EQ(one.values.size(), static_cast<size_t>(L * D));

    // Refusals: bad ranges, empty or too long texts, ids outside the vocabulary.
    EXPECT_NE(embed(engine, ids, 1, 1).error, "");
    EXPECT_NE(embed(engine, ids, 0, L + 1).error, "");
    EXPECT_NE(embed(engine, {}, 0, L).error, "");
    EXPECT_NE(embed(engine, text(513, 2), 0, L).error, "");
    EXPECT_NE(embed(engine, {1, -3}, 0, L).error, "");
    // Cancelled before it runs: the error "cancelled", and nothing left in flight.
    auto cancel = std::make_shared<std::atomic<bool>>(true);
    EXPECT_EQ(embed(engine, ids, 0, L, cancel).error, "cancelled");
    EXPECT_EQ(engine.n_in_flight(), 0);
}

}  // namespace
}  // namespace hr
