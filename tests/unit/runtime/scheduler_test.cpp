// Scheduler and batch builder: budgets, decodes first, chunked prefill, reserve-at-admission.
#include <gtest/gtest.h>

#include <memory>

#include "runtime/batch.h"
#include "runtime/scheduler.h"

namespace hr {
namespace {

std::unique_ptr<Sequence> make_seq(uint64_t id, int64_t n_prompt, int64_t max_tokens) {
    auto s = std::make_unique<Sequence>();
    s->id = id;
    s->n_prompt = n_prompt;
    for (int64_t i = 0; i < n_prompt; ++i) s->tokens.push_back(static_cast<int32_t>(100 + i));
    s->req.max_tokens = max_tokens;
    s->stream = std::make_shared<RequestStream>(id);
    return s;
}

// Pretends the step ran and every sequence that wanted logits sampled token 7.
void run_step(Scheduler& sc, const Schedule& s) {
    sc.commit(s);
    for (const auto& it : s.items) {
        if (it.wants_logits) it.seq->tokens.push_back(7);
    }
}

}  // namespace

TEST(Scheduler, ChunksPrefillUnderTokenBudget) {
    KvBlockPool pool(64, 4);
    Scheduler sc({.max_tokens_per_step = 8, .max_seqs = 4, .max_blocks_per_seq = 16}, pool);
    sc.enqueue(make_seq(1, 20, 4));
    Schedule s = sc.schedule();
    ASSERT_EQ(s.items.size(), 1u);
    EXPECT_EQ(s.items[0].n_tokens, 8);
    EXPECT_FALSE(s.items[0].wants_logits);
    EXPECT_EQ(s.items[0].seq->block_table.size(), 2u);  // blocks allocated as tokens reach them
    EXPECT_EQ(pool.n_reserved(), KvBlockPool::blocks_for(24, 4) - 2);
    run_step(sc, s);
    s = sc.schedule();
    EXPECT_EQ(s.items[0].n_tokens, 8);
    run_step(sc, s);
    s = sc.schedule();
    EXPECT_EQ(s.items[0].n_tokens, 4);
    EXPECT_TRUE(s.items[0].wants_logits);  // the last prompt chunk produces the first token
    run_step(sc, s);
    s = sc.schedule();
    ASSERT_EQ(s.items.size(), 1u);
    EXPECT_EQ(s.items[0].n_tokens, 1);
    EXPECT_TRUE(s.items[0].wants_logits);
}

TEST(Scheduler, DecodesComeBeforePrefillAndShareTheStep) {
    KvBlockPool pool(64, 4);
    Scheduler sc({.max_tokens_per_step = 6, .max_seqs = 4, .max_blocks_per_seq = 16}, pool);
    sc.enqueue(make_seq(1, 3, 4));
    run_step(sc, sc.schedule());  // seq 1 prefilled, has one pending token
    sc.enqueue(make_seq(2, 10, 4));
    Schedule s = sc.schedule();
    ASSERT_EQ(s.items.size(), 2u);
    EXPECT_EQ(s.items[0].seq->id, 1u);
    EXPECT_EQ(s.items[0].n_tokens, 1);
    EXPECT_EQ(s.items[1].seq->id, 2u);
    EXPECT_EQ(s.items[1].n_tokens, 5);  // the rest of the budget
    EXPECT_EQ(s.n_tokens, 6);
}

TEST(Scheduler, AdmissionWaitsForBlocksInArrivalOrder) {
    KvBlockPool pool(6, 4);  // 24 tokens in all
    Scheduler sc({.max_tokens_per_step = 64, .max_seqs = 8, .max_blocks_per_seq = 6}, pool);
    sc.enqueue(make_seq(1, 8, 8));  // 4 blocks
    sc.enqueue(make_seq(2, 8, 8));  // 4 blocks: must wait
    sc.enqueue(make_seq(3, 2, 2));  // 1 block: fits, but does not overtake seq 2
    Schedule s = sc.schedule();
    EXPECT_EQ(sc.n_running(), 1);
    EXPECT_EQ(sc.n_waiting(), 2);
    EXPECT_EQ(pool.n_available(), 2);
    run_step(sc, s);
    auto done = sc.remove(sc.running()[0].get());
    EXPECT_EQ(pool.n_used(), 0);
    EXPECT_EQ(pool.n_reserved(), 0);
    s = sc.schedule();
    EXPECT_EQ(sc.n_running(), 2);  // seq 2 and seq 3
    EXPECT_EQ(sc.n_waiting(), 0);
    EXPECT_TRUE(pool.check_invariants());
}

TEST(Scheduler, SequenceBudgetCapsRunningSet) {
    KvBlockPool pool(64, 4);
    Scheduler sc({.max_tokens_per_step = 64, .max_seqs = 2, .max_blocks_per_seq = 8}, pool);
    for (uint64_t i = 1; i <= 3; ++i) sc.enqueue(make_seq(i, 2, 2));
    Schedule s = sc.schedule();
    EXPECT_EQ(s.items.size(), 2u);
    EXPECT_EQ(sc.n_waiting(), 1);
}

TEST(Scheduler, FitsAtAllChecksPoolAndPerSequenceLimit) {
    KvBlockPool pool(10, 4);
    Scheduler sc({.max_tokens_per_step = 8, .max_seqs = 2, .max_blocks_per_seq = 5}, pool);
    EXPECT_TRUE(sc.fits_at_all(10, 10));   // 5 blocks
    EXPECT_FALSE(sc.fits_at_all(10, 11));  // 6 blocks > per-sequence limit
}

TEST(Scheduler, RemoveWaitingSequenceFreesNothingItDidNotHold) {
    KvBlockPool pool(2, 4);
    Scheduler sc({.max_tokens_per_step = 8, .max_seqs = 2, .max_blocks_per_seq = 2}, pool);
    sc.enqueue(make_seq(1, 4, 4));
    sc.enqueue(make_seq(2, 4, 4));
    (void)sc.schedule();
    ASSERT_EQ(sc.n_waiting(), 1);
    auto w = sc.remove(sc.waiting()[0].get());
    EXPECT_EQ(w->id, 2u);
    EXPECT_EQ(pool.n_reserved() + pool.n_used(), 2);
    EXPECT_TRUE(pool.check_invariants());
}

TEST(BatchBuilder, FlattensScheduleWithSlotsAndLogitRows) {
    KvBlockPool pool(16, 4);
    Scheduler sc({.max_tokens_per_step = 16, .max_seqs = 4, .max_blocks_per_seq = 4}, pool);
    sc.enqueue(make_seq(1, 3, 2));
    run_step(sc, sc.schedule());  // seq 1: 3 tokens computed, 1 pending
    sc.enqueue(make_seq(2, 6, 2));
    Schedule s = sc.schedule();
    StepBatch b;
    build_step_batch(s, 4, 4, b);
    ASSERT_EQ(b.token_ids.size(), 7u);
    // row 0: seq 1's decode at position 3
    EXPECT_EQ(b.token_ids[0], 7);
    EXPECT_EQ(b.positions[0], 3);
    EXPECT_EQ(b.token_seq[0], 0);
    const Sequence& s1 = *s.items[0].seq;
    EXPECT_EQ(b.slot_mapping[0], s1.block_table[0] * 4 + 3);
    // rows 1..6: seq 2's prompt at positions 0..5, crossing into its second block
    const Sequence& s2 = *s.items[1].seq;
    for (int i = 0; i < 6; ++i) {
        EXPECT_EQ(b.positions[1 + i], i);
        EXPECT_EQ(b.token_seq[1 + i], 1);
        EXPECT_EQ(b.slot_mapping[1 + i], s2.block_table[i / 4] * 4 + i % 4);
    }
    ASSERT_EQ(b.block_tables.size(), 8u);
    EXPECT_EQ(b.block_tables[4], s2.block_table[0]);
    EXPECT_EQ(b.block_tables[5], s2.block_table[1]);
    EXPECT_EQ(b.block_tables[6], 0);  // padding
    EXPECT_EQ(b.logit_rows, (std::vector<int32_t>{0, 6}));
}

TEST(BatchBuilder, PrefillOnlyStepStillAsksForOneLogitsRow) {
    // A prompt longer than the step budget, alone: its first chunk samples nothing, but forward()
    // needs at least one logits row (this step used to fail the engine).
    KvBlockPool pool(16, 4);
    Scheduler sc({.max_tokens_per_step = 8, .max_seqs = 4, .max_blocks_per_seq = 8}, pool);
    sc.enqueue(make_seq(1, 20, 2));
    Schedule s = sc.schedule();
    ASSERT_EQ(s.items.size(), 1u);
    EXPECT_FALSE(s.items[0].wants_logits);
    StepBatch b;
    build_step_batch(s, 4, 8, b);
    EXPECT_EQ(b.logit_rows, (std::vector<int32_t>{7}));
}

}  // namespace hr
