// LabelScorer::pooled_hidden_states: one text run as a plain prompt (in the scorer's prompt blocks, as
// score() prefills its shared prompt), its layer outputs summed on the host through the forward pass's
// activation tap (model/blocks.h), which names each layer's residual-stream output "layer<l>.out".
#include <charconv>
#include <string_view>

#include "classify/label_scorer.h"

namespace hr {

Result<PooledStates> LabelScorer::pooled_hidden_states(std::span<const int32_t> tokens, int64_t layer_begin,
                                                       int64_t layer_end, bool memoize) {
    if (!memoize) return pool_uncached(tokens, layer_begin, layer_end);
    std::vector<int32_t> key = {static_cast<int32_t>(layer_begin), static_cast<int32_t>(layer_end), -1};
    key.insert(key.end(), tokens.begin(), tokens.end());
    for (const auto& [k, v] : pool_memo_) {
        if (k == key) return v;
    }
    HR_ASSIGN(PooledStates p, pool_uncached(tokens, layer_begin, layer_end));
    // note: as many entries as the largest example set, so a batch's examples stay memoised together.
    if (pool_memo_.size() >= kMaxPoolMemo) pool_memo_.pop_front();
    pool_memo_.emplace_back(std::move(key), p);
    return p;
}

Result<PooledStates> LabelScorer::pool_uncached(std::span<const int32_t> tokens, int64_t layer_begin,
                                                int64_t layer_end) {
    const int64_t T = static_cast<int64_t>(tokens.size());
    const int64_t n_layers = model_.cfg.n_layers;
    if (T == 0) return errorf("classify: the text to embed has no tokens");
    if (T > lim_.context)
        return errorf("classify: the text to embed is {} tokens, more than the context of {} tokens", T, lim_.context);
    if (layer_begin < 0 || layer_end > n_layers || layer_begin >= layer_end)
        return errorf("classify: layers [{}, {}) are not a range of the model's {} layers", layer_begin, layer_end,
                      n_layers);
    PooledStates out;
    out.first_layer = layer_begin;
    out.n_layers = layer_end - layer_begin;
    out.dim = model_.cfg.dim;
    const size_t D = static_cast<size_t>(out.dim);
    std::vector<double> sum(static_cast<size_t>(out.n_layers) * D, 0.0);
    // Position 0 is left out (embedding.h says why) unless it is the only one.
    const int64_t first_pos = T > 1 ? 1 : 0;
    int64_t done = 0;  // tokens run before the current step
    int64_t step_tokens = 0;
    std::vector<float> rows;
    Status tap_status = ok();
    const ActivationTap tap = [&](std::string_view name, const Tensor& t) {
        if (!name.starts_with("layer") || !name.ends_with(".out") || !tap_status.ok()) return;
        int64_t l = -1;
        const std::string_view num = name.substr(5, name.size() - 5 - 4);
        if (std::from_chars(num.data(), num.data() + num.size(), l).ec != std::errc{}) return;
        if (l < layer_begin || l >= layer_end) return;
        if (t.dtype != DType::f32 || t.cols() != out.dim || t.rows() != step_tokens) {
            tap_status = errorf("classify: layer {} output is not f32 [{}, {}]", l, step_tokens, out.dim);
            return;
        }
        be_.synchronize();
        rows.resize(static_cast<size_t>(t.numel()));
        be_.download(rows.data(), t.data, rows.size() * sizeof(float));
        double* acc = sum.data() + static_cast<size_t>(l - layer_begin) * D;
        for (int64_t r = std::max<int64_t>(first_pos - done, 0); r < step_tokens; ++r) {
            const float* row = rows.data() + static_cast<size_t>(r) * D;
            for (size_t d = 0; d < D; ++d) acc[d] += row[d];
        }
    };
    while (done < T) {
        step_tokens = std::min(T - done, step_.max_tokens);
        StepBatch b;
        b.block_tables.resize(static_cast<size_t>(step_.max_blocks_per_seq));
        for (int64_t i = 0; i < prompt_blocks_; ++i) b.block_tables[static_cast<size_t>(i)] = static_cast<int32_t>(i);
        for (int64_t i = 0; i < step_tokens; ++i) {
            const int32_t pos = static_cast<int32_t>(done + i);
            b.token_ids.push_back(tokens[static_cast<size_t>(pos)]);
            b.positions.push_back(pos);
            b.token_seq.push_back(0);
            b.slot_mapping.push_back(pos);
        }
        b.logit_rows.push_back(static_cast<int32_t>(step_tokens - 1));  // unused; forward needs one row
        HR_TRY(forward(be_, model_.cfg, model_.weights, step_, act_, kv_, b, &tap));
        HR_TRY(tap_status);
        done += step_tokens;
    }
    be_.synchronize();
    const double n = static_cast<double>(T - first_pos);
    out.values.resize(sum.size());
    for (size_t i = 0; i < sum.size(); ++i) out.values[i] = static_cast<float>(sum[i] / n);
    return out;
}

}  // namespace hr
