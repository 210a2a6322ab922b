// ClassifyBatch on the tiny-mixtral fixture (CPU): a batch's results equal the documents classified one
// at a time, its documents run side by side in the scheduler's steps, a failing document leaves the
// others' results, and a cancelled batch frees every KV block it held.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "backend/cpu/cpu_backend.h"
#include "classify/classify_batch.h"
#include "runtime/local_engine.h"
#include "support/fixtures.h"

namespace hr {
namespace {

using namespace std::chrono_literals;

const std::vector<std::string> kLabels = {"invoice", "receipt", "bank_statement", "contract", "other"};

const std::vector<std::string>& documents() {
    static const std::vector<std::string> docs = {
        "INVOICE #42 from Acme Corp. Total due: $1,234.56 by the end of the month, bank transfer.",
        "Thank you for shopping with us. CASH 5.00 CHANGE 0.52. Keep this receipt for returns.",
        "This agreement is made between the parties named below and binds them to its terms.",
        "Opening balance 1,204.55; closing balance 980.10; 14 transactions this month, 2 fees.",
        "Purchase order 7781: 40 boxes of A4 paper, delivery to the warehouse by Friday, net 30.",
        "Payslip for March: gross salary 3,200.00, tax 640.00, social security 250.00, net 2,310.00.",
    };
    return docs;
}

struct ClassifyBatchTest : ::testing::Test {
    void SetUp() override {
        auto t = Tokenizer::from_model_dir(test::model_fixture("tiny-mixtral"));
        ASSERT_TRUE(t.ok()) << t.error().message;
        tok = std::move(t.value());
        auto loaded = load_model(test::model_fixture("tiny-mixtral"), be, {});
        ASSERT_TRUE(loaded.ok()) << loaded.error().message;
        m = std::make_unique<LoadedModel>(std::move(*loaded));
    }
    // 16-token steps: a ~60-token prompt takes several steps, so documents in flight share steps.
    std::unique_ptr<LocalEngine> engine() {
        auto e = LocalEngine::start(be, *m, {.context = kContext, .max_seqs = 8, .max_tokens = 16, .n_kv_blocks = 128});
        EXPECT_TRUE(e.ok()) << e.error().message;
        return e.ok() ? std::move(e.value()) : nullptr;
    }
    // Waits for every document (a finished batch has nothing more to start).
    static std::vector<BatchDocumentResult> collect(ClassifyBatch& b, size_t n) {
        std::vector<BatchDocumentResult> out;
        for (size_t i = 0; i < n; ++i) {
            while (!b.wait(i, 1000ms)) {
            }
            out.push_back(b.take(i));
        }
        return out;
    }
    static constexpr int64_t kContext = 256;
    cpu::CpuBackend be;
    std::unique_ptr<LoadedModel> m;
    std::unique_ptr<Tokenizer> tok;
};

TEST_F(ClassifyBatchTest, ResultsEqualSequentialAndDocumentsRunSideBySide) {
    const ClassifyRequest shared{.labels = kLabels};
    // One at a time, on an engine of its own (so the batch below finds nothing in the prefix cache).
    std::vector<ClassifyResult> alone;
    {
        auto le = engine();
        ASSERT_TRUE(le);
        LabelScorer scorer(le->engine());
        for (const std::string& d : documents()) {
            ClassifyRequest r = shared;
            r.document = d;
            auto res = classify(scorer, *tok, r, kContext);
            ASSERT_TRUE(res.ok()) << res.error().message;
            alone.push_back(*res);
        }
        EXPECT_EQ(le->engine().metrics().step_requests_max.load(), 1);  // one document (one group) per step
    }
    auto le = engine();
    ASSERT_TRUE(le);
    LabelScorer scorer(le->engine());
    ClassifyBatch batch(scorer, *tok, shared, {.context = kContext, .max_in_flight = 8});
    for (const std::string& d : documents()) batch.add(d);
    std::vector<BatchDocumentResult> got = collect(batch, documents().size());
    // Side by side: the scheduler ran tokens of two or more documents' groups in one step.
    EXPECT_GE(le->engine().metrics().step_requests_max.load(), 2);
    EXPECT_GE(batch.peak_in_flight(), 2);
    for (size_t i = 0; i < got.size(); ++i) {
        ASSERT_EQ(got[i].kind, BatchDocumentResult::Kind::ok) << i << ": " << got[i].error;
        const ClassifyResult r = classify_result(kLabels, got[i].prompt, got[i].scores, got[i].seconds);
        EXPECT_EQ(r.label, alone[i].label) << i;
        EXPECT_EQ(r.prompt_tokens, alone[i].prompt_tokens) << i;
        for (size_t j = 0; j < kLabels.size(); ++j) {
            // The tolerance of the other "equal to sequential" tests (label_scorer_test.cpp): the CPU
            // kernels' summation order depends on the step's shape.
            EXPECT_NEAR(r.logprobs[j], alone[i].logprobs[j], 1e-4) << "document " << i << " label " << j;
            EXPECT_NEAR(r.probabilities[j].second, alone[i].probabilities[j].second, 1e-4);
        }
    }
}

TEST_F(ClassifyBatchTest, AFailingDocumentLeavesTheOthers) {
    auto le = engine();
    ASSERT_TRUE(le);
    LabelScorer scorer(le->engine());
    const ClassifyRequest shared{.labels = kLabels};
    std::string too_long;
    for (int i = 0; i < 200; ++i) too_long += "word ";
    const std::vector<std::string> docs = {documents()[0], too_long, "", documents()[1]};
    ClassifyBatch batch(scorer, *tok, shared, {.context = kContext, .max_in_flight = 8});
    for (const std::string& d : docs) batch.add(d);
    std::vector<BatchDocumentResult> got = collect(batch, docs.size());
    EXPECT_EQ(got[1].kind, BatchDocumentResult::Kind::invalid);
    EXPECT_NE(got[1].error.find("does not fit"), std::string::npos) << got[1].error;
    EXPECT_EQ(got[2].kind, BatchDocumentResult::Kind::invalid);
    EXPECT_NE(got[2].error.find("document is empty"), std::string::npos) << got[2].error;
    for (size_t i : {size_t{0}, size_t{3}}) {
        ASSERT_EQ(got[i].kind, BatchDocumentResult::Kind::ok) << i << ": " << got[i].error;
        ClassifyRequest r = shared;
        r.document = docs[i];
        auto want = classify(scorer, *tok, r, kContext);
        ASSERT_TRUE(want.ok()) << want.error().message;
        for (size_t j = 0; j < kLabels.size(); ++j) EXPECT_NEAR(got[i].scores.logprob[j], want->logprobs[j], 1e-4);
    }
}

TEST_F(ClassifyBatchTest, CancellingMidBatchFreesEveryBlock) {
    auto le = engine();
    ASSERT_TRUE(le);
    Engine& e = le->engine();
    LabelScorer scorer(e);
    const int64_t used0 = e.metrics().kv_blocks_used.load();
    ASSERT_EQ(used0, 0);
    const size_t n = 12;
    ClassifyBatch batch(scorer, *tok, {.labels = kLabels}, {.context = kContext, .max_in_flight = 2});
    for (size_t i = 0; i < n; ++i) batch.add(documents()[i % documents().size()] + " Copy " + std::to_string(i) + ".");
    while (!batch.wait(0, 1000ms)) {
    }
    batch.cancel();  // the second document (at least) is in flight; most are not started
    std::vector<BatchDocumentResult> got = collect(batch, n);
    EXPECT_EQ(got[0].kind, BatchDocumentResult::Kind::ok) << got[0].error;
    size_t cancelled = 0;
    for (const auto& r : got) cancelled += r.kind == BatchDocumentResult::Kind::cancelled ? 1 : 0;
    EXPECT_GE(cancelled, n - 4);
    // Every block back: nothing held (cached prompt blocks are evictable, i.e. free), nothing reserved,
    // nothing queued. The gauges are published by the engine loop after each step or idle wait.
    bool freed = false;
    for (int i = 0; i < 500 && !freed; ++i) {
        freed = e.metrics().kv_blocks_used.load() == used0 && e.metrics().kv_blocks_reserved.load() == 0 &&
                e.n_in_flight() == 0 && e.metrics().waiting.load() == 0;
        if (!freed) std::this_thread::sleep_for(10ms);
    }
    EXPECT_TRUE(freed) << "used " << e.metrics().kv_blocks_used.load() << " reserved "
                       << e.metrics().kv_blocks_reserved.load() << " in flight " << e.n_in_flight();
}

}  // namespace
}  // namespace hr
