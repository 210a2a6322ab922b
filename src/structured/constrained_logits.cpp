// ConstrainedLogits (see constrained_logits.h).
#include "structured/constrained_logits.h"

#include <cmath>

namespace hr {

void ConstrainedLogits::apply(std::span<float> logits, std::span<const int32_t> generated) {
    const TokenVocab& v = *vocab_;
    while (!failed_ && consumed_ < generated.size()) {
        const int32_t t = generated[consumed_++];
        if (t < 0 || static_cast<size_t>(t) >= v.size() || !state_.advance(t, v).ok()) failed_ = true;
    }
    if (!failed_ && !state_.is_complete() && !state_.can_continue()) failed_ = true;
    if (failed_) {
        for (float& x : logits) x = -INFINITY;
        return;
    }
    state_.allowed_tokens(v, mask_);
    for (size_t i = 0; i < logits.size(); ++i) {
        // note: ids past the vocabulary (a head padded beyond the tokenizer) are never allowed.
        const bool allowed = i < v.size() && ((mask_[i / 32] >> (i % 32)) & 1u);
        if (!allowed) logits[i] = -INFINITY;
    }
}

}  // namespace hr
