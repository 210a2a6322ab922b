// Chunked appends of one sequence (see runner_session.h).
#include "runtime/runner_session.h"

#include <algorithm>

namespace hr {

Status RunnerSession::append(std::span<const int32_t> tokens, std::vector<float>& last_logits) {
    if (tokens.empty()) return errorf("append: no tokens");
    if (len_ + static_cast<int64_t>(tokens.size()) > context_)
        return errorf("append: {} tokens after {} exceed the context of {}", tokens.size(), len_, context_);
    const int64_t blocks = (context_ + block_size_ - 1) / block_size_;
    StepBatch b;
    b.block_tables.resize(static_cast<size_t>(blocks));
    for (int64_t i = 0; i < blocks; ++i) b.block_tables[static_cast<size_t>(i)] = static_cast<int32_t>(i);
    last_logits.resize(static_cast<size_t>(runner_.vocab_size()));
    for (size_t at = 0; at < tokens.size();) {
        const size_t n = std::min(tokens.size() - at, static_cast<size_t>(chunk_));
        b.token_ids.assign(tokens.begin() + static_cast<std::ptrdiff_t>(at),
                           tokens.begin() + static_cast<std::ptrdiff_t>(at + n));
        b.positions.resize(n);
        b.slot_mapping.resize(n);
        b.token_seq.assign(n, 0);
        for (size_t i = 0; i < n; ++i) {
            b.positions[i] = static_cast<int32_t>(len_ + static_cast<int64_t>(i));
            b.slot_mapping[i] = b.positions[i];  // blocks in order: slot = position
        }
        b.logit_rows = {static_cast<int32_t>(n - 1)};
        HR_TRY(runner_.run(b, last_logits));
        len_ += static_cast<int64_t>(n);
        at += n;
    }
    return ok();
}

}  // namespace hr
