// Label scoring with a shared prefix equals scoring each label on its own from full-sequence logits,
// and classification always answers one of the labels with probabilities summing to 1.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "backend/cpu/cpu_backend.h"
#include "classify/classify.h"
#include "loader/session.h"
#include "support/fixtures.h"

namespace hr {
namespace {

// Independent reference: log p(label | prompt) from the logits of prompt + label run as one sequence.
double reference_logprob(Backend& be, const LoadedModel& m, const std::vector<int32_t>& prompt,
                         const std::vector<int32_t>& label) {
    std::vector<int32_t> all = prompt;
    all.insert(all.end(), label.begin(), label.end());
    auto s = Session::create(be, m, {.context = static_cast<int64_t>(all.size()), .chunk = 64, .all_logits = true});
    EXPECT_TRUE(s.ok());
    std::vector<float> last, logits;
    EXPECT_TRUE((*s)->append(all, last, &logits).ok());
    const int64_t V = m.cfg.vocab_size;
    double lp = 0.0;
    for (size_t i = 0; i < label.size(); ++i) {
        const float* row = logits.data() + (prompt.size() - 1 + i) * static_cast<size_t>(V);
        double mx = -INFINITY, sum = 0.0;
        for (int64_t v = 0; v < V; ++v) mx = std::max(mx, static_cast<double>(row[v]));
        for (int64_t v = 0; v < V; ++v) sum += std::exp(row[v] - mx);
        lp += row[label[i]] - mx - std::log(sum);
    }
    return lp;
}

class LabelScorerTest : public ::testing::TestWithParam<int> {};

TEST_P(LabelScorerTest, SharedPrefixScoresEqualIndependentScores) {
    cpu::CpuBackend be;
    auto m = load_model(test::model_fixture("tiny-mixtral"), be, {});
    ASSERT_TRUE(m.ok()) << m.error().message;
    // Prompt lengths around block boundaries (16): the shared/re-run split changes with them.
    const int prompt_len = GetParam();
    std::vector<int32_t> prompt{1};
    for (int i = 1; i < prompt_len; ++i) prompt.push_back(100 + (i * 37) % 5000);
    const std::vector<std::vector<int32_t>> labels = {{2961, 2}, {28705, 1300, 2}, {5000, 2}, {42, 43, 44, 45, 2}};
    auto scorer = LabelScorer::create(be, *m, {.context = 96, .max_labels = 4, .max_label_tokens = 5, .chunk = 7});
    ASSERT_TRUE(scorer.ok()) << scorer.error().message;
    auto s = (*scorer)->score(prompt, labels);
    ASSERT_TRUE(s.ok()) << s.error().message;
    double psum = 0.0;
    for (size_t j = 0; j < labels.size(); ++j) {
        EXPECT_NEAR(s->logprob[j], reference_logprob(be, *m, prompt, labels[j]), 1e-4) << "label " << j;
        psum += s->prob[j];
    }
    EXPECT_NEAR(psum, 1.0, 1e-6);
    // Scoring again (the KV cache reused) gives the same numbers.
    auto again = (*scorer)->score(prompt, labels);
    ASSERT_TRUE(again.ok());
    for (size_t j = 0; j < labels.size(); ++j) EXPECT_DOUBLE_EQ(again->logprob[j], s->logprob[j]);
}

// What the plan reserves for the classifier (scorer_bytes) is exactly what create() allocates: its two
// allocations (KV cache, activations) of allocated_bytes() in all.
TEST(LabelScorerBytes, EqualTheAllocations) {
    cpu::CpuBackend be;
    auto m = load_model(test::model_fixture("tiny-mixtral"), be, {});
    ASSERT_TRUE(m.ok()) << m.error().message;
    for (const ScorerLimits l : {ScorerLimits{.context = 96, .max_labels = 4, .max_label_tokens = 5, .chunk = 7},
                                 ScorerLimits{.context = 1000, .max_labels = 16, .max_label_tokens = 32, .chunk = 512,
                                              .kv_dtype = DType::f16},
                                 ScorerLimits{.context = 17, .max_labels = 1, .max_label_tokens = 1, .chunk = 1,
                                              .block_size = 5}}) {
        const uint64_t before = be.allocation_count();
        auto scorer = LabelScorer::create(be, *m, l);
        ASSERT_TRUE(scorer.ok()) << scorer.error().message;
        EXPECT_EQ((*scorer)->allocated_bytes(), scorer_bytes(m->cfg, l)) << "context " << l.context;
        EXPECT_EQ(be.allocation_count() - before, 2u) << "context " << l.context;
    }
}

INSTANTIATE_TEST_SUITE_P(PromptLengths, LabelScorerTest, ::testing::Values(1, 2, 15, 16, 17, 33, 60));

struct ClassifyFixture : ::testing::Test {
    void SetUp() override {
        auto t = Tokenizer::from_model_dir(test::model_fixture("tiny-mixtral"));
        ASSERT_TRUE(t.ok()) << t.error().message;
        tok = std::move(t.value());
    }
    std::unique_ptr<Tokenizer> tok;
};

TEST_F(ClassifyFixture, AnswerIsOneOfTheLabelsWithProbabilities) {
    cpu::CpuBackend be;
    auto m = load_model(test::model_fixture("tiny-mixtral"), be, {});
    ASSERT_TRUE(m.ok());
    ClassifyRequest req{.document = "INVOICE #42\nTotal due: $1,234.56",
                        .labels = {"invoice", "receipt", "bank_statement", "contract", "other"}};
    auto scorer = LabelScorer::create(be, *m, {.context = 256, .max_labels = 5, .max_label_tokens = 8});
    ASSERT_TRUE(scorer.ok());
    auto r = classify(**scorer, *tok, req, 256);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_NE(std::find(req.labels.begin(), req.labels.end(), r->label), req.labels.end());
    double sum = 0.0, best = 0.0;
    for (const auto& [label, p] : r->probabilities) {
        sum += p;
        best = std::max(best, p);
        EXPECT_GE(p, 0.0);
    }
    EXPECT_NEAR(sum, 1.0, 1e-6);
    for (const auto& [label, p] : r->probabilities) {
        if (label == r->label) {
            EXPECT_EQ(p, best);
        }
    }
    EXPECT_FALSE(r->truncated);
}

TEST_F(ClassifyFixture, BadRequestsAreRejected) {
    auto err = [&](ClassifyRequest r, int64_t ctx = 256) {
        auto p = build_classify_prompt(*tok, r, ctx);
        return p.ok() ? std::string("<accepted>") : p.error().message;
    };
    EXPECT_NE(err({.document = "", .labels = {"a"}}).find("document is empty"), std::string::npos);
    EXPECT_NE(err({.document = "d", .labels = {}}).find("labels is empty"), std::string::npos);
    EXPECT_NE(err({.document = "d", .labels = {"a", ""}}).find("labels[1] is empty"), std::string::npos);
    EXPECT_NE(err({.document = "d", .labels = {"a", "b", "a"}}).find("labels[2] duplicates"), std::string::npos);
    std::string long_doc;
    for (int i = 0; i < 200; ++i) long_doc += "word ";
    const std::string e = err({.document = long_doc, .labels = {"a", "b"}}, 64);
    EXPECT_NE(e.find("does not fit"), std::string::npos) << e;
    EXPECT_NE(e.find("> context 64 tokens"), std::string::npos) << e;
}

TEST_F(ClassifyFixture, TruncationOnlyWhenAskedAndReported) {
    std::string long_doc;
    for (int i = 0; i < 200; ++i) long_doc += "word ";
    auto p = build_classify_prompt(*tok, {.document = long_doc, .labels = {"a", "b"}, .truncate = true}, 96);
    ASSERT_TRUE(p.ok()) << p.error().message;
    EXPECT_TRUE(p->truncated);
    EXPECT_LT(p->document_tokens_kept, p->document_tokens);
    EXPECT_LE(static_cast<int64_t>(p->prompt.size()) + 2, 96);
}

}  // namespace
}  // namespace hr
