// Token scheduler with reserve-at-admission KV accounting (see scheduler.h).
#include "runtime/scheduler.h"

#include <algorithm>

#include "core/status.h"

namespace hr {

Scheduler::Scheduler(const SchedulerLimits& limits, KvBlockPool& pool) : limits_(limits), pool_(pool) {
    HR_CHECK(limits.max_tokens_per_step > 0 && limits.max_seqs > 0 && limits.max_blocks_per_seq > 0);
}

int64_t Scheduler::blocks_needed(int64_t n_prompt, int64_t max_tokens) const {
    // note: the last sampled token is never fed back, but reserving it too keeps the rule simple.
    return KvBlockPool::blocks_for(n_prompt + max_tokens, pool_.block_size());
}

bool Scheduler::fits_at_all(int64_t n_prompt, int64_t max_tokens) const {
    int64_t need = blocks_needed(n_prompt, max_tokens);
    return need <= pool_.n_total() && need <= limits_.max_blocks_per_seq;
}

void Scheduler::enqueue(std::unique_ptr<Sequence> seq) {
    HR_CHECK(seq && seq->n_prompt > 0);
    waiting_.push_back(std::move(seq));
}

namespace {

// Blocks a label sequence allocates: past the prompt's full blocks, its label tokens' (all but the last,
// which never runs) and, when the prompt ends in a partial block, a copy of that one (the label's first
// token writes into it). A one-token label has no sequence.
int64_t label_own_blocks(int64_t n_prompt, int64_t label_len, int block_size) {
    if (label_len < 2) return 0;
    return KvBlockPool::blocks_for(n_prompt + label_len - 1, block_size) - n_prompt / block_size;
}

}  // namespace

int64_t Scheduler::group_blocks_needed(const ScoreGroup& g) const {
    const int bs = pool_.block_size();
    const int64_t P = static_cast<int64_t>(g.prompt.size());
    int64_t need = KvBlockPool::blocks_for(P, bs);
    for (const auto& l : g.labels) need += label_own_blocks(P, static_cast<int64_t>(l.size()), bs);
    return need;
}

void Scheduler::enqueue_group(const std::shared_ptr<ScoreGroup>& g) {
    const int64_t P = static_cast<int64_t>(g->prompt.size());
    HR_CHECK(P > 0);
    g->labels_waiting.clear();
    for (size_t j = 0; j < g->labels.size(); ++j) {
        const std::vector<int32_t>& l = g->labels[j];
        if (l.size() < 2) continue;  // scored by the prompt's last row alone
        auto q = std::make_unique<Sequence>();
        q->id = g->id;
        q->group = g;
        q->label = static_cast<int64_t>(j);
        q->tokens = g->prompt;
        q->tokens.insert(q->tokens.end(), l.begin(), l.end() - 1);
        q->n_prompt = static_cast<int64_t>(q->tokens.size());
        q->score_from = P;  // the logits at P + i predict the label's token i + 1
        q->req.max_tokens = 0;
        g->labels_waiting.push_back(std::move(q));
    }
    g->n_label_seqs = static_cast<int64_t>(g->labels_waiting.size());
    g->n_labels_admitted = 0;
    auto p = std::make_unique<Sequence>();
    p->id = g->id;
    p->group = g;
    p->tokens = g->prompt;
    p->n_prompt = P;
    p->score_from = P - 1;  // the last prompt token's logits predict every label's first token
    p->req.max_tokens = 0;
    enqueue(std::move(p));
}

void Scheduler::admit(Clock::time_point now) {
    const int bs = pool_.block_size();
    while (!waiting_.empty() && n_running() < limits_.max_seqs) {
        Sequence& s = *waiting_.front();
        ScoreGroup* g = s.group.get();
        if (g && s.label >= 0) {
            // A label sequence of a started group: it holds the prompt's blocks by reference (its first
            // write into the partial last one copies it) and its own come from the group's reservation.
            const int64_t P = static_cast<int64_t>(g->prompt.size());
            const int64_t own = label_own_blocks(P, s.n_prompt - P + 1, bs);
            HR_CHECK(own <= g->reserved);
            g->reserved -= own;
            pool_.share(g->prompt_blocks);
            s.block_table = g->prompt_blocks;
            s.n_computed = P;
            s.n_indexed_blocks = static_cast<int64_t>(g->prompt_blocks.size());
            s.prefix_link.valid = false;  // the label's blocks are its own: nothing to offer the cache
            s.reserved_blocks = own;
            // Every label sequence holds the prompt's blocks now: the group lets go of them, so that the
            // last label to write into the partial block writes in place instead of copying it.
            if (++g->n_labels_admitted == g->n_label_seqs) {
                pool_.release(g->prompt_blocks);
                g->prompt_blocks.clear();
            }
        } else {
            const int64_t need = s.is_group_prompt() ? group_blocks_needed(*g) : blocks_needed(s.n_prompt, s.req.max_tokens);
            // Cached full blocks of the prompt, leaving at least its last token to run (its logits give
            // the first sampled token, or score every label's first), and every position whose logits
            // score a token.
            const int64_t whole = s.n_prompt / bs;
            int64_t max_hit = (s.n_prompt - 1) / bs;
            if (s.scores()) max_hit = std::min(max_hit, s.score_from / bs);
            if (s.embed) max_hit = 0;  // every position's hidden states are needed: no prefix-cache hit
            const std::span<const int32_t> prompt(s.tokens.data(), static_cast<size_t>(s.n_prompt));
            PrefixMatch hit = pool_.match(prompt, max_hit);
            const int64_t n_hit = static_cast<int64_t>(hit.blocks.size());
            if (!pool_.try_acquire(hit, need - n_hit)) break;
            // A prompt of whole blocks, all cached, still runs its last block (recomputed tokens).
            if (!s.embed && n_hit == max_hit && max_hit < whole &&
                pool_.holds_next(hit.link, prompt.subspan(static_cast<size_t>(n_hit * bs), static_cast<size_t>(bs))))
                admitted_.recomputed_tokens += bs;
            s.block_table = std::move(hit.blocks);
            s.n_computed = s.n_cached_tokens = n_hit * bs;
            s.n_indexed_blocks = n_hit;
            s.prefix_link = hit.link;
            if (s.embed) s.prefix_link.valid = false;  // and nothing offered to the cache
            s.reserved_blocks = need - n_hit;
        }
        s.admitted_at = now;
        if (!g) {
            ++admitted_.requests;
            admitted_.prompt_tokens += s.n_prompt;
            admitted_.cached_tokens += s.n_cached_tokens;
        } else {
            if (!g->admitted) {
                g->admitted = true;
                ++admitted_.requests;
                admitted_.prompt_tokens += static_cast<int64_t>(g->prompt.size());
            }
            admitted_.cached_tokens += s.n_cached_tokens;
            g->outcome.cached_tokens += s.n_cached_tokens;
        }
        running_.push_back(std::move(waiting_.front()));
        waiting_.pop_front();
    }
}

void Scheduler::complete_group_prompt(Sequence* seq) {
    HR_CHECK(seq->is_group_prompt() && seq->n_computed == seq->n_prompt);
    ScoreGroup& g = *seq->group;
    auto it = std::find_if(running_.begin(), running_.end(), [&](const auto& p) { return p.get() == seq; });
    HR_CHECK(it != running_.end());
    std::unique_ptr<Sequence> owned = std::move(*it);
    running_.erase(it);
    // The group keeps the sequence's references on the prompt's blocks (released at once when no label
    // needs them), and the reservation it made for the labels' own blocks.
    g.prompt_blocks = std::move(owned->block_table);
    g.reserved = owned->reserved_blocks;
    owned->reserved_blocks = 0;
    if (g.n_label_seqs == 0) {
        pool_.release(g.prompt_blocks);
        g.prompt_blocks.clear();
    }
    for (auto l = g.labels_waiting.rbegin(); l != g.labels_waiting.rend(); ++l) waiting_.push_front(std::move(*l));
    g.labels_waiting.clear();
}

void Scheduler::release_group(ScoreGroup& g) {
    pool_.release(g.prompt_blocks);
    g.prompt_blocks.clear();
    pool_.unreserve(g.reserved);
    g.reserved = 0;
    g.labels_waiting.clear();
}

Schedule Scheduler::schedule() {
    admitted_ = {};
    admit(Clock::now());
    Schedule out;
    int64_t budget = limits_.max_tokens_per_step;
    int64_t rows = limits_.max_seqs;  // logits rows the step may ask for (the planned logits buffer)
    // Decodes first: each costs one token and keeps inter-token latency flat under prefill load.
    for (auto& sp : running_) {
        if (budget == 0) break;
        Sequence& s = *sp;
        if (s.in_prefill() || s.n_pending() != 1) continue;
        out.items.push_back({&s, 1, true, 0});
        --budget;
        --rows;
    }
    // Then prefill chunks, oldest first.
    for (auto& sp : running_) {
        if (budget == 0) break;
        Sequence& s = *sp;
        if (!s.in_prefill()) continue;
        int64_t n = std::min(budget, s.n_pending());
        const int64_t end = static_cast<int64_t>(s.tokens.size());
        if (s.scores()) {
            // Cut the chunk so its scored rows fit what is left of the logits rows.
            if (s.score_rows(s.n_computed, n) > rows) n = std::max(s.n_computed, s.score_from) + rows - s.n_computed;
            if (n <= 0) continue;
            const int64_t r = s.score_rows(s.n_computed, n);
            out.items.push_back({&s, n, false, r});
            rows -= r;
        } else {
            const bool wants = !s.is_group_prompt() && !s.embed && s.n_computed + n == end;
            if (wants && rows == 0) continue;
            out.items.push_back({&s, n, wants, 0});
            rows -= wants ? 1 : 0;
        }
        budget -= n;
    }
    for (ScheduledSeq& it : out.items) {
        Sequence& s = *it.seq;
        const int64_t need = KvBlockPool::blocks_for(s.n_computed + it.n_tokens, pool_.block_size());
        // Copy-on-write: a block the chunk writes into that another sequence holds too (a score group's
        // partial prompt block, shared by its labels) or that the prefix cache indexes is replaced by a
        // private copy first. The copy runs before the step's tokens are written (StepBatch::block_copies);
        // the last holder of a shared block writes in place.
        const int64_t held = std::min<int64_t>(need, static_cast<int64_t>(s.block_table.size()));
        for (int64_t k = s.n_computed / pool_.block_size(); k < held; ++k) {
            const int32_t src = s.block_table[static_cast<size_t>(k)];
            if (pool_.writable(src)) continue;
            HR_CHECK_MSG(s.reserved_blocks > 0, "copy-on-write without a reserved block");
            const int32_t dst = pool_.allocate_reserved();
            --s.reserved_blocks;
            pool_.release(std::span<const int32_t>(&src, 1));
            s.block_table[static_cast<size_t>(k)] = dst;
            out.copies.push_back({src, dst});
            if (s.group) ++s.group->outcome.block_copies;
        }
        while (static_cast<int64_t>(s.block_table.size()) < need) {
            HR_CHECK_MSG(s.reserved_blocks > 0, "sequence outgrew its reservation");
            s.block_table.push_back(pool_.allocate_reserved());
            --s.reserved_blocks;
        }
        out.n_tokens += it.n_tokens;
    }
    return out;
}

void Scheduler::commit(const Schedule& s) {
    const int64_t bs = pool_.block_size();
    for (const ScheduledSeq& it : s.items) {
        Sequence& q = *it.seq;
        q.n_computed += it.n_tokens;
        HR_CHECK(q.n_computed <= static_cast<int64_t>(q.tokens.size()));
        // Blocks that just became full of computed tokens join the prefix cache (generated tokens
        // too: a follow-up turn's prompt starts with them).
        for (; q.prefix_link.valid && (q.n_indexed_blocks + 1) * bs <= q.n_computed; ++q.n_indexed_blocks) {
            const size_t k = static_cast<size_t>(q.n_indexed_blocks);
            std::span<const int32_t> blk(q.tokens.data() + k * static_cast<size_t>(bs), static_cast<size_t>(bs));
            q.prefix_link = pool_.commit_full_block(q.prefix_link, q.block_table[k], blk);
        }
    }
}

std::unique_ptr<Sequence> Scheduler::remove(Sequence* seq) {
    std::unique_ptr<Sequence> out;
    auto it = std::find_if(running_.begin(), running_.end(), [&](const auto& p) { return p.get() == seq; });
    if (it != running_.end()) {
        out = std::move(*it);
        running_.erase(it);
    } else {
        auto wt = std::find_if(waiting_.begin(), waiting_.end(), [&](const auto& p) { return p.get() == seq; });
        HR_CHECK_MSG(wt != waiting_.end(), "removing a sequence the scheduler does not hold");
        out = std::move(*wt);
        waiting_.erase(wt);
    }
    pool_.release(out->block_table);
    out->block_table.clear();
    pool_.unreserve(out->reserved_blocks);
    out->reserved_blocks = 0;
    return out;
}

}  // namespace hr
