// Pattern subset: recursive-descent parser -> AST -> Thompson NFA over byte ranges -> subset-construction DFA.
#include "structured/regex.h"

#include <algorithm>
#include <bitset>
#include <map>
#include <memory>

namespace hr::structured {

namespace {

constexpr int kMaxRegexDepth = 64;
constexpr int kMaxRepeat = 1000;

struct Ast {
    enum Kind { lit_seq, cls, cat, alt, rep } kind = lit_seq;
    std::string bytes;              // lit_seq: exact bytes (one character, possibly multi-byte)
    std::bitset<128> ascii;         // cls: ASCII members
    bool non_ascii = false;         // cls: also any non-ASCII code point
    std::vector<std::unique_ptr<Ast>> kids;
    int min = 0, max = 0;           // rep: max < 0 means unbounded
};
using AstPtr = std::unique_ptr<Ast>;

class Parser {
public:
    explicit Parser(std::string_view p) : p_(p) {}

    Result<AstPtr> parse() {
        if (pos_ < p_.size() && p_[pos_] == '^') ++pos_;
        HR_ASSIGN(AstPtr a, parse_alt(0));
        if (pos_ < p_.size()) return err("unexpected ')'");
        return a;
    }

private:
    Error err(std::string_view what) const {
        return errorf("pattern: {} at byte {} of \"{}\" (supported: literals, ., [..], [^..], \\d \\w \\s, "
                      "groups, |, * + ? {{m,n}}, ^ at start, $ at end)",
                      what, pos_, std::string(p_));
    }
    bool at_end_anchor() const { return pos_ + 1 == p_.size() && p_[pos_] == '$'; }

    Result<AstPtr> parse_alt(int depth) {
        if (depth > kMaxRegexDepth) return err("nesting deeper than 64");
        auto node = std::make_unique<Ast>();
        node->kind = Ast::alt;
        while (true) {
            HR_ASSIGN(AstPtr c, parse_cat(depth));
            node->kids.push_back(std::move(c));
            if (pos_ < p_.size() && p_[pos_] == '|') {
                ++pos_;
                continue;
            }
            break;
        }
        return node;
    }

    Result<AstPtr> parse_cat(int depth) {
        auto node = std::make_unique<Ast>();
        node->kind = Ast::cat;
        while (pos_ < p_.size() && p_[pos_] != '|' && p_[pos_] != ')') {
            if (at_end_anchor()) {
                ++pos_;
                break;
            }
            HR_ASSIGN(AstPtr a, parse_atom(depth));
            HR_ASSIGN(AstPtr r, parse_quant(std::move(a)));
            node->kids.push_back(std::move(r));
        }
        return node;
    }

    Result<int> parse_int() {
        size_t start = pos_;
        long v = 0;
        while (pos_ < p_.size() && p_[pos_] >= '0' && p_[pos_] <= '9') {
            v = v * 10 + (p_[pos_] - '0');
            if (v > kMaxRepeat) return err("repetition count above 1000");
            ++pos_;
        }
        if (pos_ == start) return err("expected a number in {m,n}");
        return static_cast<int>(v);
    }

    Result<AstPtr> parse_quant(AstPtr a) {
        while (pos_ < p_.size()) {
            char c = p_[pos_];
            int mn = 0, mx = 0;
            if (c == '*') {
                mn = 0, mx = -1, ++pos_;
            } else if (c == '+') {
                mn = 1, mx = -1, ++pos_;
            } else if (c == '?') {
                mn = 0, mx = 1, ++pos_;
            } else if (c == '{') {
                ++pos_;
                HR_ASSIGN(mn, parse_int());
                mx = mn;
                if (pos_ < p_.size() && p_[pos_] == ',') {
                    ++pos_;
                    if (pos_ < p_.size() && p_[pos_] == '}') {
                        mx = -1;
                    } else {
                        HR_ASSIGN(mx, parse_int());
                    }
                }
                if (pos_ >= p_.size() || p_[pos_] != '}') return err("expected '}' closing {m,n}");
                ++pos_;
                if (mx >= 0 && mx < mn) return err("{m,n} with n < m");
            } else {
                break;
            }
            if (pos_ < p_.size() && (p_[pos_] == '?' || p_[pos_] == '+'))
                return err("lazy or possessive quantifier");
            auto r = std::make_unique<Ast>();
            r->kind = Ast::rep;
            r->min = mn;
            r->max = mx;
            r->kids.push_back(std::move(a));
            a = std::move(r);
        }
        return a;
    }

    static void add_range(Ast& c, int lo, int hi) {
        for (int i = lo; i <= hi; ++i) c.ascii.set(static_cast<size_t>(i));
    }
    static bool add_class_escape(Ast& c, char e) {
        switch (e) {
            case 'd': add_range(c, '0', '9'); return true;
            case 'w':
                add_range(c, '0', '9'), add_range(c, 'a', 'z'), add_range(c, 'A', 'Z');
                c.ascii.set('_');
                return true;
            case 's':
                for (char ch : {' ', '\t', '\n', '\r', '\f', '\v'}) c.ascii.set(static_cast<size_t>(ch));
                return true;
            default: return false;
        }
    }
    // Single-character escapes; returns the byte or -1.
    static int simple_escape(char e) {
        switch (e) {
            case 'n': return '\n';
            case 't': return '\t';
            case 'r': return '\r';
            case 'f': return '\f';
            case 'v': return '\v';
            default: break;
        }
        static const std::string_view meta = ".\\/-[](){}*+?|^$ \"'#:,=!<>&%@~`;_";
        if (meta.find(e) != std::string_view::npos) return static_cast<unsigned char>(e);
        return -1;
    }

    Result<AstPtr> parse_atom(int depth) {
        char c = p_[pos_];
        auto node = std::make_unique<Ast>();
        if (c == '(') {
            ++pos_;
            if (pos_ + 1 < p_.size() && p_[pos_] == '?') {
                if (p_[pos_ + 1] != ':') return err("group flags or lookaround (?...)");
                pos_ += 2;
            }
            HR_ASSIGN(AstPtr inner, parse_alt(depth + 1));
            if (pos_ >= p_.size() || p_[pos_] != ')') return err("missing ')'");
            ++pos_;
            return inner;
        }
        if (c == '*' || c == '+' || c == '?' || c == '{') return err("quantifier with nothing to repeat");
        if (c == '^') return err("'^' not at the start");
        if (c == '$') return err("'$' not at the end");
        if (c == '.') {
            ++pos_;
            node->kind = Ast::cls;
            node->ascii.set();
            node->ascii.reset('\n');  // like Python's re: '.' does not match a newline
            node->non_ascii = true;
            return node;
        }
        if (c == '[') return parse_class();
        if (c == '\\') {
            if (pos_ + 1 >= p_.size()) return err("trailing '\\'");
            char e = p_[pos_ + 1];
            node->kind = Ast::cls;
            if (add_class_escape(*node, e)) {
                pos_ += 2;
                return node;
            }
            int b = simple_escape(e);
            if (b < 0) return err(fmt::format("escape \\{}", e));
            pos_ += 2;
            node->kind = Ast::lit_seq;
            node->bytes = std::string(1, static_cast<char>(b));
            return node;
        }
        // A literal character: one ASCII byte or one well-formed UTF-8 sequence.
        unsigned char u = static_cast<unsigned char>(c);
        size_t len = u < 0x80 ? 1 : (u >= 0xC2 && u <= 0xDF) ? 2 : (u >= 0xE0 && u <= 0xEF) ? 3 : (u >= 0xF0 && u <= 0xF4) ? 4 : 0;
        if (len == 0 || pos_ + len > p_.size()) return err("invalid UTF-8");
        for (size_t i = 1; i < len; ++i) {
            unsigned char cc = static_cast<unsigned char>(p_[pos_ + i]);
            if (cc < 0x80 || cc > 0xBF) return err("invalid UTF-8");
        }
        if (u < 0x20) return err("control character (write it escaped)");
        node->kind = Ast::lit_seq;
        node->bytes = std::string(p_.substr(pos_, len));
        pos_ += len;
        return node;
    }

    Result<AstPtr> parse_class() {
        ++pos_;  // '['
        auto node = std::make_unique<Ast>();
        node->kind = Ast::cls;
        bool negate = false;
        if (pos_ < p_.size() && p_[pos_] == '^') {
            negate = true;
            ++pos_;
        }
        bool first = true;
        while (true) {
            if (pos_ >= p_.size()) return err("missing ']'");
            char c = p_[pos_];
            if (c == ']' && !first) {
                ++pos_;
                break;
            }
            first = false;
            int lo;
            if (c == '\\') {
                if (pos_ + 1 >= p_.size()) return err("trailing '\\'");
                char e = p_[pos_ + 1];
                if (add_class_escape(*node, e)) {
                    pos_ += 2;
                    continue;
                }
                lo = simple_escape(e);
                if (lo < 0) return err(fmt::format("escape \\{} in a class", e));
                pos_ += 2;
            } else {
                if (static_cast<unsigned char>(c) >= 0x80) return err("non-ASCII character in a class");
                if (c == '[') return err("nested '[' in a class (write \\[)");
                lo = static_cast<unsigned char>(c);
                ++pos_;
            }
            int hi = lo;
            if (pos_ + 1 < p_.size() && p_[pos_] == '-' && p_[pos_ + 1] != ']') {
                char h = p_[pos_ + 1];
                if (h == '\\') {
                    if (pos_ + 2 >= p_.size()) return err("trailing '\\'");
                    hi = simple_escape(p_[pos_ + 2]);
                    if (hi < 0) return err("class range ending in a class escape");
                    pos_ += 3;
                } else {
                    if (static_cast<unsigned char>(h) >= 0x80) return err("non-ASCII character in a class");
                    hi = static_cast<unsigned char>(h);
                    pos_ += 2;
                }
                if (hi < lo) return err("class range out of order");
            }
            add_range(*node, lo, hi);
        }
        if (negate) {
            node->ascii.flip();
            node->non_ascii = true;
        }
        return node;
    }

    std::string_view p_;
    size_t pos_ = 0;
};

// Thompson NFA over byte ranges.
struct Nfa {
    struct Edge {
        uint8_t lo, hi;
        uint32_t to;
    };
    std::vector<std::vector<Edge>> edges;
    std::vector<std::vector<uint32_t>> eps;
    bool overflow = false;

    uint32_t add() {
        if (edges.size() >= kMaxNfaStates) overflow = true;
        edges.emplace_back();
        eps.emplace_back();
        return static_cast<uint32_t>(edges.size() - 1);
    }
    // Emits `a` between states s and t (returns false on overflow).
    void emit(const Ast& a, uint32_t s, uint32_t t) {
        if (overflow) return;
        switch (a.kind) {
            case Ast::lit_seq: {
                uint32_t cur = s;
                for (size_t i = 0; i < a.bytes.size(); ++i) {
                    uint32_t nx = i + 1 == a.bytes.size() ? t : add();
                    uint8_t b = static_cast<uint8_t>(a.bytes[i]);
                    edges[cur].push_back({b, b, nx});
                    cur = nx;
                }
                if (a.bytes.empty()) eps[s].push_back(t);
                break;
            }
            case Ast::cls: {
                for (int i = 0; i < 128; ++i) {
                    if (!a.ascii.test(static_cast<size_t>(i))) continue;
                    int j = i;
                    while (j + 1 < 128 && a.ascii.test(static_cast<size_t>(j + 1))) ++j;
                    edges[s].push_back({static_cast<uint8_t>(i), static_cast<uint8_t>(j), t});
                    i = j;
                }
                if (a.non_ascii) {
                    // lead byte, then 1..3 continuation bytes
                    uint32_t c1 = add(), c2 = add(), c3 = add();
                    edges[s].push_back({0xC2, 0xDF, c1});
                    edges[s].push_back({0xE0, 0xEF, c2});
                    edges[s].push_back({0xF0, 0xF4, c3});
                    edges[c3].push_back({0x80, 0xBF, c2});
                    edges[c2].push_back({0x80, 0xBF, c1});
                    edges[c1].push_back({0x80, 0xBF, t});
                }
                break;
            }
            case Ast::cat: {
                uint32_t cur = s;
                for (size_t i = 0; i < a.kids.size(); ++i) {
                    uint32_t nx = i + 1 == a.kids.size() ? t : add();
                    emit(*a.kids[i], cur, nx);
                    cur = nx;
                }
                if (a.kids.empty()) eps[s].push_back(t);
                break;
            }
            case Ast::alt:
                for (auto& k : a.kids) {
                    uint32_t ks = add(), kt = add();
                    eps[s].push_back(ks);
                    eps[kt].push_back(t);
                    emit(*k, ks, kt);
                }
                break;
            case Ast::rep: {
                uint32_t cur = s;
                for (int i = 0; i < a.min; ++i) {
                    uint32_t nx = add();
                    emit(*a.kids[0], cur, nx);
                    cur = nx;
                    if (overflow) return;
                }
                if (a.max < 0) {
                    uint32_t loop = add();
                    eps[cur].push_back(loop);
                    uint32_t body_end = add();
                    emit(*a.kids[0], loop, body_end);
                    eps[body_end].push_back(loop);
                    eps[loop].push_back(t);
                } else {
                    for (int i = a.min; i < a.max; ++i) {
                        eps[cur].push_back(t);
                        uint32_t nx = add();
                        emit(*a.kids[0], cur, nx);
                        cur = nx;
                        if (overflow) return;
                    }
                    eps[cur].push_back(t);
                }
                break;
            }
        }
    }
};

void closure(const Nfa& n, std::vector<uint32_t>& set, std::vector<uint8_t>& mark) {
    std::vector<uint32_t> stack(set.begin(), set.end());
    for (uint32_t s : set) mark[s] = 1;
    while (!stack.empty()) {
        uint32_t s = stack.back();
        stack.pop_back();
        for (uint32_t t : n.eps[s]) {
            if (!mark[t]) {
                mark[t] = 1;
                set.push_back(t);
                stack.push_back(t);
            }
        }
    }
    for (uint32_t s : set) mark[s] = 0;
    std::sort(set.begin(), set.end());
}

}  // namespace

bool ByteDfa::full_match(std::string_view s) const {
    if (n_states == 0) return false;
    int32_t q = 0;
    for (char c : s) {
        q = step(q, static_cast<uint8_t>(c));
        if (q < 0) return false;
    }
    return accept[static_cast<size_t>(q)] != 0;
}

Result<ByteDfa> compile_pattern(std::string_view pattern) {
    if (pattern.size() > kMaxPatternBytes)
        return errorf("pattern: expected at most {} bytes, found {}", kMaxPatternBytes, pattern.size());
    Parser parser(pattern);
    HR_ASSIGN(AstPtr ast, parser.parse());
    Nfa nfa;
    uint32_t start = nfa.add(), final_state = nfa.add();
    nfa.emit(*ast, start, final_state);
    if (nfa.overflow)
        return errorf("pattern: \"{}\" expands to more than {} automaton states", std::string(pattern), kMaxNfaStates);

    // Byte classes: bytes that no edge range separates behave identically.
    std::vector<uint8_t> boundary(257, 0);
    for (auto& es : nfa.edges)
        for (auto& e : es) boundary[e.lo] = 1, boundary[static_cast<size_t>(e.hi) + 1] = 1;
    std::vector<int> cls_of(256);
    std::vector<uint8_t> cls_rep;
    int cls = -1;
    for (int b = 0; b < 256; ++b) {
        if (b == 0 || boundary[static_cast<size_t>(b)]) {
            ++cls;
            cls_rep.push_back(static_cast<uint8_t>(b));
        }
        cls_of[static_cast<size_t>(b)] = cls;
    }

    std::vector<uint8_t> mark(nfa.edges.size(), 0);
    std::map<std::vector<uint32_t>, int32_t> ids;
    std::vector<std::vector<uint32_t>> sets;
    std::vector<std::vector<int32_t>> trans;  // [state][class]
    std::vector<uint32_t> s0{start};
    closure(nfa, s0, mark);
    ids[s0] = 0;
    sets.push_back(s0);
    // note: bounds the subset construction's work so a hostile pattern cannot stall compilation.
    size_t work = 0;
    const size_t kMaxWork = size_t{50} * 1000 * 1000;
    for (size_t i = 0; i < sets.size(); ++i) {
        trans.emplace_back(cls_rep.size(), -1);
        work += sets[i].size() * cls_rep.size();
        if (work > kMaxWork)
            return errorf("pattern: \"{}\" is too complex to compile (automaton construction budget exceeded)",
                          std::string(pattern));
        for (size_t c = 0; c < cls_rep.size(); ++c) {
            uint8_t b = cls_rep[c];
            std::vector<uint32_t> nx;
            for (uint32_t s : sets[i])
                for (auto& e : nfa.edges[s])
                    if (b >= e.lo && b <= e.hi) nx.push_back(e.to);
            if (nx.empty()) continue;
            std::sort(nx.begin(), nx.end());
            nx.erase(std::unique(nx.begin(), nx.end()), nx.end());
            closure(nfa, nx, mark);
            auto it = ids.find(nx);
            if (it == ids.end()) {
                if (sets.size() >= kMaxDfaStates)
                    return errorf("pattern: \"{}\" needs more than {} DFA states", std::string(pattern), kMaxDfaStates);
                it = ids.emplace(nx, static_cast<int32_t>(sets.size())).first;
                sets.push_back(nx);
            }
            trans[i][c] = it->second;
        }
    }
    size_t n = sets.size();
    std::vector<uint8_t> acc(n, 0);
    for (size_t i = 0; i < n; ++i) acc[i] = std::binary_search(sets[i].begin(), sets[i].end(), final_state) ? 1 : 0;
    // Keep only states from which an accepting state is reachable (so a live state never dead-ends).
    std::vector<uint8_t> live = acc;
    for (bool changed = true; changed;) {
        changed = false;
        for (size_t i = 0; i < n; ++i) {
            if (live[i]) continue;
            for (int32_t t : trans[i])
                if (t >= 0 && live[static_cast<size_t>(t)]) {
                    live[i] = 1;
                    changed = true;
                    break;
                }
        }
    }
    if (!live[0]) return errorf("pattern: \"{}\" matches no string", std::string(pattern));
    ByteDfa d;
    d.n_states = static_cast<uint32_t>(n);
    d.accept = acc;
    d.next.assign(n * 256, -1);
    for (size_t i = 0; i < n; ++i)
        for (int b = 0; b < 256; ++b) {
            int32_t t = trans[i][static_cast<size_t>(cls_of[static_cast<size_t>(b)])];
            d.next[i * 256 + static_cast<size_t>(b)] = (t >= 0 && live[static_cast<size_t>(t)]) ? t : -1;
        }
    return d;
}

}  // namespace hr::structured
