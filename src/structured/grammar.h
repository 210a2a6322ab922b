// The compiled form of a constraint: a table of grammar nodes (objects, arrays, strings, numbers,
// literal sets, unions) that the byte-level matcher interprets with a stack of frames.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "structured/regex.h"

namespace hr::structured {

constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();

// A set of byte strings (enum/const values serialized as compact JSON, object keys, choices).
struct LiteralTrie {
    struct Node {
        std::vector<std::pair<uint8_t, uint32_t>> kids;  // sorted by byte
        int32_t terminal = -1;                          // index of the literal ending here, or -1
        std::vector<uint32_t> below;                    // sorted literal indices in this subtree
    };
    std::vector<Node> nodes{Node{}};
    uint32_t child(uint32_t n, uint8_t b) const {
        for (auto& k : nodes[n].kids)
            if (k.first == b) return k.second;
        return kNone;
    }
    void insert(const std::string& s, uint32_t index);
};

struct StringSpec {
    uint32_t min_len = 0;
    uint32_t max_len = kNone;  // kNone: unbounded
    bool plain = true;         // no pattern: every character allowed
    ByteDfa dfa;               // pattern automaton (full match) when !plain
    // good[q * (lcap + 1) + min(l, lcap)]: from DFA state q with l characters so far, some completion
    // reaches an accepting state with a total length in [min_len, max_len]. lcap = max_len if bounded,
    // else min_len (every l >= min_len behaves alike).
    uint32_t lcap = 0;
    std::vector<uint8_t> good;
    bool is_good(int32_t q, uint32_t l) const {
        if (q < 0 || (max_len != kNone && l > max_len)) return false;
        if (plain) return true;
        return good[static_cast<size_t>(q) * (lcap + 1) + (l < lcap ? l : lcap)] != 0;
    }
};

struct NumSpec {
    bool integer = false;
    bool has_min = false, has_max = false;
    double min = 0, max = 0;       // number bounds (inclusive)
    int64_t imin = 0, imax = 0;    // integer bounds (inclusive), valid when has_min / has_max
};

// Digits caps keep every number parseable as a double / int64 (see docs).
constexpr int kMaxIntegerDigits = 18;
constexpr int kMaxNumberIntDigits = 15;
constexpr int kMaxNumberFracDigits = 15;
// Nesting: objects/arrays open at most this deep (the stack also holds the root frame).
constexpr uint32_t kMaxNesting = 32;
constexpr uint32_t kMaxFrames = kMaxNesting + 2;

enum class NodeKind : uint8_t { object, map, array, string, number, literal, union_ };

struct Prop {
    std::string name;
    uint32_t node = 0;
    bool required = false;
};

struct Node {
    NodeKind kind = NodeKind::literal;
    // object: declared properties in emission order; keys is a trie over their JSON-encoded keys
    std::vector<Prop> props;
    std::vector<uint8_t> optional_from;   // [props.size() + 1]: all props from i on are optional
    std::vector<uint32_t> last_candidate; // [props.size()]: last index a key may jump to from i
    LiteralTrie keys;
    // map: key_node (a string node) and child (value node); array: child (item node)
    uint32_t key_node = kNone;
    uint32_t child = kNone;
    uint32_t min_items = 0, max_items = kNone;
    uint32_t spec = kNone;  // string: index into strings; number: index into numbers
    LiteralTrie lits;       // literal: the allowed byte strings
    std::vector<uint32_t> alts;  // union
};

enum class ConstraintKind : uint8_t { json_schema, json_object, choice };

// Per-vocabulary cache of token masks for string-content states, filled lazily by the matcher.
// Key: (string spec, length index) and (DFA state, packed lexer state).
struct MaskKey {
    uint64_t spec_len = 0;
    uint64_t state = 0;
    bool operator==(const MaskKey&) const = default;
};
struct MaskKeyHash {
    size_t operator()(const MaskKey& k) const { return std::hash<uint64_t>()(k.spec_len * 0x9E3779B97F4A7C15ull ^ k.state); }
};
struct MaskCache {
    std::mutex mu;
    std::unordered_map<uint64_t, std::unordered_map<MaskKey, std::vector<uint32_t>, MaskKeyHash>> by_vocab;
};

}  // namespace hr::structured

namespace hr {

class CompiledConstraint {
public:
    structured::ConstraintKind kind = structured::ConstraintKind::json_schema;
    std::vector<structured::Node> nodes;
    std::vector<structured::StringSpec> strings;
    std::vector<structured::NumSpec> numbers;
    uint32_t root = 0;
    mutable structured::MaskCache cache;
};

}  // namespace hr
