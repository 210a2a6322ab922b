// Label scoring with a shared prompt prefix over the paged KV cache.
//
// note: the prompt's full blocks are computed once and shared by every label sequence through its
// block table. The prompt's last partial block (1..block_size tokens; at least the final prompt token,
// whose logits predict the first label token) is re-run inside each label sequence, in blocks of its
// own, so no sequence writes into a block another one reads.
#include "classify/label_scorer.h"

#include <algorithm>
#include <cmath>

namespace hr {

std::vector<double> normalise_logprobs(std::span<const double> lp) {
    std::vector<double> p(lp.size());
    if (lp.empty()) return p;
    const double mx = *std::max_element(lp.begin(), lp.end());
    double sum = 0.0;
    for (size_t i = 0; i < lp.size(); ++i) sum += (p[i] = std::exp(lp[i] - mx));
    for (double& v : p) v /= sum;
    return p;
}

namespace {

// The scorer's step limits and KV blocks for its limits: one context of prompt blocks plus, per label,
// the re-run tail of the prompt's last block and the label's tokens.
struct ScorerSizing {
    StepLimits step;
    int64_t prompt_blocks = 0, label_blocks = 0, n_blocks = 0;
};

ScorerSizing sizing(const ScorerLimits& l) {
    ScorerSizing z;
    const int64_t bs = l.block_size;
    z.prompt_blocks = (l.context + bs - 1) / bs;
    z.label_blocks = (bs + l.max_label_tokens + bs - 1) / bs;  // re-run tail (<= bs) + label
    const int64_t per_label_tokens = bs + l.max_label_tokens;
    z.step.max_tokens = std::max(l.chunk, l.max_labels * per_label_tokens);
    z.step.max_seqs = std::max(l.max_labels, l.max_labels * l.max_label_tokens);  // logits rows
    z.step.max_blocks_per_seq = z.prompt_blocks + z.label_blocks;
    z.n_blocks = z.prompt_blocks + l.max_labels * z.label_blocks;
    return z;
}

}  // namespace

uint64_t scorer_bytes(const ModelConfig& cfg, const ScorerLimits& l) {
    const ScorerSizing z = sizing(l);
    return activation_bytes(cfg, z.step) + kv_cache_bytes(cfg, z.n_blocks, l.block_size, l.kv_dtype);
}

Result<std::unique_ptr<LabelScorer>> LabelScorer::create(Backend& be, const LoadedModel& m, const ScorerLimits& l) {
    HR_TRY(check_context(m.cfg, l.context));
    if (l.max_labels <= 0 || l.max_label_tokens <= 0 || l.chunk <= 0 || l.block_size <= 0)
        return errorf("label scorer: limits must be positive (labels {}, label tokens {}, chunk {}, block {})",
                      l.max_labels, l.max_label_tokens, l.chunk, l.block_size);
    std::unique_ptr<LabelScorer> s(new LabelScorer(be, m));
    s->lim_ = l;
    const ScorerSizing z = sizing(l);
    s->prompt_blocks_ = z.prompt_blocks;
    s->label_blocks_ = z.label_blocks;
    s->step_ = z.step;
    s->act_bytes_ = activation_bytes(m.cfg, s->step_);
    s->kv_bytes_ = kv_cache_bytes(m.cfg, z.n_blocks, l.block_size, l.kv_dtype);
    HR_ASSIGN(s->act_base_, be.allocate(s->act_bytes_, "classify activations"));
    auto kv = be.allocate(s->kv_bytes_, "classify kv cache");
    if (!kv.ok()) return kv.take_error();
    s->kv_base_ = kv.value();
    s->act_ = carve_activations(m.cfg, s->step_, s->act_base_);
    s->kv_ = carve_kv_cache(m.cfg, z.n_blocks, l.block_size, l.kv_dtype, s->kv_base_);
    return s;
}

LabelScorer::~LabelScorer() {
    if (act_base_) be_.release(act_base_);
    if (kv_base_) be_.release(kv_base_);
}

Result<LabelScores> LabelScorer::score(std::span<const int32_t> prompt,
                                       const std::vector<std::vector<int32_t>>& labels, bool memoize) {
    if (!memoize) return score_uncached(prompt, labels);
    std::vector<int32_t> key(prompt.begin(), prompt.end());
    key.push_back(-1);
    for (const auto& l : labels) {
        key.insert(key.end(), l.begin(), l.end());
        key.push_back(-1);
    }
    for (const auto& [k, v] : memo_) {
        if (k == key) {
            LabelScores hit = v;
            hit.forward_tokens = 0;
            return hit;
        }
    }
    HR_ASSIGN(LabelScores s, score_uncached(prompt, labels));
    if (memo_.size() >= kMemoEntries) memo_.pop_front();
    memo_.emplace_back(std::move(key), s);
    return s;
}

Result<LabelScores> LabelScorer::score_uncached(std::span<const int32_t> prompt,
                                                const std::vector<std::vector<int32_t>>& labels) {
    const int64_t P = static_cast<int64_t>(prompt.size());
    const int64_t n_labels = static_cast<int64_t>(labels.size());
    const int64_t bs = lim_.block_size;
    if (P == 0) return errorf("classify: the prompt is empty");
    if (n_labels == 0 || n_labels > lim_.max_labels)
        return errorf("classify: {} labels, expected 1 to {}", n_labels, lim_.max_labels);
    int64_t longest = 0;
    for (const auto& l : labels) {
        if (l.empty()) return errorf("classify: a label has no tokens");
        longest = std::max<int64_t>(longest, static_cast<int64_t>(l.size()));
    }
    if (longest > lim_.max_label_tokens)
        return errorf("classify: a label has {} tokens, more than the {} planned", longest, lim_.max_label_tokens);
    if (P + longest > lim_.context)
        return errorf("classify: prompt ({} tokens) + longest label ({} tokens) exceed the context of {} tokens", P,
                      longest, lim_.context);

    LabelScores out;
    const int64_t shared = ((P - 1) / bs) * bs;  // tokens in full prompt blocks, computed once
    const int64_t max_blocks = step_.max_blocks_per_seq;
    StepBatch b;

    // Phase 1: the shared full blocks of the prompt, as sequence 0 on blocks [0, prompt_blocks).
    for (int64_t done = 0; done < shared;) {
        const int64_t n = std::min(shared - done, step_.max_tokens);
        b = StepBatch{};
        b.block_tables.resize(static_cast<size_t>(max_blocks));
        for (int64_t i = 0; i < prompt_blocks_; ++i) b.block_tables[static_cast<size_t>(i)] = static_cast<int32_t>(i);
        for (int64_t i = 0; i < n; ++i) {
            const int32_t pos = static_cast<int32_t>(done + i);
            b.token_ids.push_back(prompt[static_cast<size_t>(pos)]);
            b.positions.push_back(pos);
            b.token_seq.push_back(0);
            b.slot_mapping.push_back(pos);
        }
        b.logit_rows.push_back(static_cast<int32_t>(n - 1));  // unused; forward needs one row
        HR_TRY(forward(be_, model_.cfg, model_.weights, step_, act_, kv_, b));
        done += n;
        out.forward_tokens += n;
    }

    // Phase 2: one sequence per label: the prompt tail (re-run) then the label tokens, all in one step.
    b = StepBatch{};
    b.block_tables.assign(static_cast<size_t>(n_labels * max_blocks), 0);
    std::vector<std::pair<int32_t, int32_t>> targets;  // (logit row index in batch order, target token)
    for (int64_t j = 0; j < n_labels; ++j) {
        int32_t* table = b.block_tables.data() + j * max_blocks;
        const int64_t shared_blocks = shared / bs;
        for (int64_t i = 0; i < shared_blocks; ++i) table[i] = static_cast<int32_t>(i);
        const int64_t own0 = prompt_blocks_ + j * label_blocks_;
        for (int64_t i = 0; i < label_blocks_; ++i) table[shared_blocks + i] = static_cast<int32_t>(own0 + i);
        const auto& lab = labels[static_cast<size_t>(j)];
        const int64_t total = (P - shared) + static_cast<int64_t>(lab.size());
        for (int64_t i = 0; i < total; ++i) {
            const int64_t pos = shared + i;
            const int32_t tok = pos < P ? prompt[static_cast<size_t>(pos)] : lab[static_cast<size_t>(pos - P)];
            const int64_t row = static_cast<int64_t>(b.token_ids.size());
            b.token_ids.push_back(tok);
            b.positions.push_back(static_cast<int32_t>(pos));
            b.token_seq.push_back(static_cast<int32_t>(j));
            b.slot_mapping.push_back(table[pos / bs] * static_cast<int32_t>(bs) + static_cast<int32_t>(pos % bs));
            // The row at position p predicts token p + 1: rows from P - 1 to the last-but-one label token.
            if (pos >= P - 1 && pos + 1 < P + static_cast<int64_t>(lab.size())) {
                b.logit_rows.push_back(static_cast<int32_t>(row));
                targets.emplace_back(static_cast<int32_t>(j), lab[static_cast<size_t>(pos + 1 - P)]);
            }
        }
    }
    HR_TRY(forward(be_, model_.cfg, model_.weights, step_, act_, kv_, b));
    be_.synchronize();
    out.forward_tokens += static_cast<int64_t>(b.token_ids.size());

    const int64_t vocab = model_.cfg.vocab_size;
    std::vector<float> logits(b.logit_rows.size() * static_cast<size_t>(vocab));
    be_.download(logits.data(), act_.logits.data, logits.size() * sizeof(float));
    out.logprob.assign(static_cast<size_t>(n_labels), 0.0);
    for (size_t r = 0; r < targets.size(); ++r) {
        const float* row = logits.data() + r * static_cast<size_t>(vocab);
        double mx = -INFINITY;
        for (int64_t v = 0; v < vocab; ++v) {
            if (!std::isfinite(row[v])) return errorf("classify: non-finite logit at vocabulary id {}", v);
            mx = std::max(mx, static_cast<double>(row[v]));
        }
        double sum = 0.0;
        for (int64_t v = 0; v < vocab; ++v) sum += std::exp(static_cast<double>(row[v]) - mx);
        out.logprob[static_cast<size_t>(targets[r].first)] += static_cast<double>(row[targets[r].second]) - mx - std::log(sum);
    }
    out.prob = normalise_logprobs(out.logprob);
    out.best = static_cast<size_t>(std::max_element(out.prob.begin(), out.prob.end()) - out.prob.begin());
    return out;
}

}  // namespace hr
