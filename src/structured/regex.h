// The `pattern` subset: a small regular-expression language compiled to a byte DFA over the decoded
// UTF-8 of a JSON string. Matching is a full match (^ and $ are implicit); see docs/structured-output.md.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace hr::structured {

// note: transitions are over bytes; a non-ASCII "any character" is a UTF-8 lead byte followed by the
// right number of continuation bytes (well-formedness beyond that is enforced by the string lexer).
struct ByteDfa {
    uint32_t n_states = 0;
    std::vector<int32_t> next;    // [n_states * 256]; -1: dead (no accepting state reachable)
    std::vector<uint8_t> accept;  // [n_states]
    int32_t step(int32_t q, uint8_t b) const { return next[static_cast<size_t>(q) * 256 + b]; }
    bool full_match(std::string_view s) const;
};

constexpr size_t kMaxPatternBytes = 1000;
constexpr uint32_t kMaxNfaStates = 20000;
constexpr uint32_t kMaxDfaStates = 2000;

// Compiles the subset: literals (UTF-8 allowed), '.', classes [a-z0-9_] and [^...] (ASCII members),
// escapes \d \w \s \n \t \r \f \v and escaped metacharacters, groups (...) and (?:...), alternation |,
// quantifiers * + ? {m} {m,} {m,n} (n <= 1000), ^ only at the start and $ only at the end. Anything
// else is an error naming the construct and its byte offset.
Result<ByteDfa> compile_pattern(std::string_view pattern);

}  // namespace hr::structured
