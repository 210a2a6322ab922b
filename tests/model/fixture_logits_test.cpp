// The CPU reference engine against transformers: logits at every position and greedy continuations
// of the tiny Mixtral, Llama, Qwen2, Qwen3 and Qwen3-MoE fixtures (tools/make_fixture.py made the Qwen ones).
#include <gtest/gtest.h>

#include <cstring>

#include "backend/cpu/cpu_backend.h"
#include "io/safetensors.h"
#include "loader/load.h"
#include "loader/session.h"
#include "runtime/sampler.h"
#include "support/compare.h"
#include "support/expected.h"
#include "support/fixtures.h"

namespace hr {
namespace {

using test::Expected;
using test::read_expected;

class FixtureModel : public ::testing::TestWithParam<std::string> {};

TEST_P(FixtureModel, LogitsMatchTransformersAtEveryPosition) {
    cpu::CpuBackend be;
    auto m = load_model(test::model_fixture(GetParam()), be, {});
    ASSERT_TRUE(m.ok()) << m.error().message;
    const auto expected = read_expected(GetParam());
    ASSERT_GE(expected.size(), 2u);
    const int64_t vocab = m->cfg.vocab_size;
    for (size_t p = 0; p < expected.size(); ++p) {
        const Expected& e = expected[p];
        // A small chunk so that prompts span several forward steps (prefill chunking is exercised).
        auto s = Session::create(be, *m, {.context = 64, .chunk = 5, .all_logits = true});
        ASSERT_TRUE(s.ok()) << s.error().message;
        std::vector<float> last, all;
        Status st = (*s)->append(e.tokens, last, &all);
        ASSERT_TRUE(st.ok()) << st.error().message;
        ASSERT_EQ(all.size(), e.logits.size());
        for (size_t t = 0; t < e.tokens.size(); ++t) {
            std::span<const float> got(all.data() + t * vocab, static_cast<size_t>(vocab));
            std::span<const float> ref(e.logits.data() + t * vocab, static_cast<size_t>(vocab));
            const test::Diff d = test::compare(got, ref);
            EXPECT_LE(d.max_abs, test::kFixtureLogitsRelMax * d.max_ref)
                << GetParam() << " prompt " << p << " position " << t << " max_abs " << d.max_abs << " max_ref "
                << d.max_ref;
        }
    }
}

TEST_P(FixtureModel, GreedyContinuationMatchesTransformers) {
    cpu::CpuBackend be;
    auto m = load_model(test::model_fixture(GetParam()), be, {});
    ASSERT_TRUE(m.ok()) << m.error().message;
    for (const Expected& e : read_expected(GetParam())) {
        auto s = Session::create(be, *m, {.context = 128});
        ASSERT_TRUE(s.ok()) << s.error().message;
        std::vector<float> logits;
        ASSERT_TRUE((*s)->append(e.tokens, logits, nullptr).ok());
        std::vector<int32_t> got;
        for (size_t i = 0; i < e.greedy.size(); ++i) {
            const int32_t next = argmax(logits);
            got.push_back(next);
            if (i + 1 < e.greedy.size()) {
                ASSERT_TRUE((*s)->append(std::span(&next, 1), logits, nullptr).ok());
            }
        }
        EXPECT_EQ(got, e.greedy);
    }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, FixtureModel,
                         ::testing::Values("tiny-mixtral", "tiny-llama", "tiny-qwen2", "tiny-qwen3", "tiny-qwen3-moe",
                                           "tiny-qwen3-moe-renorm"));

}  // namespace
}  // namespace hr
