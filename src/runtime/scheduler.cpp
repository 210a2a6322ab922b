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
        int64_t need = blocks_needed(s.n_prompt, s.req.max_tokens);
        if (!pool_.try_reserve(need)) break;
        s.reserved_blocks = need;
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
    for (const ScheduledSeq& it : s.items) {
        it.seq->n_computed += it.n_tokens;
        HR_CHECK(it.seq->n_computed <= static_cast<int64_t>(it.seq->tokens.size()));
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
