// Jinja lexer and parser: template text -> statements, with jinja2's whitespace rules as transformers
// configures them (trim_blocks, lstrip_blocks, keep_trailing_newline=False) and its operator precedence.
#include <cstring>

#include "jinja/ast.h"

namespace hr::jinja {

namespace {

// ---- stage 1: split the template into text and tags ----

struct RawTag {
    enum class Kind { text, var, block, comment } kind;
    std::string content;
    int line = 0;
    char left = 0, right = 0;  // '-' or '+' modifiers just inside the delimiters
};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

Result<std::vector<RawTag>> split_tags(const std::string& src) {
    std::vector<RawTag> out;
    size_t pos = 0;
    int line = 1;
    const auto count_lines = [&](size_t b, size_t e) {
        for (size_t k = b; k < e; ++k) line += src[k] == '\n';
    };
    while (pos < src.size()) {
        size_t open = std::string::npos;
        for (size_t k = src.find('{', pos); k != std::string::npos && k + 1 < src.size(); k = src.find('{', k + 1)) {
            const char c = src[k + 1];
            if (c == '{' || c == '%' || c == '#') {
                open = k;
                break;
            }
        }
        if (open == std::string::npos) {
            out.push_back({RawTag::Kind::text, src.substr(pos), line});
            break;
        }
        if (open > pos) {
            out.push_back({RawTag::Kind::text, src.substr(pos, open - pos), line});
            count_lines(pos, open);
        }
        const char kind = src[open + 1];
        RawTag tag{kind == '{' ? RawTag::Kind::var : kind == '%' ? RawTag::Kind::block : RawTag::Kind::comment, {}, line};
        size_t body = open + 2;
        if (body < src.size() && (src[body] == '-' || src[body] == '+')) tag.left = src[body++];
        size_t close = std::string::npos;
        if (tag.kind == RawTag::Kind::comment) {
            close = src.find("#}", body);
        } else {
            const char end0 = tag.kind == RawTag::Kind::var ? '}' : '%';
            char quote = 0;
            for (size_t k = body; k + 1 < src.size(); ++k) {
                const char c = src[k];
                if (quote) {
                    if (c == '\\') ++k;
                    else if (c == quote) quote = 0;
                } else if (c == '\'' || c == '"') {
                    quote = c;
                } else if (c == end0 && src[k + 1] == '}') {
                    close = k;
                    break;
                }
            }
        }
        if (close == std::string::npos) return errorf("template syntax error (line {}): unclosed tag", line);
        size_t content_end = close;
        if (content_end > body && (src[content_end - 1] == '-' || src[content_end - 1] == '+')) {
            tag.right = src[content_end - 1];
            --content_end;
        }
        tag.content = src.substr(body, content_end - body);
        count_lines(open, close + 2);
        out.push_back(std::move(tag));
        pos = close + 2;
    }
    // Whitespace control, as jinja2's lexer applies it: first the effect of the tag before a text
    // (trim_blocks or "-"), then the effect of the tag after it ("-" or lstrip_blocks).
    for (size_t k = 0; k < out.size(); ++k) {
        if (out[k].kind != RawTag::Kind::text) continue;
        std::string& text = out[k].content;
        bool line_start = k == 0;  // jinja2's line_starting: the previous match ended with a newline
        if (k > 0) {
            const RawTag& prev = out[k - 1];
            if (prev.right == '-') {
                size_t b = 0;
                while (b < text.size() && is_space(text[b])) ++b;
                line_start = b > 0 && text[b - 1] == '\n';
                text.erase(0, b);
            } else if (prev.right != '+' && prev.kind != RawTag::Kind::var && !text.empty() && text[0] == '\n') {
                text.erase(0, 1);  // trim_blocks
                line_start = true;
            }
        }
        if (k + 1 < out.size()) {
            const RawTag& next = out[k + 1];
            if (next.left == '-') {
                size_t e = text.size();
                while (e > 0 && is_space(text[e - 1])) --e;
                text.resize(e);
            } else if (next.left != '+' && next.kind != RawTag::Kind::var) {
                // lstrip_blocks: drop the whitespace between the line start and a block or comment tag.
                const size_t nl = text.rfind('\n');
                const size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
                if ((l_pos > 0 || line_start) && l_pos < text.size() &&
                    text.find_first_not_of(" \t\f\v\r", l_pos) == std::string::npos) {
                    text.resize(l_pos);
                }
            }
        }
    }
    // A "-" also strips across tags with no text between them: nothing to do then.
    return out;
}

// ---- stage 2: tokens inside a tag ----

struct Tok {
    enum class Kind { name, integer, floating, string, op, end } kind;
    std::string text;
    int64_t i = 0;
    double f = 0;
};

Result<std::vector<Tok>> lex_expr(const std::string& s, int line) {
    std::vector<Tok> out;
    size_t i = 0;
    while (i < s.size()) {
        const char c = s[i];
        if (is_space(c)) {
            ++i;
            continue;
        }
        if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
            size_t j = i;
            while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
            out.push_back({Tok::Kind::name, s.substr(i, j - i)});
            i = j;
            continue;
        }
        if (std::isdigit(static_cast<unsigned char>(c))) {
            size_t j = i;
            while (j < s.size() && (std::isdigit(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
            bool is_float = false;
            if (j + 1 < s.size() && s[j] == '.' && std::isdigit(static_cast<unsigned char>(s[j + 1]))) {
                is_float = true;
                ++j;
                while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
            }
            if (j < s.size() && (s[j] == 'e' || s[j] == 'E')) {
                size_t k = j + 1;
                if (k < s.size() && (s[k] == '+' || s[k] == '-')) ++k;
                if (k < s.size() && std::isdigit(static_cast<unsigned char>(s[k]))) {
                    is_float = true;
                    j = k;
                    while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
                }
            }
            std::string num;
            for (size_t k = i; k < j; ++k) {
                if (s[k] != '_') num.push_back(s[k]);
            }
            Tok t{is_float ? Tok::Kind::floating : Tok::Kind::integer, num};
            try {
                if (is_float) t.f = std::stod(num);
                else t.i = std::stoll(num);
            } catch (const std::exception&) {
                return errorf("template syntax error (line {}): bad number {:?}", line, num);
            }
            out.push_back(std::move(t));
            i = j;
            continue;
        }
        if (c == '\'' || c == '"') {
            std::string val;
            size_t j = i + 1;
            bool closed = false;
            while (j < s.size()) {
                const char d = s[j];
                if (d == c) {
                    closed = true;
                    ++j;
                    break;
                }
                if (d == '\\' && j + 1 < s.size()) {
                    const char e = s[j + 1];
                    j += 2;
                    switch (e) {
                        case 'n': val.push_back('\n'); break;
                        case 't': val.push_back('\t'); break;
                        case 'r': val.push_back('\r'); break;
                        case '0': val.push_back('\0'); break;
                        case '\\': val.push_back('\\'); break;
                        case '\'': val.push_back('\''); break;
                        case '"': val.push_back('"'); break;
                        case '\n': break;
                        default:
                            val.push_back('\\');
                            val.push_back(e);
                    }
                    continue;
                }
                val.push_back(d);
                ++j;
            }
            if (!closed) return errorf("template syntax error (line {}): unterminated string", line);
            out.push_back({Tok::Kind::string, std::move(val)});
            i = j;
            continue;
        }
        static const char* const kOps[] = {"**", "//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">",
                                           "=", "(", ")", "[", "]", "{", "}", ".", ",", ":", "|"};
        bool matched = false;
        for (const char* op : kOps) {
            const size_t n = std::strlen(op);
            if (s.compare(i, n, op) == 0) {
                out.push_back({Tok::Kind::op, op});
                i += n;
                matched = true;
                break;
            }
        }
        if (!matched) return errorf("template syntax error (line {}): unexpected character {:?}", line, std::string(1, c));
    }
    out.push_back({Tok::Kind::end, ""});
    return out;
}

// ---- stage 3: expressions ----

class ExprParser {
public:
    ExprParser(std::vector<Tok> toks, int line, size_t max_depth) : t_(std::move(toks)), line_(line), max_depth_(max_depth) {}

    bool at_end() const { return t_[p_].kind == Tok::Kind::end; }
    bool is_name(const char* n) const { return t_[p_].kind == Tok::Kind::name && t_[p_].text == n; }
    bool is_op(const char* o) const { return t_[p_].kind == Tok::Kind::op && t_[p_].text == o; }
    bool is_name_at(size_t off, const char* n) const {
        return p_ + off < t_.size() && t_[p_ + off].kind == Tok::Kind::name && t_[p_ + off].text == n;
    }
    const Tok& cur() const { return t_[p_]; }
    void advance() {
        if (!at_end()) ++p_;
    }
    Error err(const std::string& what) const {
        return errorf("template syntax error (line {}): {} (found {:?})", line_, what, at_end() ? std::string("end of tag") : cur().text);
    }
    Status expect_op(const char* o) {
        if (!is_op(o)) return err(fmt::format("expected '{}'", o));
        advance();
        return ok();
    }
    Result<std::string> expect_name() {
        if (cur().kind != Tok::Kind::name) return err("expected a name");
        std::string n = cur().text;
        advance();
        return n;
    }

    Result<ExprPtr> expression(bool with_cond = true) {
        if (++depth_ > max_depth_) return err("expression nested too deeply");
        auto r = with_cond ? condexpr() : or_expr();
        --depth_;
        return r;
    }

    // A comma-separated list without brackets becomes a tuple (for `set a = 1, 2` and `for` iterables).
    Result<ExprPtr> tuple_or_expression(bool with_cond) {
        HR_ASSIGN(ExprPtr first, expression(with_cond));
        if (!is_op(",")) return first;
        auto t = node(Expr::Kind::tuple);
        t->args.push_back(std::move(first));
        while (is_op(",")) {
            advance();
            if (at_end() || is_name("if") || is_op("=")) break;
            HR_ASSIGN(ExprPtr e, expression(with_cond));
            t->args.push_back(std::move(e));
        }
        return t;
    }

private:
    ExprPtr node(Expr::Kind k) {
        auto e = std::make_unique<Expr>();
        e->kind = k;
        e->line = line_;
        return e;
    }

    Result<ExprPtr> condexpr() {
        HR_ASSIGN(ExprPtr e, or_expr());
        while (is_name("if")) {
            advance();
            auto c = node(Expr::Kind::cond);
            HR_ASSIGN(c->a, or_expr());
            c->args.push_back(std::move(e));
            if (is_name("else")) {
                advance();
                HR_ASSIGN(ExprPtr other, condexpr());
                c->args.push_back(std::move(other));
            } else {
                c->args.push_back(nullptr);
            }
            e = std::move(c);
        }
        return e;
    }
    Result<ExprPtr> binary_chain(Result<ExprPtr> (ExprParser::*next)(), std::initializer_list<const char*> ops, bool names) {
        HR_ASSIGN(ExprPtr left, (this->*next)());
        while (true) {
            const char* hit = nullptr;
            for (const char* o : ops) {
                if (names ? is_name(o) : is_op(o)) hit = o;
            }
            if (hit == nullptr) return left;
            advance();
            HR_ASSIGN(ExprPtr right, (this->*next)());
            auto b = node(Expr::Kind::binary);
            b->op = hit;
            b->a = std::move(left);
            b->b = std::move(right);
            left = std::move(b);
        }
    }
    Result<ExprPtr> or_expr() { return binary_chain(&ExprParser::and_expr, {"or"}, true); }
    Result<ExprPtr> and_expr() { return binary_chain(&ExprParser::not_expr, {"and"}, true); }
    Result<ExprPtr> not_expr() {
        if (is_name("not")) {
            advance();
            if (++depth_ > max_depth_) return err("expression nested too deeply");
            auto u = node(Expr::Kind::unary);
            u->op = "not";
            HR_ASSIGN(u->a, not_expr());
            --depth_;
            return u;
        }
        return compare();
    }
    Result<ExprPtr> compare() {
        HR_ASSIGN(ExprPtr first, math1());
        auto c = node(Expr::Kind::compare);
        while (true) {
            std::string op;
            if (is_op("==") || is_op("!=") || is_op("<") || is_op("<=") || is_op(">") || is_op(">=")) {
                op = cur().text;
                advance();
            } else if (is_name("in")) {
                op = "in";
                advance();
            } else if (is_name("not") && is_name_at(1, "in")) {
                op = "not in";
                advance();
                advance();
            } else {
                break;
            }
            HR_ASSIGN(ExprPtr rhs, math1());
            c->ops.push_back(op);
            c->args.push_back(std::move(rhs));
        }
        if (c->ops.empty()) return first;
        c->a = std::move(first);
        return c;
    }
    Result<ExprPtr> math1() { return binary_chain(&ExprParser::concat, {"+", "-"}, false); }
    Result<ExprPtr> concat() { return binary_chain(&ExprParser::math2, {"~"}, false); }
    Result<ExprPtr> math2() { return binary_chain(&ExprParser::pow, {"*", "/", "//", "%"}, false); }
    Result<ExprPtr> pow() { return binary_chain(&ExprParser::unary_with_filter, {"**"}, false); }
    Result<ExprPtr> unary_with_filter() { return unary(true); }

    Result<ExprPtr> unary(bool with_filter) {
        if (++depth_ > max_depth_) return err("expression nested too deeply");
        ExprPtr e;
        if (is_op("-") || is_op("+")) {
            auto u = node(Expr::Kind::unary);
            u->op = cur().text;
            advance();
            HR_ASSIGN(u->a, unary(false));
            e = std::move(u);
        } else {
            HR_ASSIGN(e, primary());
        }
        HR_ASSIGN(e, postfix(std::move(e)));
        if (with_filter) {
            HR_ASSIGN(e, filter_expr(std::move(e)));
        }
        --depth_;
        return e;
    }

    Result<ExprPtr> primary() {
        const Tok t = cur();
        switch (t.kind) {
            case Tok::Kind::name: {
                advance();
                auto e = node(Expr::Kind::literal);
                if (t.text == "true" || t.text == "True") e->value = Value::boolean(true);
                else if (t.text == "false" || t.text == "False") e->value = Value::boolean(false);
                else if (t.text == "none" || t.text == "None") e->value = Value::none();
                else {
                    e->kind = Expr::Kind::name;
                    e->name = t.text;
                }
                return e;
            }
            case Tok::Kind::string: {
                std::string s;
                while (cur().kind == Tok::Kind::string) {  // adjacent literals concatenate
                    s += cur().text;
                    advance();
                }
                auto e = node(Expr::Kind::literal);
                e->value = Value::string(std::move(s));
                return e;
            }
            case Tok::Kind::integer: {
                advance();
                auto e = node(Expr::Kind::literal);
                e->value = Value::integer(t.i);
                return e;
            }
            case Tok::Kind::floating: {
                advance();
                auto e = node(Expr::Kind::literal);
                e->value = Value::floating(t.f);
                return e;
            }
            case Tok::Kind::op:
                if (t.text == "(") {
                    advance();
                    if (is_op(")")) {
                        advance();
                        return node(Expr::Kind::tuple);
                    }
                    HR_ASSIGN(ExprPtr e, expression());
                    if (is_op(",")) {
                        auto tu = node(Expr::Kind::tuple);
                        tu->args.push_back(std::move(e));
                        while (is_op(",")) {
                            advance();
                            if (is_op(")")) break;
                            HR_ASSIGN(ExprPtr x, expression());
                            tu->args.push_back(std::move(x));
                        }
                        e = std::move(tu);
                    }
                    HR_TRY(expect_op(")"));
                    return e;
                }
                if (t.text == "[") {
                    advance();
                    auto l = node(Expr::Kind::list);
                    while (!is_op("]")) {
                        HR_ASSIGN(ExprPtr x, expression());
                        l->args.push_back(std::move(x));
                        if (!is_op(",")) break;
                        advance();
                    }
                    HR_TRY(expect_op("]"));
                    return l;
                }
                if (t.text == "{") {
                    advance();
                    auto d = node(Expr::Kind::dict);
                    while (!is_op("}")) {
                        HR_ASSIGN(ExprPtr k, expression());
                        HR_TRY(expect_op(":"));
                        HR_ASSIGN(ExprPtr v, expression());
                        d->args.push_back(std::move(k));
                        d->args2.push_back(std::move(v));
                        if (!is_op(",")) break;
                        advance();
                    }
                    HR_TRY(expect_op("}"));
                    return d;
                }
                return err("unexpected operator");
            case Tok::Kind::end: return err("unexpected end of expression");
        }
        return err("unexpected token");
    }

    Status call_args(Expr& e) {
        HR_TRY(expect_op("("));
        while (!is_op(")")) {
            if (cur().kind == Tok::Kind::name && p_ + 1 < t_.size() && t_[p_ + 1].kind == Tok::Kind::op &&
                t_[p_ + 1].text == "=") {
                std::string key = cur().text;
                advance();
                advance();
                HR_ASSIGN(ExprPtr v, expression());
                e.kwargs.emplace_back(std::move(key), std::move(v));
            } else {
                HR_ASSIGN(ExprPtr v, expression());
                e.args.push_back(std::move(v));
            }
            if (!is_op(",")) break;
            advance();
        }
        return expect_op(")");
    }

    Result<ExprPtr> postfix(ExprPtr e) {
        while (true) {
            if (is_op(".")) {
                advance();
                auto g = node(Expr::Kind::getattr);
                if (cur().kind == Tok::Kind::integer) {
                    g->kind = Expr::Kind::getitem;
                    auto idx = node(Expr::Kind::literal);
                    idx->value = Value::integer(cur().i);
                    advance();
                    g->b = std::move(idx);
                } else {
                    HR_ASSIGN(g->name, expect_name());
                }
                g->a = std::move(e);
                e = std::move(g);
            } else if (is_op("[")) {
                advance();
                ExprPtr parts[3];
                int n_colons = 0;
                while (!is_op("]")) {
                    if (is_op(":")) {
                        if (++n_colons > 2) return err("too many ':' in slice");
                        advance();
                        continue;
                    }
                    HR_ASSIGN(parts[n_colons], expression());
                    if (!is_op(":") && !is_op("]")) return err("expected ']' or ':'");
                }
                advance();
                if (n_colons == 0) {
                    if (!parts[0]) return err("empty subscript");
                    auto g = node(Expr::Kind::getitem);
                    g->a = std::move(e);
                    g->b = std::move(parts[0]);
                    e = std::move(g);
                } else {
                    auto s = node(Expr::Kind::slice);
                    s->a = std::move(e);
                    for (auto& part : parts) s->args.push_back(std::move(part));
                    e = std::move(s);
                }
            } else if (is_op("(")) {
                auto c = node(Expr::Kind::call);
                HR_TRY(call_args(*c));
                c->a = std::move(e);
                e = std::move(c);
            } else {
                return e;
            }
        }
    }

    Result<ExprPtr> filter_expr(ExprPtr e) {
        while (true) {
            if (is_op("|")) {
                advance();
                auto f = node(Expr::Kind::filter);
                HR_ASSIGN(f->name, expect_name());
                while (is_op(".")) {  // dotted filter names
                    advance();
                    HR_ASSIGN(std::string more, expect_name());
                    f->name += "." + more;
                }
                if (is_op("(")) HR_TRY(call_args(*f));
                f->a = std::move(e);
                e = std::move(f);
            } else if (is_name("is")) {
                advance();
                auto t = node(Expr::Kind::test);
                if (is_name("not")) {
                    t->negate = true;
                    advance();
                }
                HR_ASSIGN(t->name, expect_name());
                if (is_op("(")) {
                    HR_TRY(call_args(*t));
                } else if ((cur().kind == Tok::Kind::name || cur().kind == Tok::Kind::string ||
                            cur().kind == Tok::Kind::integer || cur().kind == Tok::Kind::floating || is_op("[") ||
                            is_op("{")) &&
                           !is_name("else") && !is_name("or") && !is_name("and") && !is_name("if") && !is_name("in") &&
                           !is_name("not") && !is_name("is")) {
                    HR_ASSIGN(ExprPtr arg, primary());
                    HR_ASSIGN(arg, postfix(std::move(arg)));
                    t->args.push_back(std::move(arg));
                }
                t->a = std::move(e);
                e = std::move(t);
            } else if (is_op("(")) {
                auto c = node(Expr::Kind::call);
                HR_TRY(call_args(*c));
                c->a = std::move(e);
                e = std::move(c);
            } else {
                return e;
            }
        }
    }

    std::vector<Tok> t_;
    size_t p_ = 0;
    int line_;
    size_t max_depth_;
    size_t depth_ = 0;
};

// ---- stage 4: statements ----

class StmtParser {
public:
    StmtParser(std::vector<RawTag> tags, const Limits& limits) : tags_(std::move(tags)), limits_(limits) {}

    // Parses until one of `ends` (tag keyword); returns the keyword that ended it ("" at end of input).
    Result<std::string> body(Body& out, std::initializer_list<const char*> ends, ExprParser** end_parser) {
        if (++depth_ > limits_.max_depth) return errorf("template syntax error: blocks nested too deeply");
        while (k_ < tags_.size()) {
            RawTag& t = tags_[k_++];
            if (t.kind == RawTag::Kind::comment) continue;
            if (t.kind == RawTag::Kind::text) {
                if (t.content.empty()) continue;
                auto s = stmt(Stmt::Kind::text, t.line);
                s->text = t.content;
                out.push_back(std::move(s));
                continue;
            }
            HR_ASSIGN(auto toks, lex_expr(t.content, t.line));
            parsers_.push_back(std::make_unique<ExprParser>(std::move(toks), t.line, limits_.max_depth));
            ExprParser& p = *parsers_.back();
            if (t.kind == RawTag::Kind::var) {
                auto s = stmt(Stmt::Kind::output, t.line);
                HR_ASSIGN(s->expr, p.tuple_or_expression(true));
                if (!p.at_end()) return p.err("expected '}}'");
                out.push_back(std::move(s));
                continue;
            }
            HR_ASSIGN(std::string kw, p.expect_name());
            for (const char* e : ends) {
                if (kw == e) {
                    *end_parser = &p;
                    --depth_;
                    return kw;
                }
            }
            HR_ASSIGN(StmtPtr s, block_stmt(kw, p, t.line));
            if (s) out.push_back(std::move(s));
        }
        --depth_;
        if (ends.size() > 0) return errorf("template syntax error: missing end tag (expected one of {})", join(ends));
        return std::string();
    }

private:
    static std::string join(std::initializer_list<const char*> ends) {
        std::string s;
        for (const char* e : ends) s += (s.empty() ? "" : ", ") + std::string(e);
        return s;
    }
    StmtPtr stmt(Stmt::Kind k, int line) {
        auto s = std::make_unique<Stmt>();
        s->kind = k;
        s->line = line;
        return s;
    }

    Result<StmtPtr> block_stmt(const std::string& kw, ExprParser& p, int line) {
        ExprParser* endp = nullptr;
        if (kw == "if") {
            auto s = stmt(Stmt::Kind::if_, line);
            HR_ASSIGN(ExprPtr cond, p.expression());
            if (!p.at_end()) return p.err("expected '%}'");
            while (true) {
                Body b;
                HR_ASSIGN(std::string end, body(b, {"elif", "else", "endif"}, &endp));
                s->branches.emplace_back(std::move(cond), std::move(b));
                if (end == "elif") {
                    HR_ASSIGN(cond, endp->expression());
                    continue;
                }
                if (end == "else") {
                    HR_ASSIGN(std::string end2, body(s->else_body, {"endif"}, &endp));
                    (void)end2;
                }
                break;
            }
            return s;
        }
        if (kw == "for") {
            auto s = stmt(Stmt::Kind::for_, line);
            bool paren = p.is_op("(");
            if (paren) p.advance();
            while (true) {
                HR_ASSIGN(std::string n, p.expect_name());
                s->targets.push_back(n);
                if (!p.is_op(",")) break;
                p.advance();
            }
            if (paren) HR_TRY(p.expect_op(")"));
            if (!p.is_name("in")) return p.err("expected 'in'");
            p.advance();
            HR_ASSIGN(s->expr, p.tuple_or_expression(false));
            if (p.is_name("if")) {
                p.advance();
                HR_ASSIGN(s->cond, p.expression(false));
            }
            if (p.is_name("recursive")) return p.err("recursive loops are not supported");
            if (!p.at_end()) return p.err("expected '%}'");
            HR_ASSIGN(std::string end, body(s->body, {"else", "endfor"}, &endp));
            if (end == "else") {
                HR_ASSIGN(std::string end2, body(s->else_body, {"endfor"}, &endp));
                (void)end2;
            }
            return s;
        }
        if (kw == "set") {
            auto s = stmt(Stmt::Kind::set, line);
            HR_ASSIGN(std::string n, p.expect_name());
            s->targets.push_back(n);
            if (p.is_op(".")) {
                p.advance();
                HR_ASSIGN(std::string attr, p.expect_name());
                s->targets.push_back(attr);
                s->attr_target = true;
            } else {
                while (p.is_op(",")) {
                    p.advance();
                    HR_ASSIGN(std::string more, p.expect_name());
                    s->targets.push_back(more);
                }
            }
            if (p.is_op("=")) {
                p.advance();
                HR_ASSIGN(s->expr, p.tuple_or_expression(true));
                if (!p.at_end()) return p.err("expected '%}'");
                return s;
            }
            if (!p.at_end() || s->targets.size() != 1) return p.err("expected '='");
            s->kind = Stmt::Kind::set_block;
            HR_ASSIGN(std::string end, body(s->body, {"endset"}, &endp));
            (void)end;
            return s;
        }
        if (kw == "macro") {
            auto s = stmt(Stmt::Kind::macro, line);
            HR_ASSIGN(s->name, p.expect_name());
            HR_TRY(p.expect_op("("));
            while (!p.is_op(")")) {
                HR_ASSIGN(std::string param, p.expect_name());
                ExprPtr dflt;
                if (p.is_op("=")) {
                    p.advance();
                    HR_ASSIGN(dflt, p.expression());
                }
                s->params.emplace_back(param, std::move(dflt));
                if (!p.is_op(",")) break;
                p.advance();
            }
            HR_TRY(p.expect_op(")"));
            HR_ASSIGN(std::string end, body(s->body, {"endmacro"}, &endp));
            (void)end;
            return s;
        }
        if (kw == "break" || kw == "continue") {
            if (!p.at_end()) return p.err("expected '%}'");
            return stmt(kw == "break" ? Stmt::Kind::break_ : Stmt::Kind::continue_, line);
        }
        if (kw == "generation") {
            // transformers' {% generation %} marks assistant text for masks; it renders its body unchanged.
            auto s = stmt(Stmt::Kind::block, line);
            HR_ASSIGN(std::string end, body(s->body, {"endgeneration"}, &endp));
            (void)end;
            return s;
        }
        return errorf("template syntax error (line {}): unsupported or unexpected tag {:?}", line, kw);
    }

    std::vector<RawTag> tags_;
    size_t k_ = 0;
    const Limits& limits_;
    size_t depth_ = 0;
    std::vector<std::unique_ptr<ExprParser>> parsers_;
};

}  // namespace

Result<Body> parse_template(const std::string& source, const Limits& limits) {
    if (source.size() > limits.max_template_bytes) {
        return errorf("chat template is {} bytes, more than the limit of {}", source.size(), limits.max_template_bytes);
    }
    // jinja2 normalizes newlines to "\n" and drops one trailing newline (keep_trailing_newline=False).
    std::string src;
    src.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
        if (source[i] == '\r') {
            src.push_back('\n');
            if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
        } else {
            src.push_back(source[i]);
        }
    }
    if (!src.empty() && src.back() == '\n') src.pop_back();
    HR_ASSIGN(auto tags, split_tags(src));
    StmtParser sp(std::move(tags), limits);
    Body out;
    ExprParser* endp = nullptr;
    HR_ASSIGN(std::string end, sp.body(out, {}, &endp));
    (void)end;
    return out;
}

}  // namespace hr::jinja
