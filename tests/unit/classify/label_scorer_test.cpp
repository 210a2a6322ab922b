// Label scoring with a shared prefix equals scoring each label on its own from full-sequence logits,
// and classification always answers one of the labels with probabilities summing to 1.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <fstream>
#include <future>
#include <thread>

#include <nlohmann/json.hpp>
#include <numeric>

#include "backend/cpu/cpu_backend.h"
#include "classify/classify.h"
#include "loader/session.h"
#include "runtime/local_engine.h"
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

// The engine the scorer runs on: small steps (7 tokens, 4 logits rows) so prompts span several chunks
// and labels' rows several steps.
std::unique_ptr<LocalEngine> small_engine(Backend& be, const LoadedModel& m, int64_t context = 96) {
    auto e = LocalEngine::start(be, m, {.context = context, .max_seqs = 4, .max_tokens = 7, .n_kv_blocks = 64});
    EXPECT_TRUE(e.ok()) << e.error().message;
    return e.ok() ? std::move(e.value()) : nullptr;
}

TEST_P(LabelScorerTest, SharedPrefixScoresEqualIndependentScores) {
    cpu::CpuBackend be;
    auto m = load_model(test::model_fixture("tiny-mixtral"), be, {});
    ASSERT_TRUE(m.ok()) << m.error().message;
    // Prompt lengths around block boundaries (16): whether the prompt ends in a partial block (copied on
    // write by the labels) changes with them.
    const int prompt_len = GetParam();
    std::vector<int32_t> prompt{1};
    for (int i = 1; i < prompt_len; ++i) prompt.push_back(100 + (i * 37) % 5000);
    const std::vector<std::vector<int32_t>> labels = {{2961, 2}, {28705, 1300, 2}, {5000, 2}, {42, 43, 44, 45, 2}};
    auto engine = small_engine(be, *m);
    ASSERT_TRUE(engine);
    LabelScorer scorer(engine->engine());
    const uint64_t allocs = be.allocation_count();
    auto s = scorer.score(prompt, labels);
    ASSERT_TRUE(s.ok()) << s.error().message;
    EXPECT_EQ(be.allocation_count(), allocs);  // the engine's memory only
    // The prompt once; every label but the last to write copies the prompt's partial last block.
    EXPECT_EQ(s->cached_tokens, 0);
    int64_t label_tokens = 0;
    for (const auto& l : labels) label_tokens += static_cast<int64_t>(l.size()) - 1;
    EXPECT_EQ(s->forward_tokens, prompt_len + label_tokens);
    EXPECT_EQ(engine->engine().metrics().kv_block_copies.load(), prompt_len % 16 == 0 ? 0u : labels.size() - 1);
    double psum = 0.0;
    for (size_t j = 0; j < labels.size(); ++j) {
        EXPECT_NEAR(s->logprob[j], reference_logprob(be, *m, prompt, labels[j]), 1e-4) << "label " << j;
        psum += s->prob[j];
    }
    EXPECT_NEAR(psum, 1.0, 1e-6);
    // Scoring again (the prompt's full blocks now come from the prefix cache) gives the same numbers.
    auto again = scorer.score(prompt, labels);
    ASSERT_TRUE(again.ok());
    if (prompt_len > 16) {
        EXPECT_GT(again->cached_tokens, 0);
    }
    for (size_t j = 0; j < labels.size(); ++j) EXPECT_NEAR(again->logprob[j], s->logprob[j], 1e-4);
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
    auto engine = small_engine(be, *m, 256);
    ASSERT_TRUE(engine);
    LabelScorer scorer(engine->engine());
    auto r = classify(scorer, *tok, req, 256);
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

// Classification shares the engine with generation: a running greedy request keeps decoding in the
// steps that prefill the documents (16-token steps, ~100-token prompts), its tokens stay transformers'
// greedy continuation, and documents classified three at a time score as they do one at a time.
TEST_F(ClassifyFixture, GenerationKeepsGoingWhileDocumentsAreClassifiedAndResultsEqualSequential) {
    cpu::CpuBackend be;
    auto m = load_model(test::model_fixture("tiny-mixtral"), be, {});
    ASSERT_TRUE(m.ok());
    auto le = LocalEngine::start(be, *m, {.context = 256, .max_seqs = 8, .max_tokens = 16, .n_kv_blocks = 128});
    ASSERT_TRUE(le.ok()) << le.error().message;
    Engine& engine = (*le)->engine();
    LabelScorer scorer(engine);
    std::vector<ClassifyRequest> docs;
    for (const char* d : {"INVOICE #42 from Acme Corp. Total due: $1,234.56 by the end of the month, bank transfer.",
                          "Thank you for shopping with us. CASH 5.00 CHANGE 0.52. Keep this receipt for returns.",
                          "This agreement is made between the parties named below and binds them to its terms."}) {
        docs.push_back({.document = d, .labels = {"invoice", "receipt", "bank_statement", "contract", "other"}});
    }
    std::vector<ClassifyResult> alone;
    for (const auto& d : docs) {
        auto r = classify(scorer, *tok, d, 256);
        ASSERT_TRUE(r.ok()) << r.error().message;
        alone.push_back(*r);
    }

    std::ifstream f(test::model_fixture("tiny-mixtral") + "/expected.json");
    const nlohmann::json expected = nlohmann::json::parse(f);
    GenerationRequest g;
    g.prompt = expected["prompts"][0]["ids"].get<std::vector<int32_t>>();
    const auto want = expected["prompts"][0]["greedy_ids"].get<std::vector<int32_t>>();
    g.max_tokens = static_cast<int64_t>(want.size());
    g.sampling.temperature = 0;
    auto sub = engine.submit(g);
    ASSERT_TRUE(std::holds_alternative<std::shared_ptr<RequestStream>>(sub));
    auto stream = std::get<std::shared_ptr<RequestStream>>(sub);
    std::atomic<int> produced{0};
    std::vector<int32_t> got;
    std::thread reader([&] {
        while (true) {
            auto ev = stream->next(std::chrono::milliseconds(100));
            if (!ev) continue;
            if (ev->kind != StreamEvent::Kind::token) break;
            got.push_back(ev->token);
            produced.fetch_add(1);
        }
    });
    while (produced.load() < 1) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const int tokens0 = produced.load();
    const uint64_t steps0 = engine.metrics().steps.load();
    std::vector<std::future<Result<ClassifyResult>>> together;
    for (const auto& d : docs) {
        together.push_back(std::async(std::launch::async, [&, d] { return classify(scorer, *tok, d, 256); }));
    }
    std::vector<Result<ClassifyResult>> results;
    for (auto& fut : together) results.push_back(fut.get());
    const int during = produced.load() - tokens0;
    const int64_t steps = static_cast<int64_t>(engine.metrics().steps.load() - steps0);
    reader.join();
    EXPECT_EQ(got, want);
    // One token per step the documents took while the generation ran (give or take the steps at both
    // ends), until it ended. The instructions' blocks are cached by the sequential run; the documents'
    // own tokens and the labels still take several 16-token steps.
    EXPECT_GE(steps, 4);
    EXPECT_GE(during + 2, std::min<int64_t>(steps, static_cast<int64_t>(want.size()) - tokens0)) << "steps " << steps;
    for (size_t i = 0; i < docs.size(); ++i) {
        ASSERT_TRUE(results[i].ok()) << results[i].error().message;
        EXPECT_EQ(results[i]->label, alone[i].label) << i;
        for (size_t j = 0; j < alone[i].logprobs.size(); ++j) {
            EXPECT_NEAR(results[i]->logprobs[j], alone[i].logprobs[j], 1e-4) << "document " << i << " label " << j;
        }
    }
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
