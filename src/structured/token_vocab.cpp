// TokenVocab construction: validation of the inputs, byte tries, and the plain-string-content masks.
#include "structured/token_vocab.h"

#include <algorithm>
#include <atomic>
#include <numeric>

#include "structured/json_string_rules.h"

namespace hr {

namespace {

std::atomic<uint64_t> g_next_uid{1};

// Builds a trie over ids (sorted by their bytes) by recursive partitioning on the byte at `depth`.
void build_trie_level(const std::vector<std::string>& bytes, const std::vector<int32_t>& ids, size_t lo, size_t hi,
                      size_t depth, uint32_t node, VocabTrie& t) {
    // ids[lo, hi) share a prefix of length depth; those of exactly that length end at `node`.
    size_t i = lo;
    t.nodes[node].first_token = static_cast<uint32_t>(t.tokens.size());
    while (i < hi && bytes[static_cast<size_t>(ids[i])].size() == depth) {
        t.tokens.push_back(ids[i]);
        ++i;
    }
    t.nodes[node].n_tokens = static_cast<uint32_t>(t.tokens.size()) - t.nodes[node].first_token;
    // Group the rest by their next byte; reserve contiguous edges for this node first.
    std::vector<std::pair<size_t, size_t>> groups;
    size_t j = i;
    while (j < hi) {
        uint8_t b = static_cast<uint8_t>(bytes[static_cast<size_t>(ids[j])][depth]);
        size_t k = j;
        while (k < hi && static_cast<uint8_t>(bytes[static_cast<size_t>(ids[k])][depth]) == b) ++k;
        groups.emplace_back(j, k);
        j = k;
    }
    uint32_t first_edge = static_cast<uint32_t>(t.edges.size());
    t.nodes[node].first_child = first_edge;
    t.nodes[node].n_children = static_cast<uint32_t>(groups.size());
    for (auto& g : groups) {
        VocabTrie::Edge e;
        e.byte = static_cast<uint8_t>(bytes[static_cast<size_t>(ids[g.first])][depth]);
        e.child = static_cast<uint32_t>(t.nodes.size());
        t.nodes.emplace_back();
        t.edges.push_back(e);
    }
    for (size_t g = 0; g < groups.size(); ++g) {
        uint32_t child = t.edges[first_edge + g].child;
        build_trie_level(bytes, ids, groups[g].first, groups[g].second, depth + 1, child, t);
    }
}

VocabTrie build_trie(const std::vector<std::string>& bytes, std::vector<int32_t> ids) {
    std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
        const auto& x = bytes[static_cast<size_t>(a)];
        const auto& y = bytes[static_cast<size_t>(b)];
        return x != y ? x < y : a < b;
    });
    VocabTrie t;
    t.nodes.emplace_back();
    build_trie_level(bytes, ids, 0, ids.size(), 0, 0, t);
    return t;
}

}  // namespace

int json_plain_content_chars(const std::string& bytes) {
    structured::StringLexer lx;
    int chars = 0;
    for (char c : bytes) {
        auto s = lx.step(static_cast<uint8_t>(c));
        if (!s.ok || s.close) return -1;
        if (s.starts_char) ++chars;
    }
    return chars;
}

Result<TokenVocab> TokenVocab::create(std::vector<std::string> token_bytes, std::vector<bool> is_special,
                                      int32_t eos_id) {
    if (token_bytes.empty()) return errorf("TokenVocab: expected at least one token, found an empty vocabulary");
    if (token_bytes.size() > (1u << 30))
        return errorf("TokenVocab: expected at most 2^30 tokens, found {}", token_bytes.size());
    if (is_special.size() != token_bytes.size())
        return errorf("TokenVocab: expected one special flag per token ({}), found {}", token_bytes.size(),
                      is_special.size());
    if (eos_id < 0 || static_cast<size_t>(eos_id) >= token_bytes.size())
        return errorf("TokenVocab: expected an EOS id in [0, {}), found {}", token_bytes.size(), eos_id);
    TokenVocab v;
    v.bytes_ = std::move(token_bytes);
    v.special_ = std::move(is_special);
    v.special_[static_cast<size_t>(eos_id)] = true;  // EOS is handled separately from byte tokens
    v.eos_id_ = eos_id;
    v.uid_ = g_next_uid.fetch_add(1);

    std::vector<int32_t> usable, quoted;
    bool seen_byte[256] = {};
    for (size_t i = 0; i < v.bytes_.size(); ++i) {
        if (v.special_[i] || v.bytes_[i].empty()) continue;
        usable.push_back(static_cast<int32_t>(i));
        v.max_token_bytes_ = std::max(v.max_token_bytes_, static_cast<uint32_t>(v.bytes_[i].size()));
        if (v.bytes_[i].find('"') != std::string::npos) quoted.push_back(static_cast<int32_t>(i));
        if (v.bytes_[i].size() == 1) seen_byte[static_cast<uint8_t>(v.bytes_[i][0])] = true;
    }
    if (usable.empty()) return errorf("TokenVocab: expected some non-special token with bytes, found none");
    v.covers_all_bytes_ = std::all_of(std::begin(seen_byte), std::end(seen_byte), [](bool b) { return b; });
    v.all_ = build_trie(v.bytes_, usable);
    v.quote_ = build_trie(v.bytes_, quoted);

    std::vector<int> chars(v.bytes_.size(), -1);
    int max_chars = 0;
    for (int32_t id : usable) {
        chars[static_cast<size_t>(id)] = json_plain_content_chars(v.bytes_[static_cast<size_t>(id)]);
        max_chars = std::max(max_chars, chars[static_cast<size_t>(id)]);
    }
    v.plain_masks_.assign(static_cast<size_t>(max_chars) + 1, std::vector<uint32_t>(v.mask_words(), 0u));
    for (int32_t id : usable) {
        int c = chars[static_cast<size_t>(id)];
        if (c < 0) continue;
        for (int r = c; r <= max_chars; ++r)
            v.plain_masks_[static_cast<size_t>(r)][static_cast<size_t>(id) / 32] |= 1u << (static_cast<uint32_t>(id) % 32);
    }
    return v;
}

const std::vector<uint32_t>& TokenVocab::plain_string_mask(uint32_t remaining_chars) const {
    return plain_masks_[std::min<size_t>(remaining_chars, plain_masks_.size() - 1)];
}

}  // namespace hr
