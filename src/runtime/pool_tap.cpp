// PoolTap (see pool_tap.h): each tapped layer that a slot wants is downloaded once and its rows summed.
#include "runtime/pool_tap.h"

#include <algorithm>
#include <charconv>

namespace hr {

PoolTap::PoolTap(Backend& be, int64_t dim, const StepBatch& batch, int64_t tokens, std::span<const PoolSlot> pools,
                 std::vector<float>& rows)
    : be_(be), dim_(dim), batch_(batch), tokens_(tokens), pools_(pools), rows_(rows) {
    tap_ = [this](std::string_view name, const Tensor& t) { on(name, t); };
}

void PoolTap::on(std::string_view name, const Tensor& t) {
    if (!status_.ok() || !name.starts_with("layer") || !name.ends_with(".out")) return;
    int64_t l = -1;
    const std::string_view num = name.substr(5, name.size() - 5 - 4);
    if (std::from_chars(num.data(), num.data() + num.size(), l).ec != std::errc{}) return;
    if (std::none_of(pools_.begin(), pools_.end(),
                     [l](const PoolSlot& p) { return l >= p.layer_begin && l < p.layer_end; }))
        return;
    if (t.dtype != DType::f32 || t.cols() != dim_ || t.rows() != tokens_) {
        status_ = errorf("layer {} output is not f32 [{}, {}]", l, tokens_, dim_);
        return;
    }
    const size_t D = static_cast<size_t>(dim_);
    be_.synchronize();
    rows_.resize(static_cast<size_t>(t.numel()));
    be_.download(rows_.data(), t.data, rows_.size() * sizeof(float));
    for (const PoolSlot& p : pools_) {
        if (l < p.layer_begin || l >= p.layer_end) continue;
        double* acc = p.sums + static_cast<size_t>(l - p.layer_begin) * D;
        for (size_t r = 0; r < batch_.token_seq.size(); ++r) {
            if (batch_.token_seq[r] != p.seq_row || batch_.positions[r] < p.from_position) continue;
            const float* row = rows_.data() + r * D;
            for (size_t d = 0; d < D; ++d) acc[d] += row[d];
        }
    }
}

}  // namespace hr
