// Structured output for the OpenAI routes: compiles a request's response_format / choice into a
// constraint (cached by its text) and the LogitsProcessor that masks every token the constraint refuses.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "runtime/request.h"
#include "server/openai_types.h"
#include "structured/constraint.h"
#include "structured/token_vocab.h"
#include "tokenizer/tokenizer.h"

namespace hr::server {

// The vocabulary a constraint walks: ids [0, n_ids) of the tokenizer; eos_id ends a complete answer.
Result<TokenVocab> build_token_vocab(const Tokenizer& tok, int64_t n_ids, int32_t eos_id);

// Compiled constraints by their canonical text (least recently used dropped past `capacity`).
// note: compiling a schema can take milliseconds; clients usually repeat the same few schemas.
class ConstraintCache {
public:
    explicit ConstraintCache(size_t capacity = 64) : capacity_(capacity) {}
    // r.constraint must not be none. schema_ordered: the request's schema with the client's key order
    // (nullptr: use r.schema, properties in sorted order). Errors are the compiler's (they name every
    // unsupported keyword with its JSON pointer).
    Result<std::shared_ptr<const CompiledConstraint>> get(const ApiRequest& r, const nlohmann::ordered_json* schema_ordered);
    size_t size() const;

private:
    using Entry = std::pair<std::string, std::shared_ptr<const CompiledConstraint>>;
    size_t capacity_;
    mutable std::mutex mu_;
    std::list<Entry> lru_;  // most recent first
    std::unordered_map<std::string, std::list<Entry>::iterator> index_;
};

// Per request. Before each sampling step it accepts the tokens generated since the previous call, then
// sets every token the constraint does not allow to -inf (EOS only once the answer is complete). A
// token it cannot accept, or a state that can neither continue nor end, masks everything, which the
// engine turns into an explicit error for the request: an unvalidated answer is never returned.
class ConstraintProcessor final : public LogitsProcessor {
public:
    ConstraintProcessor(std::shared_ptr<const CompiledConstraint> c, std::shared_ptr<const TokenVocab> vocab)
        : state_(std::move(c)), vocab_(std::move(vocab)) {}
    void apply(std::span<float> logits, std::span<const int32_t> generated) override;
    const ConstraintState& state() const { return state_; }
    bool failed() const { return failed_; }

private:
    ConstraintState state_;
    std::shared_ptr<const TokenVocab> vocab_;
    size_t consumed_ = 0;  // generated tokens already accepted
    bool failed_ = false;
    std::vector<uint32_t> mask_;
};

}  // namespace hr::server
