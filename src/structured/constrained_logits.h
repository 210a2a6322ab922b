// The per-answer masking step of constrained decoding, shared by the server (behind the engine's
// LogitsProcessor) and `headroom generate --json-schema` (its own decode loop).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "structured/constraint.h"
#include "structured/token_vocab.h"

namespace hr {

// Before each sampling step it accepts the tokens generated since the previous call, then sets every
// token the constraint does not allow to -inf (EOS only once the answer is complete). A token it cannot
// accept, or a state that can neither continue nor end, masks everything, so the caller sees no
// allowed token and reports an error: an unvalidated answer is never returned.
class ConstrainedLogits {
public:
    ConstrainedLogits(std::shared_ptr<const CompiledConstraint> c, std::shared_ptr<const TokenVocab> vocab)
        : state_(std::move(c)), vocab_(std::move(vocab)) {}
    // generated: every token of the answer so far (a prefix of the previous call's plus new ones).
    void apply(std::span<float> logits, std::span<const int32_t> generated);
    const ConstraintState& state() const { return state_; }
    bool failed() const { return failed_; }

private:
    ConstraintState state_;
    std::shared_ptr<const TokenVocab> vocab_;
    size_t consumed_ = 0;  // generated tokens already accepted
    bool failed_ = false;
    std::vector<uint32_t> mask_;
};

}  // namespace hr
