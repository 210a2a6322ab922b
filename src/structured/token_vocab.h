// TokenVocab: the bytes each token contributes to a text, arranged as byte tries so that a constrained
// decoder walks its automaton over shared token prefixes once. Built once per tokenizer, shared read-only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace hr {

// A byte trie over a subset of the vocabulary. Children of a node are contiguous and sorted by byte.
struct VocabTrie {
    struct Node {
        uint32_t first_child = 0;  // index into edges
        uint32_t n_children = 0;
        uint32_t first_token = 0;  // index into tokens: the ids whose bytes end exactly here
        uint32_t n_tokens = 0;
    };
    struct Edge {
        uint8_t byte = 0;
        uint32_t child = 0;
    };
    std::vector<Node> nodes;  // nodes[0] is the root (empty prefix)
    std::vector<Edge> edges;
    std::vector<int32_t> tokens;
};

class TokenVocab {
public:
    // token_bytes[id]: the bytes token id contributes in the middle of a text (SentencePiece "▁" already
    // mapped to a space, byte-fallback tokens to their byte). is_special[id]: never allowed by a
    // constraint (control tokens); eos_id is allowed exactly when the constrained output is complete.
    // Tokens with no bytes are never allowed (they would let a constraint loop without progress).
    static Result<TokenVocab> create(std::vector<std::string> token_bytes, std::vector<bool> is_special,
                                     int32_t eos_id);

    size_t size() const { return bytes_.size(); }
    size_t mask_words() const { return (bytes_.size() + 31) / 32; }
    int32_t eos_id() const { return eos_id_; }
    const std::string& token_bytes(int32_t id) const { return bytes_[static_cast<size_t>(id)]; }
    bool is_special(int32_t id) const { return special_[static_cast<size_t>(id)]; }
    // Process-unique identity, used to key per-vocabulary caches (never reused).
    uint64_t uid() const { return uid_; }
    // True when every single byte 0x00-0xFF is some allowed token: then a constraint that can still
    // accept a byte can always be continued by a token (SentencePiece byte fallback, byte-level BPE).
    bool covers_all_bytes() const { return covers_all_bytes_; }

    // All allowed (non-special, non-empty) tokens.
    const VocabTrie& trie() const { return all_; }
    // Only the tokens that contain a '"' byte: the ones that can end a JSON string.
    const VocabTrie& quote_trie() const { return quote_; }
    // Tokens that are valid JSON string content from a fresh character boundary and contain no '"':
    // plain_string_mask(r) holds those that start at most r characters (ceil(size/32) words).
    const std::vector<uint32_t>& plain_string_mask(uint32_t remaining_chars) const;
    uint32_t max_plain_chars() const { return static_cast<uint32_t>(plain_masks_.size()) - 1; }
    // Longest token in bytes (a token starts at most this many characters).
    uint32_t max_token_bytes() const { return max_token_bytes_; }

private:
    std::vector<std::string> bytes_;
    std::vector<bool> special_;
    int32_t eos_id_ = -1;
    uint64_t uid_ = 0;
    bool covers_all_bytes_ = false;
    uint32_t max_token_bytes_ = 0;
    VocabTrie all_;
    VocabTrie quote_;
    std::vector<std::vector<uint32_t>> plain_masks_;  // [max_plain_chars + 1][mask_words]
};

// Characters a token starts when read as JSON string content from a character boundary, or -1 when
// the bytes are not a valid prefix of string content or contain '"'. note: shared with the matcher's
// string rules (see json_string_rules.h); escapes \uXXXX are limited to ASCII code points.
int json_plain_content_chars(const std::string& bytes);

}  // namespace hr
