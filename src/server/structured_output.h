// Structured output for the OpenAI routes: a request's response_format / choice as a ConstraintSpec
// (compiled and cached by structured/constraint_cache.h), and the engine's LogitsProcessor over
// structured/constrained_logits.h.
#pragma once

#include <memory>
#include <span>

#include "runtime/request.h"
#include "server/openai_types.h"
#include "structured/constrained_logits.h"
#include "structured/constraint_cache.h"

namespace hr::server {

// r.constraint must not be none. schema_ordered: the request's schema with the client's key order
// (nullptr: r.schema, properties in sorted order).
ConstraintSpec constraint_spec(const ApiRequest& r, const nlohmann::ordered_json* schema_ordered);

// The engine calls apply() before each sampling step; see ConstrainedLogits for what it masks.
class ConstraintProcessor final : public LogitsProcessor {
public:
    ConstraintProcessor(std::shared_ptr<const CompiledConstraint> c, std::shared_ptr<const TokenVocab> vocab)
        : mask_(std::move(c), std::move(vocab)) {}
    void apply(std::span<float> logits, std::span<const int32_t> generated) override { mask_.apply(logits, generated); }
    const ConstraintState& state() const { return mask_.state(); }
    bool failed() const { return mask_.failed(); }

private:
    ConstrainedLogits mask_;
};

}  // namespace hr::server
