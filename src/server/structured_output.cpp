// Structured output: vocabulary, constraint cache and logits processor (see structured_output.h).
#include "server/structured_output.h"

#include <cmath>

namespace hr::server {

Result<TokenVocab> build_token_vocab(const Tokenizer& tok, int64_t n_ids, int32_t eos_id) {
    if (n_ids <= 0 || n_ids > tok.vocab_size()) {
        return errorf("token vocabulary size must be in [1, {}], found {}", tok.vocab_size(), n_ids);
    }
    std::vector<std::string> bytes(static_cast<size_t>(n_ids));
    std::vector<bool> special(static_cast<size_t>(n_ids));
    for (int64_t i = 0; i < n_ids; ++i) {
        const auto id = static_cast<int32_t>(i);
        special[static_cast<size_t>(i)] = tok.is_special(id);
        bytes[static_cast<size_t>(i)] = tok.token_bytes(id);
    }
    return TokenVocab::create(std::move(bytes), std::move(special), eos_id);
}

Result<std::shared_ptr<const CompiledConstraint>> ConstraintCache::get(const ApiRequest& r,
                                                                       const nlohmann::ordered_json* schema_ordered) {
    if (r.constraint == OutputConstraint::json_object) return compile_json_object();
    std::string key;
    if (r.constraint == OutputConstraint::json_schema) {
        key = "s" + (schema_ordered ? schema_ordered->dump() : r.schema.dump());
    } else if (r.constraint == OutputConstraint::choice) {
        key = "c" + nlohmann::json(r.choices).dump();
    } else {
        return make_error("the request has no output constraint");
    }
    {
        std::lock_guard lock(mu_);
        if (auto it = index_.find(key); it != index_.end()) {
            lru_.splice(lru_.begin(), lru_, it->second);
            return it->second->second;
        }
    }
    // Compiled outside the lock: two requests with a new schema may both compile it (harmless).
    Result<std::shared_ptr<const CompiledConstraint>> c =
        r.constraint == OutputConstraint::choice ? compile_choice(r.choices)
        : schema_ordered                         ? compile_json_schema(*schema_ordered)
                                                 : compile_json_schema(r.schema);
    if (!c.ok()) return c;
    std::lock_guard lock(mu_);
    if (index_.count(key)) return *c;
    lru_.emplace_front(key, *c);
    index_[key] = lru_.begin();
    while (lru_.size() > capacity_) {
        index_.erase(lru_.back().first);
        lru_.pop_back();
    }
    return *c;
}

size_t ConstraintCache::size() const {
    std::lock_guard lock(mu_);
    return lru_.size();
}

void ConstraintProcessor::apply(std::span<float> logits, std::span<const int32_t> generated) {
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
        const bool allowed = i < v.size() && ((mask_[i / 32] >> (i % 32)) & 1u);
        if (!allowed) logits[i] = -INFINITY;
    }
}

}  // namespace hr::server
