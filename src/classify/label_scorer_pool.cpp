// LabelScorer::pooled_hidden_states: one text run through the engine as an embed request
// (Engine::submit_embed): a prompt-only sequence whose rows of each layer's residual-stream output
// ("layer<l>.out", model/blocks.h) the forward runner sums as the scheduler's steps run.
#include <algorithm>

#include "classify/label_scorer.h"

namespace hr {

Result<PooledStates> LabelScorer::pooled_hidden_states(std::span<const int32_t> tokens, int64_t layer_begin,
                                                       int64_t layer_end, bool memoize) {
    if (!memoize) return pool_uncached(tokens, layer_begin, layer_end);
    std::vector<int32_t> key = {static_cast<int32_t>(layer_begin), static_cast<int32_t>(layer_end), -1};
    key.insert(key.end(), tokens.begin(), tokens.end());
    {
        std::lock_guard lock(memo_->mu);
        for (const auto& [k, v] : memo_->pooled) {
            if (k == key) return v;
        }
    }
    // note: two threads missing the same key both compute it (same answer); the memo keeps one.
    HR_ASSIGN(PooledStates p, pool_uncached(tokens, layer_begin, layer_end));
    std::lock_guard lock(memo_->mu);
    auto& m = memo_->pooled;
    if (std::none_of(m.begin(), m.end(), [&](const auto& e) { return e.first == key; })) {
        // note: as many entries as the largest example set, so a batch's examples stay memoised together.
        if (m.size() >= kMaxPoolMemo) m.pop_front();
        m.emplace_back(std::move(key), p);
    }
    return p;
}

Result<PooledStates> LabelScorer::pool_uncached(std::span<const int32_t> tokens, int64_t layer_begin,
                                                int64_t layer_end) {
    const int64_t T = static_cast<int64_t>(tokens.size());
    const int64_t n_layers = engine_.pool_layers();
    const int64_t context = engine_.config().context;
    if (T == 0) return errorf("classify: the text to embed has no tokens");
    if (T > context)
        return errorf("classify: the text to embed is {} tokens, more than the context of {} tokens", T, context);
    if (layer_begin < 0 || layer_end > n_layers || layer_begin >= layer_end)
        return errorf("classify: layers [{}, {}) are not a range of the model's {} layers", layer_begin, layer_end,
                      n_layers);
    if (cancel_ && cancel_->load()) return errorf("classify: cancelled");
    // Position 0 is left out (embedding.h says why) unless it is the only one (the engine clamps).
    EmbedRequest req{.tokens = std::vector<int32_t>(tokens.begin(), tokens.end()),
                     .layer_begin = layer_begin,
                     .layer_end = layer_end,
                     .from_position = 1,
                     .cancel = cancel_};
    auto sub = engine_.submit_embed(std::move(req));
    if (submitted_) submitted_->store(true);
    if (auto* e = std::get_if<SubmitError>(&sub)) return errorf("classify: {}", e->message);
    EmbedOutcome o = std::get<std::future<EmbedOutcome>>(sub).get();
    if (!o.error.empty()) return errorf("classify: {}", o.error);
    PooledStates out;
    out.first_layer = layer_begin;
    out.n_layers = o.n_layers;
    out.dim = o.dim;
    out.values = std::move(o.values);
    return out;
}

}  // namespace hr
