// The embedding method: layer ranges, nearest-example scores and probabilities against hand-computed
// values; the scorer's pooled hidden states against the mean of the same layers' outputs dumped by an
// independent Session run (other chunking, the activation dump); and a classification by the embedding
// and combined methods equal to their definitions computed from those pieces.
#include <gtest/gtest.h>

#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "classify/calibration.h"
#include "classify/classify.h"
#include "classify/embedding.h"
#include "loader/activation_dump.h"
#include "loader/session.h"
#include "runtime/local_engine.h"
#include "support/compare.h"
#include "support/fixtures.h"

namespace hr {
namespace {

PooledStates states(std::vector<std::vector<float>> per_layer) {
    PooledStates p;
    p.n_layers = static_cast<int64_t>(per_layer.size());
    p.dim = static_cast<int64_t>(per_layer[0].size());
    for (const auto& v : per_layer) p.values.insert(p.values.end(), v.begin(), v.end());
    return p;
}

TEST(EmbeddingMethod, LayerRangeIsAFractionOfTheDepth) {
    using Range = std::pair<int64_t, int64_t>;
    const EmbeddingOptions defaults, quarter{.first_layer = 0.25, .last_layer = 0.75},
        all{.first_layer = 0.0, .last_layer = 1.0};
    EXPECT_EQ(embedding_layers(30, defaults), Range(9, 27));
    EXPECT_EQ(embedding_layers(32, quarter), Range(8, 24));
    EXPECT_EQ(embedding_layers(30, all), Range(0, 30));
    // Too shallow for the fractions to span a layer: still one layer.
    EXPECT_EQ(embedding_layers(2, defaults), Range(0, 1));
    EXPECT_EQ(embedding_layers(1, defaults), Range(0, 1));
}

TEST(EmbeddingMethod, NearestExampleCosineAfterCentring) {
    // One layer, 2-d. Examples (1, 0) label 0, (0, 1) label 1, (1, 1) label 1; their mean is (2/3, 2/3).
    // Centred: (1/3, -2/3), (-2/3, 1/3), (1/3, 1/3). Document (2, 0) centred: (4/3, -2/3).
    const PooledStates doc = states({{2.0f, 0.0f}});
    const std::vector<PooledStates> ex = {states({{1.0f, 0.0f}}), states({{0.0f, 1.0f}}), states({{1.0f, 1.0f}})};
    const std::vector<size_t> lab = {0, 1, 1};
    auto cosine = [](double a0, double a1, double b0, double b1) {
        return (a0 * b0 + a1 * b1) / std::hypot(a0, a1) / std::hypot(b0, b1);
    };
    const double x0 = 4.0 / 3, x1 = -2.0 / 3;
    const double want0 = cosine(x0, x1, 1.0 / 3, -2.0 / 3);
    const double want1 = std::max(cosine(x0, x1, -2.0 / 3, 1.0 / 3), cosine(x0, x1, 1.0 / 3, 1.0 / 3));
    const auto s = embedding_label_scores(doc, ex, lab, 3);
    ASSERT_EQ(s.size(), 3u);
    EXPECT_NEAR(s[0], want0, test::kHostDoubleTol);
    EXPECT_NEAR(s[1], want1, test::kHostDoubleTol);
    EXPECT_EQ(s[2], -1.0);  // no example: the lowest cosine

    // Two layers: the scores are the mean of the per-layer scores (the second layer alone is swapped).
    const PooledStates doc2 = states({{2.0f, 0.0f}, {0.0f, 2.0f}});
    const std::vector<PooledStates> ex2 = {states({{1.0f, 0.0f}, {0.0f, 1.0f}}), states({{0.0f, 1.0f}, {1.0f, 0.0f}}),
                                           states({{1.0f, 1.0f}, {1.0f, 1.0f}})};
    const auto s2 = embedding_label_scores(doc2, ex2, lab, 2);
    const auto second = embedding_label_scores(states({{0.0f, 2.0f}}),
                                               std::vector<PooledStates>{states({{0.0f, 1.0f}}), states({{1.0f, 0.0f}}),
                                                                         states({{1.0f, 1.0f}})},
                                               lab, 2);
    EXPECT_NEAR(s2[0], (want0 + second[0]) / 2, test::kHostDoubleTol);
    EXPECT_NEAR(s2[1], (want1 + second[1]) / 2, test::kHostDoubleTol);
}

TEST(EmbeddingMethod, ProbabilitiesAndCombination) {
    const std::vector<double> s = {0.50, 0.48, 0.10};
    const auto p = embedding_probabilities(s, 0.02);
    const double z = std::exp(0.50 / 0.02) + std::exp(0.48 / 0.02) + std::exp(0.10 / 0.02);
    for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(p[i], std::exp(s[i] / 0.02) / z, test::kHostDoubleTol);
    const std::vector<double> a = {0.2, 0.3, 0.5}, b = {0.5, 0.25, 0.25};
    const auto c = combine_probabilities(a, b);
    const double n = 0.1 + 0.075 + 0.125;
    EXPECT_NEAR(c[0], 0.1 / n, test::kHostDoubleTol);
    EXPECT_NEAR(c[1], 0.075 / n, test::kHostDoubleTol);
    EXPECT_NEAR(c[2], 0.125 / n, test::kHostDoubleTol);
    // A zero in one distribution does not make the result NaN.
    const auto zc = combine_probabilities(std::vector<double>{0.0, 1.0}, std::vector<double>{1.0, 0.0});
    EXPECT_TRUE(std::isfinite(zc[0]) && std::isfinite(zc[1]));
}

TEST(EmbeddingMethod, MethodNames) {
    ClassifyMethod m{};
    EXPECT_TRUE(parse_method("combined", m));
    EXPECT_EQ(m, ClassifyMethod::combined);
    EXPECT_FALSE(parse_method("knn", m));
    EXPECT_STREQ(method_name(ClassifyMethod::embedding), "embedding");
}

struct EmbeddingModel : ::testing::Test {
    void SetUp() override {
        auto t = Tokenizer::from_model_dir(test::model_fixture("tiny-mixtral"));
        ASSERT_TRUE(t.ok()) << t.error().message;
        tok = std::move(t.value());
        auto mm = load_model(test::model_fixture("tiny-mixtral"), be, {});
        ASSERT_TRUE(mm.ok()) << mm.error().message;
        m = std::make_unique<LoadedModel>(std::move(*mm));
        // A small step (7 tokens): the text runs in several steps, unlike the reference below.
        auto e = LocalEngine::start(be, *m, {.context = 512, .max_seqs = 4, .max_tokens = 7, .n_kv_blocks = 64});
        ASSERT_TRUE(e.ok()) << e.error().message;
        engine = std::move(e.value());
        scorer = std::make_unique<LabelScorer>(engine->engine());
    }
    // The reference: a Session runs the text in one step; the dump holds every layer's output rows.
    std::vector<std::vector<double>> reference_means(const std::vector<int32_t>& ids) {
        auto sess = Session::create(be, *m, {.context = 512, .chunk = 512});
        EXPECT_TRUE(sess.ok());
        ActivationDump dump(be);
        (*sess)->set_tap(dump.tap());
        std::vector<float> last;
        EXPECT_TRUE((*sess)->append(ids, last, nullptr).ok());
        std::vector<std::vector<double>> out;
        for (int64_t l = 0; l < m->cfg.n_layers; ++l) {
            const auto& e = dump.entries().at(fmt::format("layer{}.out", l));
            const size_t D = static_cast<size_t>(e.cols), T = e.values.size() / D;
            std::vector<double> mean(D, 0.0);
            for (size_t t = 1; t < T; ++t) {
                for (size_t d = 0; d < D; ++d) mean[d] += e.values[t * D + d] / static_cast<double>(T - 1);
            }
            out.push_back(mean);
        }
        return out;
    }
    cpu::CpuBackend be;
    std::unique_ptr<Tokenizer> tok;
    std::unique_ptr<LoadedModel> m;
    std::unique_ptr<LocalEngine> engine;
    std::unique_ptr<LabelScorer> scorer;  // declared after the engine: destroyed first
};

TEST_F(EmbeddingModel, PooledStatesAreTheMeanLayerOutputsWithoutPositionZero) {
    auto ids = tok->encode("INVOICE 1042 Date: 2 Feb 2024 Due: 3 Mar 2024 Amount due 1,440.00 by transfer", true);
    ASSERT_TRUE(ids.ok());
    ASSERT_GT(ids->size(), 14u);  // more than two of the scorer's chunks
    const int64_t L = m->cfg.n_layers;
    auto got = scorer->pooled_hidden_states(*ids, 0, L);
    ASSERT_TRUE(got.ok()) << got.error().message;
    ASSERT_EQ(got->n_layers, L);
    ASSERT_EQ(got->dim, m->cfg.dim);
    const auto want = reference_means(*ids);
    for (int64_t l = 0; l < L; ++l) {
        for (int64_t d = 0; d < got->dim; ++d) {
            const double w = want[static_cast<size_t>(l)][static_cast<size_t>(d)];
            EXPECT_NEAR(got->values[static_cast<size_t>(l * got->dim + d)], w,
                        test::kPooledStatesTol * (1.0 + std::abs(w)))
                << "layer " << l << " dim " << d;
        }
    }
    // A sub-range holds the same layers; memoised answers are identical.
    auto last = scorer->pooled_hidden_states(*ids, L - 1, L, true);
    ASSERT_TRUE(last.ok());
    auto again = scorer->pooled_hidden_states(*ids, L - 1, L, true);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(last->values, again->values);
    for (int64_t d = 0; d < got->dim; ++d)
        EXPECT_FLOAT_EQ(last->values[static_cast<size_t>(d)], got->values[static_cast<size_t>((L - 1) * got->dim + d)]);
    // Bad ranges and empty or too long texts are errors, not aborts.
    EXPECT_FALSE(scorer->pooled_hidden_states(*ids, 1, 1).ok());
    EXPECT_FALSE(scorer->pooled_hidden_states(*ids, 0, L + 1).ok());
    EXPECT_FALSE(scorer->pooled_hidden_states(std::vector<int32_t>{}, 0, L).ok());
    EXPECT_FALSE(scorer->pooled_hidden_states(std::vector<int32_t>(513, ids->at(1)), 0, L).ok());
}

TEST_F(EmbeddingModel, ClassifyEqualsTheDefinition) {
    ClassifyRequest req{.document = "Total due: 120 EUR by 30 June. Invoice 77.",
                        .labels = {"invoice", "receipt", "bank statement"}};
    req.examples = {{"INVOICE 9 amount due 40.00 within 30 days", "invoice"},
                    {"QUICK MART TOTAL 4.48 CASH 5.00 CHANGE 0.52", "receipt"},
                    {"Opening balance 100.00 card payment -20.00 closing balance 80.00", "bank statement"},
                    {"Invoice 12, VAT 20%, pay by 1 May", "invoice"}};
    EXPECT_EQ(default_method(true), ClassifyMethod::embedding);
    EXPECT_EQ(default_method(false), ClassifyMethod::labels);
    auto p = build_classify_prompt(*tok, req, 512);
    ASSERT_TRUE(p.ok()) << p.error().message;
    ASSERT_EQ(p->method, ClassifyMethod::embedding);
    ASSERT_EQ(p->example_labels, (std::vector<size_t>{0, 1, 2, 0}));
    // The examples are not in the label prompt (they are compared, not shown).
    auto text = tok->decode(p->prompt, false);
    ASSERT_TRUE(text.ok());
    EXPECT_EQ(text->find("QUICK MART"), std::string::npos) << *text;

    auto got = score_classify_prompt(*scorer, *p);
    ASSERT_TRUE(got.ok()) << got.error().message;
    const auto [b, e] = embedding_layers(m->cfg.n_layers, req.embedding);
    std::vector<PooledStates> ex;
    for (const auto& x : req.examples) {
        auto ids = tok->encode(x.text, true);
        ASSERT_TRUE(ids.ok());
        auto ps = scorer->pooled_hidden_states(*ids, b, e);
        ASSERT_TRUE(ps.ok());
        ex.push_back(*ps);
    }
    auto dids = tok->encode(req.document, true);
    ASSERT_TRUE(dids.ok());
    auto dps = scorer->pooled_hidden_states(*dids, b, e);
    ASSERT_TRUE(dps.ok());
    const auto sim = embedding_label_scores(*dps, ex, p->example_labels, 3);
    const auto want = embedding_probabilities(sim, req.embedding.temperature);
    double sum = 0.0;
    for (size_t i = 0; i < 3; ++i) {
        EXPECT_NEAR(got->similarity[i], sim[i], test::kHostDoubleTol);
        EXPECT_NEAR(got->prob[i], want[i], test::kHostDoubleTol) << i;
        sum += got->prob[i];
    }
    EXPECT_NEAR(sum, 1.0, test::kHostDoubleTol);
    EXPECT_TRUE(got->logprob.empty());

    // Combined: the product with the label-scoring distribution of the examples-free prompt.
    req.method = ClassifyMethod::combined;
    auto pc = build_classify_prompt(*tok, req, 512);
    ASSERT_TRUE(pc.ok());
    EXPECT_EQ(pc->prompt, p->prompt);
    auto comb = score_classify_prompt(*scorer, *pc);
    ASSERT_TRUE(comb.ok()) << comb.error().message;
    auto lm = scorer->score(pc->prompt, pc->label_ids);
    ASSERT_TRUE(lm.ok());
    const auto wantc = combine_probabilities(normalise_logprobs(lm->logprob), want);
    for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(comb->prob[i], wantc[i], test::kHostDoubleTol) << i;
}

TEST_F(EmbeddingModel, BadRequestsAreErrors) {
    ClassifyRequest req{.document = "d", .labels = {"a", "b"}, .method = ClassifyMethod::embedding};
    auto p = build_classify_prompt(*tok, req, 512);
    ASSERT_FALSE(p.ok());
    EXPECT_NE(p.error().message.find("needs few-shot examples"), std::string::npos) << p.error().message;
    req.examples = {{"x", "a"}};
    req.calibrate = true;
    p = build_classify_prompt(*tok, req, 512);
    ASSERT_FALSE(p.ok());
    EXPECT_NE(p.error().message.find("scores no labels"), std::string::npos) << p.error().message;
    req.calibrate = false;
    req.embedding.first_layer = 0.9;
    req.embedding.last_layer = 0.3;
    EXPECT_FALSE(build_classify_prompt(*tok, req, 512).ok());
    req.embedding = {};
    req.embedding.temperature = 0.0;
    EXPECT_FALSE(build_classify_prompt(*tok, req, 512).ok());
    // A document longer than the context is an error unless truncated.
    req.embedding = {};
    std::string big;
    for (int i = 0; i < 400; ++i) big += "word ";
    req.document = big;
    auto longp = build_classify_prompt(*tok, req, 128);
    ASSERT_FALSE(longp.ok());
    EXPECT_NE(longp.error().message.find("does not fit"), std::string::npos) << longp.error().message;
    req.truncate = true;
    auto cut = build_classify_prompt(*tok, req, 128);
    ASSERT_TRUE(cut.ok()) << cut.error().message;
    EXPECT_EQ(cut->embed_document.size(), 128u);
    EXPECT_TRUE(cut->truncated);
    auto doc_ids = tok->encode(big, false), whole = tok->encode(big, true);  // whole: as embedded (BOS)
    ASSERT_TRUE(doc_ids.ok() && whole.ok());
    EXPECT_EQ(cut->document_tokens, static_cast<int64_t>(doc_ids->size()));
    EXPECT_EQ(cut->document_tokens_kept, cut->document_tokens - (static_cast<int64_t>(whole->size()) - 128));

    // The embedding method runs the document alone: one that fits the context by itself is accepted even
    // where the label prompt around it would not fit (the labels method rejects it).
    req.truncate = false;
    const int64_t ctx = static_cast<int64_t>(whole->size()) + 4;
    auto fits = build_classify_prompt(*tok, req, ctx);
    ASSERT_TRUE(fits.ok()) << fits.error().message;
    EXPECT_FALSE(fits->truncated);
    EXPECT_EQ(fits->document_tokens_kept, fits->document_tokens);
    req.method = ClassifyMethod::labels;
    EXPECT_FALSE(build_classify_prompt(*tok, req, ctx).ok());
}

}  // namespace
}  // namespace hr
