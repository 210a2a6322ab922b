// ForwardRunner: forward() (or the replay of a recorded decode step) then one download of the
// requested logits rows.
#include "runtime/forward_runner.h"

#include <algorithm>
#include <charconv>
#include <numeric>
#include <string_view>

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
    const size_t D = static_cast<size_t>(cfg_.dim);
    Status tap_status = ok();
    const ActivationTap tap = [&](std::string_view name, const Tensor& t) {
        if (!tap_status.ok() || !name.starts_with("layer") || !name.ends_with(".out")) return;
        int64_t l = -1;
        const std::string_view num = name.substr(5, name.size() - 5 - 4);
        if (std::from_chars(num.data(), num.data() + num.size(), l).ec != std::errc{}) return;
        if (std::none_of(pools.begin(), pools.end(),
                         [l](const PoolSlot& p) { return l >= p.layer_begin && l < p.layer_end; }))
            return;
        if (t.dtype != DType::f32 || t.cols() != cfg_.dim || t.rows() != sh.tokens) {
            tap_status = errorf("layer {} output is not f32 [{}, {}]", l, sh.tokens, cfg_.dim);
            return;
        }
        be_.synchronize();
        pool_rows_.resize(static_cast<size_t>(t.numel()));
        be_.download(pool_rows_.data(), t.data, pool_rows_.size() * sizeof(float));
        for (const PoolSlot& p : pools) {
            if (l < p.layer_begin || l >= p.layer_end) continue;
            double* acc = p.sums + static_cast<size_t>(l - p.layer_begin) * D;
            for (size_t r = 0; r < batch.token_seq.size(); ++r) {
                if (batch.token_seq[r] != p.seq_row || batch.positions[r] < p.from_position) continue;
                const float* row = pool_rows_.data() + r * D;
                for (size_t d = 0; d < D; ++d) acc[d] += row[d];
            }
        }
    };
    forward_compute(be_, cfg_, weights_, act_, kv_, sh, &tap);
    HR_TRY(tap_status);
    if (rows > 0) be_.download(logits.data(), act_.logits.data, need * sizeof(float));
    be_.synchronize();
    return ok();
}

}  // namespace hr
