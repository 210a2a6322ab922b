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

int64_t Scheduler::group_blocks_needed(const ScoreGroup& g) const {
    const int64_t bs = pool_.block_size();
    const int64_t shared = g.shared_tokens / bs;
    int64_t need = shared;
    for (const auto& l : g.labels) {
        need += KvBlockPool::blocks_for(static_cast<int64_t>(g.prompt.size() + l.size()), pool_.block_size()) - shared;
    }
    return need;
}

void Scheduler::enqueue_group(const std::shared_ptr<ScoreGroup>& g) {
    const int64_t P = static_cast<int64_t>(g->prompt.size());
    std::vector<std::unique_ptr<Sequence>> labels;
    for (size_t j = 0; j < g->labels.size(); ++j) {
        auto q = std::make_unique<Sequence>();
        q->id = g->id;
        q->group = g;
        q->label = static_cast<int64_t>(j);
        q->tokens = g->prompt;
        q->tokens.insert(q->tokens.end(), g->labels[j].begin(), g->labels[j].end());
        q->n_prompt = static_cast<int64_t>(q->tokens.size());
        q->score_from = P - 1;  // the last prompt token's logits predict the label's first token
        q->req.max_tokens = 0;
        labels.push_back(std::move(q));
    }
    if (g->shared_tokens == 0) {
        for (auto& q : labels) enqueue(std::move(q));
        return;
    }
    auto p = std::make_unique<Sequence>();
    p->id = g->id;
    p->group = g;
    p->tokens.assign(g->prompt.begin(), g->prompt.begin() + g->shared_tokens);
    p->n_prompt = g->shared_tokens;
    p->req.max_tokens = 0;
    g->labels_waiting = std::move(labels);
    enqueue(std::move(p));
}

void Scheduler::admit(Clock::time_point now) {
    const int64_t bs = pool_.block_size();
    while (!waiting_.empty() && n_running() < limits_.max_seqs) {
        Sequence& s = *waiting_.front();
        ScoreGroup* g = s.group.get();
        if (g && s.label >= 0 && g->shared_tokens > 0) {
            // A label sequence of a started group: its blocks come from the group's reservation.
            const int64_t own = KvBlockPool::blocks_for(s.n_prompt, bs) - g->shared_tokens / bs;
            HR_CHECK(own <= g->reserved);
            g->reserved -= own;
            pool_.share(g->shared_blocks);
            s.block_table = g->shared_blocks;
            s.n_computed = g->shared_tokens;
            s.n_indexed_blocks = static_cast<int64_t>(g->shared_blocks.size());
            s.prefix_link.valid = false;  // the label's blocks are its own: nothing to offer the cache
            s.reserved_blocks = own;
        } else {
            const int64_t need = s.is_group_prompt() ? group_blocks_needed(*g) : blocks_needed(s.n_prompt, s.req.max_tokens);
            // Cached full blocks of the prompt, leaving at least its last token to run when its logits
            // give the first sampled token, and every position whose logits score a token.
            int64_t max_hit = s.is_group_prompt() ? s.n_prompt / bs : (s.n_prompt - 1) / bs;
            if (s.scores()) max_hit = std::min(max_hit, s.score_from / bs);
            if (s.embed) max_hit = 0;  // every position's hidden states are needed: no prefix-cache hit
            PrefixMatch hit = pool_.match(std::span<const int32_t>(s.tokens.data(), static_cast<size_t>(s.n_prompt)), max_hit);
            const int64_t n_hit = static_cast<int64_t>(hit.blocks.size());
            if (!pool_.try_acquire(hit, need - n_hit)) break;
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
        // A group prompt found whole in the cache has nothing to run: its labels can start now.
        if (s.is_group_prompt() && s.n_computed == s.n_prompt) complete_group_prompt(&s);
    }
}

void Scheduler::complete_group_prompt(Sequence* seq) {
    HR_CHECK(seq->is_group_prompt() && seq->n_computed == seq->n_prompt);
    ScoreGroup& g = *seq->group;
    auto it = std::find_if(running_.begin(), running_.end(), [&](const auto& p) { return p.get() == seq; });
    HR_CHECK(it != running_.end());
    std::unique_ptr<Sequence> owned = std::move(*it);
    running_.erase(it);
    // The group keeps the sequence's references on the shared blocks, and the reservation it made
    // for the labels' own blocks.
    g.shared_blocks = std::move(owned->block_table);
    g.reserved = owned->reserved_blocks;
    owned->reserved_blocks = 0;
    for (auto l = g.labels_waiting.rbegin(); l != g.labels_waiting.rend(); ++l) waiting_.push_front(std::move(*l));
    g.labels_waiting.clear();
}

void Scheduler::release_group(ScoreGroup& g) {
    pool_.release(g.shared_blocks);
    g.shared_blocks.clear();
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
        int64_t need = KvBlockPool::blocks_for(s.n_computed + it.n_tokens, pool_.block_size());
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
