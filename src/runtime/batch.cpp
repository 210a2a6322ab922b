// Schedule -> StepBatch (see batch.h).
#include "runtime/batch.h"

#include <algorithm>
#include <cstdint>

#include "core/status.h"

namespace hr {

void build_step_batch(const Schedule& s, int block_size, int64_t max_blocks_per_seq, StepBatch& out) {
    out.token_ids.clear();
    out.positions.clear();
    out.token_seq.clear();
    out.slot_mapping.clear();
    out.block_tables.assign(s.items.size() * static_cast<size_t>(max_blocks_per_seq), 0);
    out.logit_rows.clear();
    out.block_copies.assign(s.copies.begin(), s.copies.end());
    for (size_t row = 0; row < s.items.size(); ++row) {
        const ScheduledSeq& it = s.items[row];
        const Sequence& q = *it.seq;
        HR_CHECK(static_cast<int64_t>(q.block_table.size()) <= max_blocks_per_seq);
        const int64_t rows_from = q.scores() ? std::max(q.n_computed, q.score_from) : INT64_MAX;
        int64_t n_rows = 0;
        for (int64_t p = q.n_computed; p < q.n_computed + it.n_tokens; ++p) {
            int32_t block = q.block_table[static_cast<size_t>(p / block_size)];
            out.token_ids.push_back(q.tokens[static_cast<size_t>(p)]);
            out.positions.push_back(static_cast<int32_t>(p));
            out.token_seq.push_back(static_cast<int32_t>(row));
            out.slot_mapping.push_back(block * block_size + static_cast<int32_t>(p % block_size));
            if (p >= rows_from && n_rows < it.score_rows) {
                out.logit_rows.push_back(static_cast<int32_t>(out.token_ids.size()) - 1);
                ++n_rows;
            }
        }
        HR_CHECK(n_rows == it.score_rows);
        for (size_t b = 0; b < q.block_table.size(); ++b) {
            out.block_tables[row * static_cast<size_t>(max_blocks_per_seq) + b] = q.block_table[b];
        }
        if (it.wants_logits) out.logit_rows.push_back(static_cast<int32_t>(out.token_ids.size()) - 1);
    }
    // A step of prefill chunks only (a prompt longer than the token budget, alone) samples nothing, but
    // forward() computes at least one logits row: ask for the last token's, which nobody reads.
    if (out.logit_rows.empty() && !out.token_ids.empty())
        out.logit_rows.push_back(static_cast<int32_t>(out.token_ids.size()) - 1);
}

}  // namespace hr
