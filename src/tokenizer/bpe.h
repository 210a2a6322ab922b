// The BPE model of tokenizer.json: vocabulary, ranked merges, byte fallback and unknown-token rules,
// applied to one pre-token ("word") at a time exactly as Hugging Face tokenizers' BPE does.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace hr::tok {

struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

class BpeModel {
public:
    // Parses the "model" object of tokenizer.json (type must be "BPE"; merges as "a b" strings or
    // [a, b] pairs; an empty merge table is an error because it silently degrades to one token per char).
    static Result<BpeModel> from_json(const nlohmann::json& model);

    // Appends the ids of one word (valid UTF-8) to out.
    void tokenize(std::string_view word, std::vector<int32_t>& out) const;

    std::optional<int32_t> token_to_id(std::string_view token) const;
    // Token string of id; nullptr if the vocabulary has no such id.
    const std::string* id_to_token(int32_t id) const;
    // One past the largest id in the vocabulary.
    int64_t id_limit() const { return static_cast<int64_t>(id_to_token_.size()); }
    // Number of vocabulary entries (what Hugging Face calls the model's vocab size).
    int64_t entry_count() const { return static_cast<int64_t>(vocab_.size()); }
    bool byte_fallback() const { return byte_fallback_; }

private:
    struct Symbol {
        int32_t id;
        int32_t prev;
        int32_t next;
        uint32_t len;  // bytes of the word covered; 0 = merged away
    };
    struct MergeInfo {
        int32_t rank;
        int32_t new_id;
    };
    static uint64_t pair_key(int32_t a, int32_t b) {
        return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
    }
    int32_t char_id(std::string_view ch, uint32_t cp, bool is_first, bool is_last) const;
    void merge_all(std::vector<Symbol>& symbols) const;

    std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> vocab_;
    std::vector<std::string> id_to_token_;
    std::vector<uint8_t> has_id_;
    std::unordered_map<uint64_t, MergeInfo> merges_;
    // note: ids of the one-character tokens, so the common path does no string hashing; -1 = absent.
    std::vector<int32_t> bmp_char_ids_;  // [0x10000]
    std::unordered_map<uint32_t, int32_t> astral_char_ids_;
    std::array<int32_t, 256> byte_ids_{};  // <0xXX> tokens, -1 = absent
    std::optional<int32_t> unk_id_;
    std::string continuing_subword_prefix_;
    std::string end_of_word_suffix_;
    bool byte_fallback_ = false;
    bool fuse_unk_ = false;
    bool ignore_merges_ = false;
};

}  // namespace hr::tok
