// KvBlockPool's prefix cache: chain hashing, reference counts, LRU eviction order, admission
// accounting, and the scheduler starting a prompt after its cached blocks.
#include <gtest/gtest.h>

#include <memory>
#include <numeric>

#include "runtime/batch.h"
#include "runtime/kv_blocks.h"
#include "runtime/scheduler.h"

namespace hr {
namespace {

std::vector<int32_t> iota_tokens(int n, int32_t first) {
    std::vector<int32_t> v(static_cast<size_t>(n));
    std::iota(v.begin(), v.end(), first);
    return v;
}

// Allocates blocks for `tokens` (all full) as one sequence would and commits each to the cache.
std::vector<int32_t> fill_and_commit(KvBlockPool& pool, const std::vector<int32_t>& tokens) {
    const int bs = pool.block_size();
    const int64_t n = static_cast<int64_t>(tokens.size()) / bs;
    EXPECT_TRUE(pool.try_reserve(n));
    std::vector<int32_t> blocks;
    PrefixLink link{KvBlockPool::kRootHash, -1, 0, true};
    for (int64_t k = 0; k < n; ++k) {
        blocks.push_back(pool.allocate_reserved());
        link = pool.commit_full_block(link, blocks.back(),
                                      std::span(tokens).subspan(static_cast<size_t>(k * bs), static_cast<size_t>(bs)));
        EXPECT_TRUE(link.valid);
    }
    return blocks;
}

}  // namespace

TEST(PrefixCache, ChainHashCoversTheBlockAndItsWholePrefix) {
    const std::vector<int32_t> a{1, 2, 3, 4}, b{1, 2, 3, 5}, c{2, 1, 3, 4};
    const uint64_t r = KvBlockPool::kRootHash;
    EXPECT_EQ(KvBlockPool::chain_hash(r, a), KvBlockPool::chain_hash(r, a));
    EXPECT_NE(KvBlockPool::chain_hash(r, a), KvBlockPool::chain_hash(r, b));  // one token differs
    EXPECT_NE(KvBlockPool::chain_hash(r, a), KvBlockPool::chain_hash(r, c));  // order matters
    // The same block after different prefixes has different keys.
    const uint64_t after_a = KvBlockPool::chain_hash(KvBlockPool::chain_hash(r, a), b);
    const uint64_t after_c = KvBlockPool::chain_hash(KvBlockPool::chain_hash(r, c), b);
    EXPECT_NE(after_a, after_c);
    EXPECT_NE(after_a, KvBlockPool::chain_hash(r, b));
}

TEST(PrefixCache, HitSharesBlocksWithReferenceCountsAndCountsThemOnce) {
    KvBlockPool pool(8, 4);
    const std::vector<int32_t> prompt = iota_tokens(8, 100);
    std::vector<int32_t> a = fill_and_commit(pool, prompt);
    EXPECT_EQ(pool.n_cached(), 2);
    EXPECT_EQ(pool.n_used(), 2);

    std::vector<int32_t> longer = prompt;
    longer.push_back(7);
    PrefixMatch m = pool.match(longer, 8);
    ASSERT_EQ(m.blocks, a);
    EXPECT_EQ(m.n_unreferenced, 0);  // still held by the first sequence
    ASSERT_TRUE(pool.try_acquire(m, 1));
    EXPECT_EQ(pool.refcount(a[0]), 2);
    EXPECT_EQ(pool.refcount(a[1]), 2);
    EXPECT_EQ(pool.n_used(), 2);  // shared blocks count once
    EXPECT_EQ(pool.n_reserved(), 1);
    EXPECT_TRUE(pool.check_invariants());

    pool.release(a);  // the first sequence ends: the second still holds them
    EXPECT_EQ(pool.refcount(a[0]), 1);
    EXPECT_EQ(pool.n_evictable(), 0);
    pool.release(m.blocks);
    pool.unreserve(1);
    EXPECT_EQ(pool.n_evictable(), 2);
    EXPECT_EQ(pool.n_free(), 8);  // evictable blocks are free capacity
    EXPECT_EQ(pool.n_used(), 0);
    EXPECT_EQ(pool.n_cached(), 2);
    EXPECT_EQ(pool.match(longer, 8).n_unreferenced, 2);
    EXPECT_TRUE(pool.check_invariants());
}

TEST(PrefixCache, MatchStopsAtTheFirstDifferentBlockAndAtMaxBlocks) {
    KvBlockPool pool(8, 4);
    const std::vector<int32_t> prompt = iota_tokens(12, 1);
    std::vector<int32_t> a = fill_and_commit(pool, prompt);
    std::vector<int32_t> other = prompt;
    other[5] = 99;  // second block differs
    EXPECT_EQ(pool.match(other, 8).blocks, std::vector<int32_t>{a[0]});
    EXPECT_EQ(pool.match(prompt, 2).blocks, (std::vector<int32_t>{a[0], a[1]}));
    EXPECT_EQ(pool.match(std::span(prompt).first(11), 8).blocks.size(), 2u);  // partial third block
    // The same tokens at another position (after another prefix) are not a hit.
    std::vector<int32_t> shifted = iota_tokens(4, 50);
    shifted.insert(shifted.end(), prompt.begin() + 4, prompt.end());
    EXPECT_TRUE(pool.match(shifted, 8).blocks.empty());
}

TEST(PrefixCache, EvictsLeastRecentlyReleasedFirstAndAPromptsTailBeforeItsHead) {
    KvBlockPool pool(4, 2);
    const std::vector<int32_t> p1{1, 2, 3, 4}, p2{5, 6, 7, 8};
    std::vector<int32_t> a = fill_and_commit(pool, p1);
    std::vector<int32_t> b = fill_and_commit(pool, p2);
    pool.release(a);  // evictable order: a[1], a[0]
    pool.release(b);  // then b[1], b[0]
    EXPECT_EQ(pool.n_evictable(), 4);
    ASSERT_TRUE(pool.try_reserve(1));
    EXPECT_EQ(pool.allocate_reserved(), a[1]);  // no free block left: evict the oldest, a's tail
    EXPECT_EQ(pool.match(p1, 2).blocks, std::vector<int32_t>{a[0]});  // a's head is still a hit
    EXPECT_EQ(pool.match(p2, 2).blocks.size(), 2u);
    // A hit refreshes: b taken and released again becomes the most recent.
    PrefixMatch mb = pool.match(p2, 2);
    ASSERT_TRUE(pool.try_acquire(mb, 0));
    pool.release(mb.blocks);
    ASSERT_TRUE(pool.try_reserve(1));
    EXPECT_EQ(pool.allocate_reserved(), a[0]);
    EXPECT_TRUE(pool.match(p1, 2).blocks.empty());
    EXPECT_EQ(pool.n_cached(), 2);
    EXPECT_TRUE(pool.check_invariants());
}

TEST(PrefixCache, AReusedParentInvalidatesItsCachedChildren) {
    // a[1] stays cached while a[0] is evicted and refilled with other tokens: a[1] was computed after
    // a[0]'s old contents, so a prompt that starts with the new contents must not reach it.
    KvBlockPool pool(3, 2);
    const std::vector<int32_t> p{1, 2, 3, 4};
    std::vector<int32_t> a = fill_and_commit(pool, p);
    // Hold a[1] alone so only a[0] can be evicted.
    PrefixMatch m = pool.match(p, 2);
    ASSERT_TRUE(pool.try_acquire(m, 0));
    pool.release(a);
    pool.release({m.blocks[0]});  // a[0] evictable, a[1] held
    ASSERT_TRUE(pool.try_reserve(2));
    int32_t x = pool.allocate_reserved();  // the free block
    int32_t y = pool.allocate_reserved();  // evicts a[0]
    EXPECT_EQ(y, a[0]);
    pool.release({x, y});
    EXPECT_TRUE(pool.match(p, 2).blocks.empty());
    // Recompute block 0 in a fresh block: its old child must still not match under the new parent.
    std::vector<int32_t> again = fill_and_commit(pool, {1, 2});
    EXPECT_EQ(pool.match(p, 2).blocks, again);
    pool.release(again);
    pool.release({m.blocks[1]});
    EXPECT_TRUE(pool.check_invariants());
}

TEST(PrefixCache, AdmissionCountsUnheldHitsAgainstAvailability) {
    KvBlockPool pool(4, 2);
    const std::vector<int32_t> p{1, 2, 3, 4};
    pool.release(fill_and_commit(pool, p));  // 2 evictable, 2 free
    ASSERT_TRUE(pool.try_reserve(3));        // another sequence: 1 block left available
    PrefixMatch m = pool.match(p, 2);
    ASSERT_EQ(m.n_unreferenced, 2);
    EXPECT_FALSE(pool.try_acquire(m, 0));    // taking 2 evictable blocks would break the promise
    EXPECT_EQ(pool.refcount(m.blocks[0]), 0);
    EXPECT_EQ(pool.n_evictable(), 2);        // a refused admission changes nothing
    pool.unreserve(1);
    EXPECT_TRUE(pool.try_acquire(m, 0));
    EXPECT_EQ(pool.n_available(), 0);
    // The remaining reservation is still honoured: the free blocks cover it.
    EXPECT_GE(pool.n_free(), pool.n_reserved());
    EXPECT_TRUE(pool.check_invariants());
}

TEST(PrefixCache, DuplicateBlocksStayPrivateButTheChainContinues) {
    // Two sequences prefill the same prompt at once: the second's blocks are not indexed, but its
    // later blocks chain from the indexed ones, so a third prompt can hit all of them.
    KvBlockPool pool(8, 2);
    const std::vector<int32_t> p{1, 2, 3, 4, 5, 6};
    std::vector<int32_t> a = fill_and_commit(pool, {1, 2, 3, 4});
    ASSERT_TRUE(pool.try_reserve(3));
    PrefixLink link{KvBlockPool::kRootHash, -1, 0, true};
    std::vector<int32_t> b;
    for (int k = 0; k < 3; ++k) {
        b.push_back(pool.allocate_reserved());
        link = pool.commit_full_block(link, b.back(), std::span(p).subspan(static_cast<size_t>(2 * k), 2));
        ASSERT_TRUE(link.valid);
    }
    EXPECT_EQ(link.block, b[2]);
    EXPECT_EQ(pool.n_cached(), 3);
    EXPECT_EQ(pool.match(p, 3).blocks, (std::vector<int32_t>{a[0], a[1], b[2]}));
    pool.release(a);
    pool.release(b);
    EXPECT_EQ(pool.n_free(), 8);
    EXPECT_EQ(pool.n_evictable(), 3);
    EXPECT_TRUE(pool.check_invariants());
}

TEST(PrefixCache, DisabledPoolNeitherIndexesNorMatches) {
    KvBlockPool pool(4, 2, /*prefix_caching=*/false);
    ASSERT_TRUE(pool.try_reserve(1));
    int32_t b = pool.allocate_reserved();
    const std::vector<int32_t> t{1, 2};
    EXPECT_FALSE(pool.commit_full_block({KvBlockPool::kRootHash, -1, 0, true}, b, t).valid);
    pool.release({b});
    EXPECT_EQ(pool.n_cached(), 0);
    EXPECT_EQ(pool.n_evictable(), 0);
    EXPECT_TRUE(pool.match(t, 1).blocks.empty());
}

namespace {

std::unique_ptr<Sequence> make_seq(uint64_t id, std::vector<int32_t> prompt, int64_t max_tokens) {
    auto s = std::make_unique<Sequence>();
    s->id = id;
    s->n_prompt = static_cast<int64_t>(prompt.size());
    s->tokens = std::move(prompt);
    s->req.max_tokens = max_tokens;
    s->stream = std::make_shared<RequestStream>(id);
    return s;
}

void run_to_end(Scheduler& sc) {
    while (true) {
        Schedule s = sc.schedule();
        if (s.empty()) return;
        sc.commit(s);
        std::vector<Sequence*> done;
        for (const auto& it : s.items) {
            if (!it.wants_logits) continue;
            it.seq->tokens.push_back(7);
            if (it.seq->n_generated() >= it.seq->req.max_tokens) done.push_back(it.seq);
        }
        for (Sequence* q : done) sc.remove(q);
    }
}

}  // namespace

TEST(PrefixCache, SchedulerStartsAfterCachedBlocksAndReservesOnlyTheRest) {
    KvBlockPool pool(16, 4);
    Scheduler sc({.max_tokens_per_step = 32, .max_seqs = 4, .max_blocks_per_seq = 8}, pool);
    const std::vector<int32_t> a = iota_tokens(10, 100);
    sc.enqueue(make_seq(1, a, 2));
    run_to_end(sc);
    // 10 prompt tokens + 1 generated token were computed: two full blocks are cached.
    EXPECT_EQ(pool.n_cached(), 2);
    EXPECT_EQ(pool.n_used(), 0);

    std::vector<int32_t> b = a;
    b.resize(9);
    b.push_back(55);  // shares the first two blocks, differs in the third
    sc.enqueue(make_seq(2, b, 2));
    Schedule s = sc.schedule();
    ASSERT_EQ(s.items.size(), 1u);
    Sequence& q = *s.items[0].seq;
    EXPECT_EQ(q.n_cached_tokens, 8);
    EXPECT_EQ(q.n_computed, 8);
    EXPECT_EQ(s.items[0].n_tokens, 2);  // only the uncached rest of the prompt runs
    EXPECT_TRUE(s.items[0].wants_logits);
    // need blocks_for(10 + 2) = 3: two came from the cache, one was reserved and is now allocated.
    EXPECT_EQ(q.block_table.size(), 3u);
    EXPECT_EQ(pool.n_used(), 3);
    EXPECT_EQ(pool.n_reserved(), 0);
    EXPECT_TRUE(pool.check_invariants());
}

TEST(PrefixCache, PromptOfWholeBlocksStillRunsItsLastToken) {
    KvBlockPool pool(16, 4);
    Scheduler sc({.max_tokens_per_step = 32, .max_seqs = 4, .max_blocks_per_seq = 8}, pool);
    const std::vector<int32_t> a = iota_tokens(8, 100);
    sc.enqueue(make_seq(1, a, 1));
    run_to_end(sc);
    sc.enqueue(make_seq(2, a, 1));
    Schedule s = sc.schedule();
    ASSERT_EQ(s.items.size(), 1u);
    EXPECT_EQ(s.items[0].seq->n_cached_tokens, 4);  // the last block is rerun for the last token's logits
    EXPECT_EQ(s.items[0].n_tokens, 4);
}

TEST(PrefixCache, ConcurrentSequencesShareCachedBlocksCountedOnce) {
    KvBlockPool pool(6, 4);
    Scheduler sc({.max_tokens_per_step = 64, .max_seqs = 4, .max_blocks_per_seq = 8}, pool);
    const std::vector<int32_t> shared = iota_tokens(8, 100);
    sc.enqueue(make_seq(1, shared, 1));
    run_to_end(sc);
    // Each of these needs blocks_for(10 + 2) = 3 blocks: 9 without sharing, more than the pool's 6.
    for (uint64_t id = 2; id <= 4; ++id) {
        std::vector<int32_t> p = shared;
        p.push_back(static_cast<int32_t>(id));
        p.push_back(static_cast<int32_t>(id));
        sc.enqueue(make_seq(id, p, 2));
    }
    Schedule s = sc.schedule();
    EXPECT_EQ(sc.n_running(), 3);  // 2 shared + 1 own each = 5 blocks
    EXPECT_EQ(pool.n_used() + pool.n_reserved(), 5);
    EXPECT_TRUE(pool.check_invariants());
    sc.commit(s);
    for (const auto& it : s.items) it.seq->tokens.push_back(7);
    std::vector<Sequence*> all;
    for (const auto& q : sc.running()) all.push_back(q.get());
    for (Sequence* q : all) sc.remove(q);
    EXPECT_EQ(pool.n_used(), 0);
    EXPECT_EQ(pool.n_reserved(), 0);
    EXPECT_TRUE(pool.check_invariants());
}

TEST(ScoreGroupScheduling, ReservesTheGroupOnceAndLabelsCopyThePartialBlockOnWrite) {
    KvBlockPool pool(32, 4);
    Scheduler sc({.max_tokens_per_step = 32, .max_seqs = 8, .max_blocks_per_seq = 8}, pool);
    auto g = std::make_shared<ScoreGroup>();
    g->prompt = iota_tokens(10, 100);  // two full blocks and a partial one of 2 tokens
    g->labels = {{1}, {2, 3, 4, 5, 6}, {7, 8}};
    // 3 prompt blocks + (blocks_for(14) - 2) + (blocks_for(11) - 2); the one-token label needs none.
    EXPECT_EQ(sc.group_blocks_needed(*g), 6);
    sc.enqueue_group(g);
    EXPECT_EQ(g->n_label_seqs, 2);
    Schedule s = sc.schedule();
    ASSERT_EQ(s.items.size(), 1u);
    Sequence* prompt = s.items[0].seq;
    EXPECT_TRUE(prompt->is_group_prompt());
    EXPECT_EQ(s.items[0].n_tokens, 10);     // the whole prompt, once
    EXPECT_EQ(s.items[0].score_rows, 1);    // position 9 predicts every label's first token
    EXPECT_FALSE(s.items[0].wants_logits);
    EXPECT_TRUE(s.copies.empty());
    EXPECT_EQ(pool.n_used() + pool.n_reserved(), 6);  // the whole group, at once
    sc.commit(s);
    sc.complete_group_prompt(prompt);
    ASSERT_EQ(g->prompt_blocks.size(), 3u);
    const std::vector<int32_t> pb = g->prompt_blocks;
    EXPECT_EQ(g->reserved, 3);
    ASSERT_EQ(sc.n_waiting(), 2);
    EXPECT_TRUE(pool.check_invariants());

    s = sc.schedule();
    ASSERT_EQ(s.items.size(), 2u);
    // Both labels admitted: the group let go of the prompt's blocks, the labels hold them.
    EXPECT_TRUE(g->prompt_blocks.empty());
    EXPECT_EQ(pool.refcount(pb[0]), 2);
    EXPECT_EQ(pool.refcount(pb[1]), 2);
    Sequence* a = s.items[0].seq;
    Sequence* b = s.items[1].seq;
    EXPECT_EQ(a->label, 1);
    EXPECT_EQ(b->label, 2);
    for (const ScheduledSeq& it : s.items) {
        EXPECT_EQ(it.seq->n_computed, 10);  // after the whole prompt
        EXPECT_EQ(it.seq->block_table[0], pb[0]);
        EXPECT_EQ(it.seq->block_table[1], pb[1]);
    }
    // The first writer into the partial block gets a copy; the last one writes into the original.
    ASSERT_EQ(s.copies.size(), 1u);
    EXPECT_EQ(s.copies[0].src, pb[2]);
    EXPECT_EQ(a->block_table[2], s.copies[0].dst);
    EXPECT_EQ(b->block_table[2], pb[2]);
    EXPECT_EQ(pool.refcount(pb[2]), 1);
    EXPECT_EQ(g->outcome.block_copies, 1);
    EXPECT_EQ(s.items[0].n_tokens, 4);    // positions 10..13: the label but its last token
    EXPECT_EQ(s.items[0].score_rows, 4);  // each predicts the next label token
    EXPECT_EQ(s.items[1].n_tokens, 1);
    EXPECT_EQ(s.items[1].score_rows, 1);
    EXPECT_EQ(pool.n_used() + pool.n_reserved(), 6);  // nothing beyond the group's reservation
    StepBatch batch;
    build_step_batch(s, 4, 8, batch);
    EXPECT_EQ(batch.logit_rows, (std::vector<int32_t>{0, 1, 2, 3, 4}));
    EXPECT_EQ(batch.block_copies, s.copies);
    EXPECT_EQ(batch.slot_mapping[0], s.copies[0].dst * 4 + 2);  // position 10 goes into the copy
    EXPECT_EQ(batch.slot_mapping[4], pb[2] * 4 + 2);
    EXPECT_TRUE(pool.check_invariants());
    sc.commit(s);

    std::vector<Sequence*> labels;
    for (const auto& q : sc.running()) labels.push_back(q.get());
    for (Sequence* q : labels) sc.remove(q);
    sc.release_group(*g);
    EXPECT_EQ(pool.n_used(), 0);
    EXPECT_EQ(pool.n_reserved(), 0);  // the last writer's unused copy block went back
    EXPECT_EQ(pool.n_cached(), 2);  // the prompt's full blocks stay cached for the next label set
    EXPECT_TRUE(pool.check_invariants());
}

TEST(ScoreGroupScheduling, APromptOfWholeBlocksNeedsNoCopyAndOneTokenLabelsNoSequence) {
    KvBlockPool pool(32, 4);
    Scheduler sc({.max_tokens_per_step = 32, .max_seqs = 8, .max_blocks_per_seq = 8}, pool);
    auto g = std::make_shared<ScoreGroup>();
    g->prompt = iota_tokens(8, 100);
    g->labels = {{1}, {2}, {3, 4, 5}, {6, 7}};
    EXPECT_EQ(sc.group_blocks_needed(*g), 2 + 1 + 1);
    sc.enqueue_group(g);
    Schedule s = sc.schedule();
    ASSERT_EQ(s.items.size(), 1u);
    sc.commit(s);
    sc.complete_group_prompt(s.items[0].seq);
    s = sc.schedule();
    ASSERT_EQ(s.items.size(), 2u);  // the two-or-more-token labels only
    EXPECT_TRUE(s.copies.empty());  // their tokens start a block of their own
    EXPECT_EQ(s.items[0].n_tokens, 2);
    EXPECT_EQ(s.items[1].n_tokens, 1);
    EXPECT_NE(s.items[0].seq->block_table[2], s.items[1].seq->block_table[2]);
    sc.commit(s);
    std::vector<Sequence*> labels;
    for (const auto& q : sc.running()) labels.push_back(q.get());
    for (Sequence* q : labels) sc.remove(q);
    sc.release_group(*g);
    EXPECT_EQ(pool.n_used(), 0);
    EXPECT_EQ(pool.n_reserved(), 0);
    EXPECT_TRUE(pool.check_invariants());
}

TEST(ScoreGroupScheduling, ALabelAdmittedLaterStillCopiesWhileTheGroupHoldsTheBlock) {
    // max_seqs 1: one label sequence at a time; the group holds the partial block until the last label
    // is admitted, so each earlier label copies it and the last one writes in place.
    KvBlockPool pool(32, 4);
    Scheduler sc({.max_tokens_per_step = 32, .max_seqs = 1, .max_blocks_per_seq = 8}, pool);
    auto g = std::make_shared<ScoreGroup>();
    g->prompt = iota_tokens(6, 100);
    g->labels = {{1, 2}, {3, 4}, {5, 6}};
    sc.enqueue_group(g);
    Schedule s = sc.schedule();
    sc.commit(s);
    sc.complete_group_prompt(s.items[0].seq);
    const int32_t partial = g->prompt_blocks[1];
    int64_t copies = 0;
    for (int j = 0; j < 3; ++j) {
        s = sc.schedule();
        ASSERT_EQ(s.items.size(), 1u);
        copies += static_cast<int64_t>(s.copies.size());
        EXPECT_EQ(s.items[0].seq->block_table[1] == partial, j == 2) << j;
        sc.commit(s);
        sc.remove(s.items[0].seq);
        EXPECT_TRUE(pool.check_invariants());
    }
    EXPECT_EQ(copies, 2);
    sc.release_group(*g);
    EXPECT_EQ(pool.n_used(), 0);
    EXPECT_EQ(pool.n_reserved(), 0);
}

}  // namespace hr
