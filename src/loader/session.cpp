// Single-sequence runner: plans its step limits, allocates KV + activations once, runs chunks.
#include "loader/session.h"

#include <algorithm>

namespace hr {

Result<std::unique_ptr<Session>> Session::create(Backend& be, const LoadedModel& m, const SessionOptions& o) {
    HR_TRY(check_context(m.cfg, o.context));
    if (o.chunk <= 0) return errorf("session: chunk must be positive, found {}", o.chunk);
    if (o.block_size <= 0) return errorf("session: block_size must be positive, found {}", o.block_size);
    std::unique_ptr<Session> s(new Session(be, m));
    s->opts_ = o;
    s->lim_.max_tokens = std::min(o.chunk, o.context);
    s->lim_.max_seqs = o.all_logits ? s->lim_.max_tokens : 1;
    s->lim_.max_blocks_per_seq = (o.context + o.block_size - 1) / o.block_size;
    s->act_bytes_ = activation_bytes(m.cfg, s->lim_);
    s->kv_bytes_ = kv_cache_bytes(m.cfg, s->lim_.max_blocks_per_seq, o.block_size, o.kv_dtype);
    HR_ASSIGN(s->act_base_, be.allocate(s->act_bytes_, "activations"));
    auto kv = be.allocate(s->kv_bytes_, "kv cache");
    if (!kv.ok()) return kv.take_error();  // act_base_ is released by the destructor
    s->kv_base_ = kv.value();
    s->act_ = carve_activations(m.cfg, s->lim_, s->act_base_);
    s->kv_ = carve_kv_cache(m.cfg, s->lim_.max_blocks_per_seq, o.block_size, o.kv_dtype, s->kv_base_);
    return s;
}

Session::~Session() {
    if (act_base_) be_.release(act_base_);
    if (kv_base_) be_.release(kv_base_);
}

Status Session::append(std::span<const int32_t> tokens, std::vector<float>& last, std::vector<float>* all) {
    if (tokens.empty()) return errorf("session: no tokens to append");
    if (all && !opts_.all_logits) return errorf("session: all-position logits need SessionOptions::all_logits");
    if (len_ + static_cast<int64_t>(tokens.size()) > opts_.context)
        return errorf("sequence of {} tokens would exceed the context of {} tokens", len_ + tokens.size(), opts_.context);
    const int64_t vocab = model_.cfg.vocab_size;
    if (all) all->resize(tokens.size() * static_cast<size_t>(vocab));
    last.resize(static_cast<size_t>(vocab));

    StepBatch b;
    // One sequence; its block table is the identity (block i holds positions [16 i, 16 i + 16)).
    b.block_tables.resize(static_cast<size_t>(lim_.max_blocks_per_seq));
    for (int64_t i = 0; i < lim_.max_blocks_per_seq; ++i) b.block_tables[static_cast<size_t>(i)] = static_cast<int32_t>(i);
    size_t done = 0;
    while (done < tokens.size()) {
        const size_t n = std::min(tokens.size() - done, static_cast<size_t>(lim_.max_tokens));
        b.token_ids.assign(tokens.begin() + static_cast<std::ptrdiff_t>(done),
                           tokens.begin() + static_cast<std::ptrdiff_t>(done + n));
        b.positions.resize(n);
        b.token_seq.assign(n, 0);
        b.slot_mapping.resize(n);
        for (size_t i = 0; i < n; ++i) {
            const int32_t pos = static_cast<int32_t>(len_ + static_cast<int64_t>(i));
            b.positions[i] = pos;
            b.slot_mapping[i] = pos;  // identity block table: slot == position
        }
        b.logit_rows.clear();
        if (all) {
            for (size_t i = 0; i < n; ++i) b.logit_rows.push_back(static_cast<int32_t>(i));
        } else {
            b.logit_rows.push_back(static_cast<int32_t>(n - 1));
        }
        HR_TRY(forward(be_, model_.cfg, model_.weights, lim_, act_, kv_, b, tap_ ? &tap_ : nullptr));
        be_.synchronize();
        const size_t rows = b.logit_rows.size();
        if (all) {
            be_.download(all->data() + done * static_cast<size_t>(vocab), act_.logits.data,
                         rows * static_cast<size_t>(vocab) * sizeof(float));
        }
        be_.download(last.data(), act_.logits.as<float>() + (rows - 1) * static_cast<size_t>(vocab),
                     static_cast<size_t>(vocab) * sizeof(float));
        len_ += static_cast<int64_t>(n);
        done += n;
    }
    return ok();
}

}  // namespace hr
