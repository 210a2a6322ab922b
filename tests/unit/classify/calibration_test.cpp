// Length normalisation and contextual calibration against hand-computed values, and a calibrated
// classification equal to its definition (p / prior, renormalised) computed from the scorer's own raw
// scores of the document and the content-free prompts.
#include <gtest/gtest.h>

#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "classify/calibration.h"
#include "classify/classify.h"
#include "runtime/local_engine.h"
#include "support/fixtures.h"

namespace hr {
namespace {

TEST(Calibration, LengthNormalisationDividesByTokenCount) {
    const std::vector<double> lp = {-2.0, -3.0, -9.0};
    const std::vector<size_t> n = {2, 3, 3};
    EXPECT_EQ(label_scores(lp, n, false), lp);
    const auto s = label_scores(lp, n, true);
    EXPECT_DOUBLE_EQ(s[0], -1.0);
    EXPECT_DOUBLE_EQ(s[1], -1.0);
    EXPECT_DOUBLE_EQ(s[2], -3.0);
}

TEST(Calibration, PriorIsTheMeanOfTheContentFreeDistributions) {
    // softmax([0, log 3]) = [0.25, 0.75]; softmax([log 3, 0]) = [0.75, 0.25]; softmax([0, 0]) = [0.5, 0.5].
    const auto prior = content_free_prior({{0.0, std::log(3.0)}, {std::log(3.0), 0.0}, {0.0, 0.0}});
    ASSERT_EQ(prior.size(), 2u);
    EXPECT_NEAR(prior[0], 0.5, 1e-12);
    EXPECT_NEAR(prior[1], 0.5, 1e-12);
    const auto p2 = content_free_prior({{0.0, std::log(3.0)}});
    EXPECT_NEAR(p2[0], 0.25, 1e-12);
    EXPECT_NEAR(p2[1], 0.75, 1e-12);
}

TEST(Calibration, DividesOutThePrior) {
    // p = [0.2, 0.8] and prior [0.1, 0.9]: p / prior = [2, 0.889] -> [0.6923, 0.3077].
    const std::vector<double> scores = {std::log(0.2), std::log(0.8)};
    const std::vector<double> prior = {0.1, 0.9};
    const auto q = calibrated_probabilities(scores, prior);
    const double a = 0.2 / 0.1, b = 0.8 / 0.9;
    EXPECT_NEAR(q[0], a / (a + b), 1e-12);
    EXPECT_NEAR(q[1], b / (a + b), 1e-12);
    // A uniform prior changes nothing; a prior that underflowed to 0 does not divide by zero.
    const auto u = calibrated_probabilities(scores, std::vector<double>{0.5, 0.5});
    EXPECT_NEAR(u[0], 0.2, 1e-12);
    const auto z = calibrated_probabilities(scores, std::vector<double>{0.0, 1.0});
    EXPECT_TRUE(std::isfinite(z[0]) && std::isfinite(z[1]));
    EXPECT_NEAR(z[0] + z[1], 1.0, 1e-12);
}

struct CalibratedClassify : ::testing::Test {
    void SetUp() override {
        auto t = Tokenizer::from_model_dir(test::model_fixture("tiny-mixtral"));
        ASSERT_TRUE(t.ok()) << t.error().message;
        tok = std::move(t.value());
        auto mm = load_model(test::model_fixture("tiny-mixtral"), be, {});
        ASSERT_TRUE(mm.ok()) << mm.error().message;
        m = std::make_unique<LoadedModel>(std::move(*mm));
        auto e = LocalEngine::start(be, *m, {.context = 512, .max_seqs = 8, .max_tokens = 256});
        ASSERT_TRUE(e.ok()) << e.error().message;
        engine = std::move(e.value());
        scorer = std::make_unique<LabelScorer>(engine->engine());
    }
    void TearDown() override {
        scorer.reset();
        engine.reset();
    }
    cpu::CpuBackend be;
    std::unique_ptr<Tokenizer> tok;
    std::unique_ptr<LoadedModel> m;
    std::unique_ptr<LocalEngine> engine;
    std::unique_ptr<LabelScorer> scorer;
};

TEST_F(CalibratedClassify, EqualsTheDefinitionFromRawScores) {
    for (bool norm : {false, true}) {
        ClassifyRequest req{.document = "Total due: 120 EUR by 30 June.",
                            .labels = {"invoice", "receipt", "bank statement"},
                            .calibrate = true,
                            .length_normalize = norm};
        auto p = build_classify_prompt(*tok, req, 512);
        ASSERT_TRUE(p.ok()) << p.error().message;
        ASSERT_EQ(p->calibration_prompts.size(), content_free_documents().size());
        auto got = score_classify_prompt(*scorer, *p);
        ASSERT_TRUE(got.ok()) << got.error().message;

        // The definition, from independent raw scores of each prompt.
        auto norm_scores = [&](const std::vector<double>& lp) {
            std::vector<double> s = lp;
            if (norm) {
                for (size_t i = 0; i < s.size(); ++i) s[i] /= static_cast<double>(p->label_ids[i].size());
            }
            return s;
        };
        auto doc = scorer->score(p->prompt, p->label_ids);
        ASSERT_TRUE(doc.ok());
        std::vector<double> prior(3, 0.0);
        for (const auto& cp : p->calibration_prompts) {
            auto c = scorer->score(cp, p->label_ids);
            ASSERT_TRUE(c.ok());
            const auto pc = normalise_logprobs(norm_scores(c->logprob));
            for (size_t i = 0; i < 3; ++i) prior[i] += pc[i] / 3.0;
        }
        const auto pd = normalise_logprobs(norm_scores(doc->logprob));
        double z = 0.0;
        for (size_t i = 0; i < 3; ++i) z += pd[i] / prior[i];
        // note: not bit-exact: the second scoring of a prompt takes its full blocks from the prefix cache
        // and runs only the rest, so the prompt's last row (every label's first token) comes from a chunk
        // of other length, and the CPU kernels' f32 rounding depends on the chunk's rows (~1e-8 here).
        constexpr double kRerun = 1e-6;
        for (size_t i = 0; i < 3; ++i) {
            EXPECT_NEAR(got->prior[i], prior[i], kRerun) << i;
            EXPECT_NEAR(got->prob[i], pd[i] / prior[i] / z, kRerun) << "label " << i << " normalise " << norm;
            EXPECT_NEAR(got->logprob[i], doc->logprob[i], kRerun);
        }
        // A second document reuses the memoised content-free scores: fewer tokens run.
        req.document = "Thank you for shopping. CASH 5.00 CHANGE 0.52";
        auto p2 = build_classify_prompt(*tok, req, 512);
        ASSERT_TRUE(p2.ok());
        auto again = score_classify_prompt(*scorer, *p2);
        ASSERT_TRUE(again.ok());
        auto plain = scorer->score(p2->prompt, p2->label_ids);
        ASSERT_TRUE(plain.ok());
        // (Tokens the prefix cache supplied are not run: count them on both sides.)
        EXPECT_EQ(again->forward_tokens + again->cached_tokens, plain->forward_tokens + plain->cached_tokens);
        EXPECT_GT(plain->cached_tokens, 0);  // the same document again: its full blocks were cached
        for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(again->prior[i], got->prior[i], 1e-12);
    }
}

TEST_F(CalibratedClassify, UncalibratedIsTheSoftmaxOfRawScores) {
    ClassifyRequest req{.document = "Payslip for March", .labels = {"invoice", "payslip"}, .calibrate = false};
    auto p = build_classify_prompt(*tok, req, 512);
    ASSERT_TRUE(p.ok());
    EXPECT_TRUE(p->calibration_prompts.empty());
    auto got = score_classify_prompt(*scorer, *p);
    ASSERT_TRUE(got.ok());
    EXPECT_TRUE(got->prior.empty());
    const auto want = normalise_logprobs(got->logprob);
    for (size_t i = 0; i < 2; ++i) EXPECT_NEAR(got->prob[i], want[i], 1e-12);
}

}  // namespace
}  // namespace hr
