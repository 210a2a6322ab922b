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

void Scheduler::admit(Clock::time_point now) {
    while (!waiting_.empty() && n_running() < limits_.max_seqs) {
        Sequence& s = *waiting_.front();
        const int64_t need = blocks_needed(s.n_prompt, s.req.max_tokens);
        // Cached full blocks of the prompt, leaving at least its last token to run: its logits give
        // the first sampled token.
        const int64_t max_hit = (s.n_prompt - 1) / pool_.block_size();
        PrefixMatch hit = pool_.match(std::span<const int32_t>(s.tokens.data(), static_cast<size_t>(s.n_prompt)), max_hit);
        const int64_t n_hit = static_cast<int64_t>(hit.blocks.size());
        if (!pool_.try_acquire(hit, need - n_hit)) break;
        s.block_table = std::move(hit.blocks);
        s.n_computed = s.n_cached_tokens = n_hit * pool_.block_size();
        s.n_indexed_blocks = n_hit;
        s.prefix_link = hit.link;
        s.reserved_blocks = need - n_hit;
        s.admitted_at = now;
        running_.push_back(std::move(waiting_.front()));
        waiting_.pop_front();
    }
}

Schedule Scheduler::schedule() {
    admit(Clock::now());
    Schedule out;
    int64_t budget = limits_.max_tokens_per_step;
    // Decodes first: each costs one token and keeps inter-token latency flat under prefill load.
    for (auto& sp : running_) {
        if (budget == 0) break;
        Sequence& s = *sp;
        if (s.in_prefill() || s.n_pending() != 1) continue;
        out.items.push_back({&s, 1, true});
        --budget;
    }
    // Then prefill chunks, oldest first.
    for (auto& sp : running_) {
        if (budget == 0) break;
        Sequence& s = *sp;
        if (!s.in_prefill()) continue;
        int64_t n = std::min(budget, s.n_pending());
        out.items.push_back({&s, n, s.n_computed + n == static_cast<int64_t>(s.tokens.size())});
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
