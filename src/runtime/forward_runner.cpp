// ForwardRunner: forward() (or the replay of a recorded decode step) then one download of the
// requested logits rows.
#include "runtime/forward_runner.h"

#include <algorithm>
#include <numeric>

#include "runtime/pool_tap.h"

namespace hr {
namespace {

// A decode-shaped step: every token is its own sequence's only token and has its logits requested.
// Its ops depend on the token count alone, so one recording per count serves every such step.
bool decode_shaped(const StepShape& sh) {
    if (sh.logit_rows != sh.tokens) return false;
    for (size_t i = 1; i < sh.token_seq.size(); ++i)
        if (sh.token_seq[i] == sh.token_seq[i - 1]) return false;
    return true;
}

}  // namespace

Result<int64_t> ForwardRunner::record_decode_graphs(int64_t max_tokens) {
    if (!graphs_.empty()) return errorf("record_decode_graphs: graphs are recorded once");
    const int64_t n = std::min({max_tokens, be_.graph_max_tokens(), limits_.max_seqs, limits_.max_tokens});
    for (int64_t T = 1; T <= n; ++T) {
        std::vector<int32_t> seqs(static_cast<size_t>(T));
        std::iota(seqs.begin(), seqs.end(), 0);
        const StepShape sh{.tokens = T, .logit_rows = T, .n_seqs = T, .token_seq = seqs};
        HR_ASSIGN(const int id, be_.record([&] { forward_compute(be_, cfg_, weights_, act_, kv_, sh); }));
        graphs_.push_back(id);
    }
    return static_cast<int64_t>(graphs_.size());
}

Status ForwardRunner::run(const StepBatch& batch, std::span<float> logits) {
    const size_t rows = batch.logit_rows.size();
    const size_t need = rows * static_cast<size_t>(cfg_.vocab_size);
    if (logits.size() < need) {
        return errorf("logits buffer holds {} floats, step needs {} ({} rows x vocab {})", logits.size(), need,
                      rows, cfg_.vocab_size);
    }
    HR_ASSIGN(const StepShape sh, forward_upload(be_, cfg_, limits_, act_, kv_, batch));
    if (sh.tokens <= static_cast<int64_t>(graphs_.size()) && decode_shaped(sh))
        be_.replay(graphs_[static_cast<size_t>(sh.tokens - 1)]);
    else
        forward_compute(be_, cfg_, weights_, act_, kv_, sh);
    if (rows > 0) be_.download(logits.data(), act_.logits.data, need * sizeof(float));
    be_.synchronize();
    return ok();
}

Status ForwardRunner::run_pooled(const StepBatch& batch, std::span<float> logits, std::span<const PoolSlot> pools) {
    if (pools.empty()) return run(batch, logits);
    const size_t rows = batch.logit_rows.size();
    const size_t need = rows * static_cast<size_t>(cfg_.vocab_size);
    if (logits.size() < need) {
        return errorf("logits buffer holds {} floats, step needs {} ({} rows x vocab {})", logits.size(), need,
                      rows, cfg_.vocab_size);
    }
    HR_ASSIGN(const StepShape sh, forward_upload(be_, cfg_, limits_, act_, kv_, batch));
    const PoolTap pool(be_, cfg_.dim, batch, sh.tokens, pools, pool_rows_);
    forward_compute(be_, cfg_, weights_, act_, kv_, sh, &pool.tap());
    HR_TRY(pool.status());
    if (rows > 0) be_.download(logits.data(), act_.logits.data, need * sizeof(float));
    be_.synchronize();
    return ok();
}

}  // namespace hr
