// Constrained decoding: compile a JSON schema / any-JSON-object / choice list into a CompiledConstraint,
// then per sequence keep a ConstraintState that masks the tokens which cannot continue a valid output.
// Output form and the supported schema subset: docs/structured-output.md.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "structured/token_vocab.h"

namespace hr {

class CompiledConstraint;  // structured/grammar.h

// Caps on what a schema may ask for (exceeding one is an error, never a silent cut).
constexpr size_t kMaxSchemaNodes = 10000;     // compiled grammar nodes
constexpr size_t kMaxSchemaDepth = 32;        // nesting of subschemas
constexpr size_t kMaxLiteralBytes = 1 << 20;  // total bytes of enum/const/choice literals
constexpr uint32_t kMaxChoices = 10000;

// Rejects unsupported keywords (all of them, each with its JSON pointer), malformed keyword values,
// and schemas that no JSON value satisfies in the generated form.
// With nlohmann::json, properties are emitted in its (sorted) key order; pass an ordered_json (parse the
// request with nlohmann::ordered_json) to emit them in the order the schema lists them.
Result<std::shared_ptr<const CompiledConstraint>> compile_json_schema(const nlohmann::json& schema);
Result<std::shared_ptr<const CompiledConstraint>> compile_json_schema(const nlohmann::ordered_json& schema);
// Any JSON object (compact, nesting at most 32).
std::shared_ptr<const CompiledConstraint> compile_json_object();
// Exactly one of the given strings, raw (no JSON quoting). Needs >= 1 distinct, non-empty, UTF-8 strings.
Result<std::shared_ptr<const CompiledConstraint>> compile_choice(std::vector<std::string> choices);

namespace structured {
// One entry of the matcher's stack (meaning of the fields depends on the node kind).
struct Frame {
    uint32_t node = 0;  // grammar node, or kRootNode for the root slot
    uint8_t phase = 0;
    uint8_t flags = 0;
    uint16_t aux = 0;
    uint32_t a = 0;
    uint32_t b = 0;
    int64_t v = 0;
    int64_t w = 0;
    bool operator==(const Frame&) const = default;
};
// A set of alternative parses (anyOf), each a stack of frames, stored flat.
struct Threads {
    std::vector<Frame> frames;
    std::vector<uint32_t> ends;  // thread i = frames[ends[i-1] .. ends[i])
    size_t size() const { return ends.size(); }
    void clear() {
        frames.clear();
        ends.clear();
    }
};
}  // namespace structured

class ConstraintState {
public:
    explicit ConstraintState(std::shared_ptr<const CompiledConstraint> c);

    // bitmask: resized to vocab.mask_words(); bit i set when token i may come next. EOS is set exactly
    // when is_complete(); special tokens never. Safe to call concurrently on distinct states.
    void allowed_tokens(const TokenVocab& vocab, std::vector<uint32_t>& bitmask) const;
    // Accepts one token; a token the mask would not allow is an error and leaves the state unchanged.
    Status advance(int32_t token, const TokenVocab& vocab);
    // Accepts raw bytes (tests, forced prefixes); same rules as advance.
    Status advance_bytes(std::string_view bytes);
    // The output so far is a complete valid answer (EOS may follow).
    bool is_complete() const;
    // Some byte may still extend the output (with a vocabulary that covers_all_bytes, some token too).
    bool can_continue() const;
    // EOS was accepted: nothing more may follow.
    bool finished() const { return finished_; }
    // Bytes accepted so far.
    const std::string& text() const { return text_; }

private:
    std::shared_ptr<const CompiledConstraint> c_;
    structured::Threads threads_;
    bool finished_ = false;
    std::string text_;
};

// Checks `value` against a schema of the supported subset (pattern as a full match of the subset).
// For tests and for double-checking answers; returns the first violation with its JSON pointer.
Status validate_json(const nlohmann::json& value, const nlohmann::json& schema);

}  // namespace hr
