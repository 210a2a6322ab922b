// The byte-level matcher: a stack machine over the grammar nodes (one stack per anyOf alternative),
// token masks by walking the vocabulary trie over shared prefixes, and ConstraintState.
#include <algorithm>
#include <cstring>

#include "structured/constraint.h"
#include "structured/grammar.h"
#include "structured/json_string_rules.h"
#include "structured/number_rules.h"

namespace hr {

using namespace structured;

namespace {

constexpr uint32_t kRootNode = kNone - 1;
constexpr size_t kMaxThreads = 64;  // anyOf alternatives alive at once; extras are dropped (see docs)
// String-state masks kept per (constraint, vocabulary): 2048 x 4 KB (32k vocab) = 8 MB at most.
constexpr size_t kMaxCachedMasks = 2048;

enum : uint8_t { root_expect = 0, root_in_value = 1, root_done = 2 };
enum : uint8_t { obj_open = 0, obj_key, obj_colon, obj_value, obj_in_value, obj_after, obj_comma };
enum : uint8_t { map_open = 0, map_in_key, map_colon, map_value, map_in_value, map_after, map_comma };
enum : uint8_t { arr_open = 0, arr_in_item, arr_after, arr_comma };


// note: the frames are left uninitialized on purpose (only [0, n) is ever read); zeroing 34 frames
// on every byte fed dominated the cost of a trie walk.
struct Stack {
    union {
        Frame f[kMaxFrames];
    };
    uint32_t n = 0;
    Stack() {}
};

// The lexer's six bytes packed into Frame::w (so frames stay plain comparable values).
StringLexer get_lexer(const Frame& f) {
    uint64_t u = static_cast<uint64_t>(f.w);
    StringLexer lx;
    lx.phase = static_cast<uint8_t>(u);
    lx.pending = static_cast<uint8_t>(u >> 8);
    lx.lo = static_cast<uint8_t>(u >> 16);
    lx.hi = static_cast<uint8_t>(u >> 24);
    lx.udigits = static_cast<uint8_t>(u >> 32);
    lx.uval = static_cast<uint8_t>(u >> 40);
    return lx;
}
void put_lexer(Frame& f, const StringLexer& lx) {
    uint64_t u = uint64_t{lx.phase} | (uint64_t{lx.pending} << 8) | (uint64_t{lx.lo} << 16) |
                 (uint64_t{lx.hi} << 24) | (uint64_t{lx.udigits} << 32) | (uint64_t{lx.uval} << 40);
    f.w = static_cast<int64_t>(u);
}
// flags: bit 0 = negative, bit 1 = the number may end here (cached: the check parses the decimal text).
constexpr uint8_t kNumNeg = 1, kNumCanEnd = 2;
NumState get_num(const Frame& f) {
    NumState s;
    s.phase = f.phase;
    s.neg = (f.flags & kNumNeg) != 0;
    s.int_digits = static_cast<int>(f.a);
    s.frac_digits = static_cast<int>(f.b);
    s.int_value = f.v;
    s.frac_value = f.w;
    return s;
}
void put_num(Frame& f, const NumState& s, const NumSpec& spec) {
    f.phase = s.phase;
    f.flags = static_cast<uint8_t>((s.neg ? kNumNeg : 0) | (number_can_end(spec, s) ? kNumCanEnd : 0));
    f.a = static_cast<uint32_t>(s.int_digits);
    f.b = static_cast<uint32_t>(s.frac_digits);
    f.v = s.int_value;
    f.w = s.frac_value;
}

bool below_has(const LiteralTrie::Node& n, uint32_t lo, uint32_t hi) {
    auto it = std::lower_bound(n.below.begin(), n.below.end(), lo);
    return it != n.below.end() && *it <= hi;
}

// One byte of string content for a string of spec sp in lexer state lx, DFA state q, length l.
enum class StrByte { reject, consumed, closed };
StrByte string_byte(const StringSpec& sp, StringLexer& lx, uint32_t& q, uint32_t& l, uint8_t b) {
    StringLexer::Step s = lx.step(b);
    if (!s.ok) return StrByte::reject;
    if (s.close) {
        bool acc = sp.plain || sp.dfa.accept[q];
        return acc && l >= sp.min_len ? StrByte::closed : StrByte::reject;
    }
    if (s.feed >= 0) {
        int32_t nq = sp.plain ? 0 : sp.dfa.step(static_cast<int32_t>(q), static_cast<uint8_t>(s.feed));
        uint32_t nl = l + ((s.feed < 0x80 || s.feed >= 0xC0) ? 1u : 0u);
        if (!sp.is_good(nq, nl)) return StrByte::reject;
        q = static_cast<uint32_t>(nq);
        l = nl;
        return StrByte::consumed;
    }
    // Inside an escape: the decoded byte will lie in [range_lo, range_hi]; some choice must stay good.
    if (sp.plain) return sp.is_good(0, l + 1) ? StrByte::consumed : StrByte::reject;
    for (unsigned a = s.range_lo; a <= s.range_hi; ++a)
        if (sp.is_good(sp.dfa.step(static_cast<int32_t>(q), static_cast<uint8_t>(a)), l + 1)) return StrByte::consumed;
    return StrByte::reject;
}

// Mask of the tokens without '"' that can follow string state (lx, q, l): they never leave the string,
// so a walk of the vocabulary trie over the string's own small state suffices (no frame stacks).
void fill_string_mask(const StringSpec& sp, const VocabTrie& trie, uint32_t node, const StringLexer& lx, uint32_t q,
                      uint32_t l, std::vector<uint32_t>& mask) {
    const VocabTrie::Node& nd = trie.nodes[node];
    for (uint32_t e = 0; e < nd.n_children; ++e) {
        const VocabTrie::Edge& edge = trie.edges[nd.first_child + e];
        if (edge.byte == '"') continue;
        StringLexer nlx = lx;
        uint32_t nq = q, nl = l;
        if (string_byte(sp, nlx, nq, nl, edge.byte) != StrByte::consumed) continue;
        const VocabTrie::Node& ch = trie.nodes[edge.child];
        for (uint32_t t = 0; t < ch.n_tokens; ++t) {
            int32_t id = trie.tokens[ch.first_token + t];
            mask[static_cast<size_t>(id) >> 5] |= 1u << (static_cast<uint32_t>(id) & 31u);
        }
        fill_string_mask(sp, trie, edge.child, nlx, nq, nl, mask);
    }
}

class Machine {
public:
    explicit Machine(const CompiledConstraint& c) : c_(c) {}

    // Feeds one byte to thread `in` ([n] frames); appends the surviving threads to out.
    void feed(const Frame* in, uint32_t n, uint8_t b, Threads& out) const {
        Stack st;
        std::memcpy(st.f, in, n * sizeof(Frame));
        st.n = n;
        run(st, b, out);
    }

    bool thread_complete(const Frame* f, uint32_t n) const {
        if (n == 1) return f[0].phase == root_done;
        if (n != 2) return false;
        const Frame& top = f[1];
        const Node& nd = c_.nodes[top.node];
        if (nd.kind == NodeKind::number) return (top.flags & kNumCanEnd) != 0;
        if (nd.kind == NodeKind::literal) return nd.lits.nodes[top.a].terminal >= 0;
        return false;
    }

private:
    static void emit(const Stack& st, Threads& out) {
        out.frames.insert(out.frames.end(), st.f, st.f + st.n);
        out.ends.push_back(static_cast<uint32_t>(out.frames.size()));
    }

    // The value on top of st has ended: pop it and tell its parent.
    void pop_value(Stack& st) const {
        --st.n;
        Frame& p = st.f[st.n - 1];
        if (p.node == kRootNode) {
            p.phase = root_done;
            return;
        }
        const Node& nd = c_.nodes[p.node];
        switch (nd.kind) {
            case NodeKind::object:
                p.phase = obj_after;
                p.a += 1;  // next property index after the one just written
                break;
            case NodeKind::map: p.phase = p.phase == map_in_key ? map_colon : map_after; break;
            case NodeKind::array:
                p.phase = arr_after;
                p.b += 1;
                break;
            default: break;
        }
    }

    void push(Stack& st, const Frame& f) const { st.f[st.n++] = f; }

    // The first byte of a value of `node` (parent already set to its in-value phase).
    void start_value(Stack& st, uint32_t node, uint8_t b, Threads& out) const {
        const Node& nd = c_.nodes[node];
        Frame f;
        f.node = node;
        switch (nd.kind) {
            case NodeKind::union_:
                for (uint32_t alt : nd.alts) {
                    Stack copy;
                    std::memcpy(copy.f, st.f, st.n * sizeof(Frame));
                    copy.n = st.n;
                    start_value(copy, alt, b, out);
                }
                return;
            case NodeKind::object:
            case NodeKind::map:
                if (b != '{' || st.n > kMaxNesting) return;
                push(st, f);
                emit(st, out);
                return;
            case NodeKind::array:
                if (b != '[' || st.n > kMaxNesting) return;
                push(st, f);
                emit(st, out);
                return;
            case NodeKind::string:
                if (b != '"' || st.n >= kMaxFrames) return;
                put_lexer(f, StringLexer{});
                push(st, f);
                emit(st, out);
                return;
            case NodeKind::number: {
                NumState ns;
                if (st.n >= kMaxFrames || !number_step(c_.numbers[nd.spec], ns, b)) return;
                put_num(f, ns, c_.numbers[nd.spec]);
                push(st, f);
                emit(st, out);
                return;
            }
            case NodeKind::literal: {
                uint32_t ch = nd.lits.child(0, b);
                if (ch == kNone || st.n >= kMaxFrames) return;
                f.a = ch;
                push(st, f);
                emit(st, out);
                return;
            }
        }
    }

    // From an object at property index a (next allowed), can a key starting at trie node k continue?
    static bool key_reachable(const Node& nd, uint32_t a, uint32_t k) {
        if (k == kNone || a >= nd.props.size()) return false;
        return below_has(nd.keys.nodes[k], a, nd.last_candidate[a]);
    }

    void run(Stack& st, uint8_t b, Threads& out) const {
        while (true) {
            Frame& top = st.f[st.n - 1];
            if (top.node == kRootNode) {
                if (top.phase != root_expect) return;
                top.phase = root_in_value;
                start_value(st, c_.root, b, out);
                return;
            }
            const Node& nd = c_.nodes[top.node];
            switch (nd.kind) {
                case NodeKind::object: {
                    switch (top.phase) {
                        case obj_open:
                        case obj_after:
                            if (b == '}' && nd.optional_from[top.a]) {
                                pop_value(st);
                                emit(st, out);
                                return;
                            }
                            if (top.phase == obj_after) {
                                if (b == ',' && top.a < nd.props.size()) {
                                    top.phase = obj_comma;
                                    emit(st, out);
                                }
                                return;
                            }
                            [[fallthrough]];
                        case obj_comma: {
                            if (b != '"') return;
                            uint32_t k = nd.keys.child(0, b);
                            if (!key_reachable(nd, top.a, k)) return;
                            top.phase = obj_key;
                            top.b = k;
                            emit(st, out);
                            return;
                        }
                        case obj_key: {
                            uint32_t k = nd.keys.child(top.b, b);
                            if (!key_reachable(nd, top.a, k)) return;
                            top.b = k;
                            int32_t t = nd.keys.nodes[k].terminal;
                            if (t >= 0) {
                                top.phase = obj_colon;
                                top.a = static_cast<uint32_t>(t);
                            }
                            emit(st, out);
                            return;
                        }
                        case obj_colon:
                            if (b != ':') return;
                            top.phase = obj_value;
                            emit(st, out);
                            return;
                        case obj_value:
                            top.phase = obj_in_value;
                            start_value(st, nd.props[top.a].node, b, out);
                            return;
                        default: return;
                    }
                }
                case NodeKind::map:
                    switch (top.phase) {
                        case map_open:
                        case map_after:
                            if (b == '}') {
                                pop_value(st);
                                emit(st, out);
                                return;
                            }
                            if (top.phase == map_after) {
                                if (b == ',') {
                                    top.phase = map_comma;
                                    emit(st, out);
                                }
                                return;
                            }
                            [[fallthrough]];
                        case map_comma:
                            top.phase = map_in_key;
                            start_value(st, nd.key_node, b, out);
                            return;
                        case map_colon:
                            if (b != ':') return;
                            top.phase = map_value;
                            emit(st, out);
                            return;
                        case map_value:
                            top.phase = map_in_value;
                            start_value(st, nd.child, b, out);
                            return;
                        default: return;
                    }
                case NodeKind::array:
                    switch (top.phase) {
                        case arr_open:
                            if (b == ']' && nd.min_items == 0) {
                                pop_value(st);
                                emit(st, out);
                                return;
                            }
                            if (nd.max_items == 0) return;
                            top.phase = arr_in_item;
                            start_value(st, nd.child, b, out);
                            return;
                        case arr_after:
                            if (b == ']' && top.b >= nd.min_items) {
                                pop_value(st);
                                emit(st, out);
                                return;
                            }
                            if (b == ',' && top.b < nd.max_items) {
                                top.phase = arr_comma;
                                emit(st, out);
                            }
                            return;
                        case arr_comma:
                            top.phase = arr_in_item;
                            start_value(st, nd.child, b, out);
                            return;
                        default: return;
                    }
                case NodeKind::string: {
                    StringLexer lx = get_lexer(top);
                    switch (string_byte(c_.strings[nd.spec], lx, top.a, top.b, b)) {
                        case StrByte::reject: return;
                        case StrByte::closed:
                            pop_value(st);
                            emit(st, out);
                            return;
                        case StrByte::consumed:
                            put_lexer(top, lx);
                            emit(st, out);
                            return;
                    }
                    return;
                }
                case NodeKind::number: {
                    const NumSpec& sp = c_.numbers[nd.spec];
                    NumState ns = get_num(top);
                    if (number_step(sp, ns, b)) {
                        put_num(top, ns, sp);
                        emit(st, out);
                        return;
                    }
                    if (!(top.flags & kNumCanEnd)) return;
                    pop_value(st);
                    continue;  // the byte belongs to the parent
                }
                case NodeKind::literal: {
                    uint32_t ch = nd.lits.child(top.a, b);
                    if (ch != kNone) {
                        top.a = ch;
                        emit(st, out);
                        return;
                    }
                    if (nd.lits.nodes[top.a].terminal < 0) return;
                    pop_value(st);
                    continue;
                }
                case NodeKind::union_: return;  // never on the stack
            }
        }
    }

    const CompiledConstraint& c_;
};

void dedupe(Threads& t) {
    if (t.size() <= 1) return;
    Threads r;
    uint32_t prev = 0;
    for (size_t i = 0; i < t.size(); ++i) {
        uint32_t s = prev, e = t.ends[i];
        prev = e;
        bool dup = false;
        uint32_t rp = 0;
        for (size_t j = 0; j < r.size() && !dup; ++j) {
            uint32_t rs = rp, re = r.ends[j];
            rp = re;
            dup = (re - rs == e - s) && std::equal(t.frames.begin() + s, t.frames.begin() + e, r.frames.begin() + rs);
        }
        if (dup) continue;
        if (r.size() >= kMaxThreads) break;
        r.frames.insert(r.frames.end(), t.frames.begin() + s, t.frames.begin() + e);
        r.ends.push_back(static_cast<uint32_t>(r.frames.size()));
    }
    t = std::move(r);
}

void set_bit(std::vector<uint32_t>& mask, int32_t id) {
    mask[static_cast<size_t>(id) >> 5] |= 1u << (static_cast<uint32_t>(id) & 31u);
}

// DFS over a vocabulary trie, advancing all threads byte by byte; reuses per-depth scratch.
struct Walker {
    std::vector<Threads> levels;
    std::vector<uint32_t> scratch_mask;

    void walk(const Machine& m, const VocabTrie& trie, const Threads& start, std::vector<uint32_t>& mask) {
        if (levels.size() < 2) levels.resize(2);
        levels[0] = start;
        visit(m, trie, 0, 0, mask);
    }

    void visit(const Machine& m, const VocabTrie& trie, uint32_t node, size_t depth, std::vector<uint32_t>& mask) {
        if (levels.size() < depth + 2) levels.resize(depth + 2);
        const VocabTrie::Node& nd = trie.nodes[node];
        for (uint32_t e = 0; e < nd.n_children; ++e) {
            const VocabTrie::Edge& edge = trie.edges[nd.first_child + e];
            Threads& in = levels[depth];
            Threads& out = levels[depth + 1];
            out.clear();
            uint32_t s = 0;
            for (size_t i = 0; i < in.size(); ++i) {
                m.feed(in.frames.data() + s, in.ends[i] - s, edge.byte, out);
                s = in.ends[i];
            }
            if (out.size() == 0) continue;
            const VocabTrie::Node& ch = trie.nodes[edge.child];
            for (uint32_t t = 0; t < ch.n_tokens; ++t) set_bit(mask, trie.tokens[ch.first_token + t]);
            visit(m, trie, edge.child, depth + 1, mask);
        }
    }
};

Walker& thread_walker() {
    thread_local Walker w;
    return w;
}

}  // namespace

ConstraintState::ConstraintState(std::shared_ptr<const CompiledConstraint> c) : c_(std::move(c)) {
    HR_CHECK(c_ != nullptr);
    Frame root;
    root.node = kRootNode;
    root.phase = root_expect;
    threads_.frames.push_back(root);
    threads_.ends.push_back(1);
}

bool ConstraintState::is_complete() const {
    if (finished_) return false;
    Machine m(*c_);
    uint32_t s = 0;
    for (size_t i = 0; i < threads_.size(); ++i) {
        if (m.thread_complete(threads_.frames.data() + s, threads_.ends[i] - s)) return true;
        s = threads_.ends[i];
    }
    return false;
}

bool ConstraintState::can_continue() const {
    if (finished_) return false;
    Machine m(*c_);
    Threads out;
    uint32_t s = 0;
    for (size_t i = 0; i < threads_.size(); ++i) {
        for (int b = 0; b < 256; ++b) {
            m.feed(threads_.frames.data() + s, threads_.ends[i] - s, static_cast<uint8_t>(b), out);
            if (out.size() > 0) return true;
        }
        s = threads_.ends[i];
    }
    return false;
}

Status ConstraintState::advance_bytes(std::string_view bytes) {
    if (finished_) return errorf("constraint: expected no more output after EOS, found {} more bytes", bytes.size());
    Machine m(*c_);
    Threads cur = threads_, next;
    for (size_t k = 0; k < bytes.size(); ++k) {
        next.clear();
        uint32_t s = 0;
        for (size_t i = 0; i < cur.size(); ++i) {
            m.feed(cur.frames.data() + s, cur.ends[i] - s, static_cast<uint8_t>(bytes[k]), next);
            s = cur.ends[i];
        }
        if (next.size() == 0)
            return errorf("constraint: byte {} (0x{:02x}) of \"{}\" cannot continue a valid output after \"{}\"", k,
                          static_cast<uint8_t>(bytes[k]), std::string(bytes), text_);
        dedupe(next);
        std::swap(cur, next);
    }
    threads_ = std::move(cur);
    text_.append(bytes);
    return ok();
}

Status ConstraintState::advance(int32_t token, const TokenVocab& vocab) {
    if (token < 0 || static_cast<size_t>(token) >= vocab.size())
        return errorf("constraint: expected a token id in [0, {}), found {}", vocab.size(), token);
    if (token == vocab.eos_id()) {
        if (!is_complete())
            return errorf("constraint: EOS before the output is complete (output so far \"{}\")", text_);
        finished_ = true;
        return ok();
    }
    if (vocab.is_special(token))
        return errorf("constraint: special token {} is never allowed in constrained output", token);
    const std::string& bytes = vocab.token_bytes(token);
    if (bytes.empty()) return errorf("constraint: token {} has no bytes and is never allowed", token);
    return advance_bytes(bytes);
}

void ConstraintState::allowed_tokens(const TokenVocab& vocab, std::vector<uint32_t>& bitmask) const {
    bitmask.assign(vocab.mask_words(), 0u);
    if (finished_) return;
    Machine m(*c_);
    Walker& w = thread_walker();
    Threads one;
    bool complete = false;
    uint32_t s = 0;
    for (size_t i = 0; i < threads_.size(); ++i) {
        const Frame* f = threads_.frames.data() + s;
        uint32_t n = threads_.ends[i] - s;
        s = threads_.ends[i];
        one.clear();
        one.frames.assign(f, f + n);
        one.ends.push_back(n);
        if (m.thread_complete(f, n)) complete = true;
        const Frame& top = f[n - 1];
        bool in_string = top.node != kRootNode && c_->nodes[top.node].kind == NodeKind::string;
        if (!in_string) {
            w.walk(m, vocab.trie(), one, bitmask);
            continue;
        }
        // Inside a string: tokens without '"' never leave it, so their fate depends only on the string's
        // own state (spec, DFA state, length, lexer); take them from a mask computed once per such state
        // (for plain strings at a character boundary, precomputed in the vocabulary) and walk only the
        // tokens that contain a quote.
        uint32_t spec = c_->nodes[top.node].spec;
        const StringSpec& sp = c_->strings[spec];
        const std::vector<uint32_t>* inner = nullptr;
        std::unique_lock<std::mutex> lock;
        if (sp.plain && get_lexer(top).at_char_boundary()) {
            uint32_t remaining = sp.max_len == kNone ? vocab.max_plain_chars() : sp.max_len - top.b;
            inner = &vocab.plain_string_mask(remaining);
        } else {
            // Length index: exact for patterns (validity may depend on it); for plain strings only the
            // remaining room matters, and no token starts more than max_token_bytes characters.
            uint64_t lidx = 0;
            if (!sp.plain) lidx = sp.max_len != kNone ? top.b : std::min(top.b, sp.lcap);
            else if (sp.max_len != kNone) lidx = std::min(sp.max_len - top.b, vocab.max_token_bytes() + 1);
            MaskKey key{(static_cast<uint64_t>(spec) << 32) | lidx,
                        (static_cast<uint64_t>(top.a) << 48) | static_cast<uint64_t>(top.w)};
            lock = std::unique_lock<std::mutex>(c_->cache.mu);
            auto& per_vocab = c_->cache.by_vocab[vocab.uid()];
            auto it = per_vocab.find(key);
            if (it != per_vocab.end()) {
                inner = &it->second;
            } else if (per_vocab.size() < kMaxCachedMasks) {
                std::vector<uint32_t> mk(vocab.mask_words(), 0u);
                fill_string_mask(sp, vocab.trie(), 0, get_lexer(top), top.a, top.b, mk);
                inner = &per_vocab.emplace(key, std::move(mk)).first->second;
            } else {
                // Cache full (e.g. a pattern with a huge maxLength): compute without keeping it.
                lock.unlock();
                w.scratch_mask.assign(vocab.mask_words(), 0u);
                fill_string_mask(sp, vocab.trie(), 0, get_lexer(top), top.a, top.b, w.scratch_mask);
                inner = &w.scratch_mask;
            }
        }
        for (size_t k = 0; k < bitmask.size(); ++k) bitmask[k] |= (*inner)[k];
        if (lock.owns_lock()) lock.unlock();
        w.walk(m, vocab.quote_trie(), one, bitmask);
    }
    if (complete) set_bit(bitmask, vocab.eos_id());
}

}  // namespace hr
