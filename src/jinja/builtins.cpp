// Jinja builtins used by chat templates: filters, tests, str/dict/list methods and the globals that
// transformers provides (raise_exception, strftime_now) plus range, namespace and dict. The sandbox
// refuses mutating methods with jinja2's SecurityError wording.
#include <algorithm>
#include <cmath>
#include <ctime>

#include "jinja/builtins.h"

namespace hr::jinja {

namespace {

using Args = std::vector<Value>;

Value make_func(std::string name, std::function<Result<Value>(Interpreter&, Args&, Kwargs&)> fn) {
    auto f = std::make_shared<Func>();
    f->name = std::move(name);
    f->call = std::move(fn);
    Value v;
    v.type = Value::Type::func;
    v.func = std::move(f);
    return v;
}

// Positional argument k or keyword `name`.
std::optional<Value> arg(const Args& args, const Kwargs& kwargs, size_t k, const char* name) {
    if (k < args.size()) return args[k];
    for (const auto& kv : kwargs) {
        if (kv.first == name) return kv.second;
    }
    return std::nullopt;
}

Result<std::string> str_arg(const Args& args, const Kwargs& kwargs, size_t k, const char* name, const char* fn) {
    auto v = arg(args, kwargs, k, name);
    if (!v || !v->is_string()) return errorf("{}() expects a string argument '{}'", fn, name);
    return v->s;
}

std::string ascii_lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}
std::string ascii_upper(std::string s) {
    for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
}
std::string title_case(const std::string& s) {
    std::string out = s;
    bool prev_cased = false;
    for (char& c : out) {
        const auto u = static_cast<unsigned char>(c);
        if (std::isalpha(u)) {
            c = static_cast<char>(prev_cased ? std::tolower(u) : std::toupper(u));
            prev_cased = true;
        } else {
            prev_cased = u >= 0x80 && prev_cased;
        }
    }
    return out;
}
std::string capitalize(const std::string& s) {
    std::string out = ascii_lower(s);
    if (!out.empty()) out[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[0])));
    return out;
}

// Python str.strip/lstrip/rstrip: chars=nullopt strips whitespace.
std::string py_strip(const std::string& s, const std::optional<std::string>& chars, bool left, bool right) {
    const auto cps = code_points(s);
    std::vector<uint32_t> set;
    if (chars) set = code_points(*chars);
    const auto strip_it = [&](uint32_t cp) {
        return chars ? std::find(set.begin(), set.end(), cp) != set.end() : is_py_space(cp);
    };
    size_t b = 0, e = cps.size();
    if (left) {
        while (b < e && strip_it(cps[b])) ++b;
    }
    if (right) {
        while (e > b && strip_it(cps[e - 1])) --e;
    }
    return from_code_points(cps, b, e);
}

// Python str.replace; an error (before allocating) when the result would pass Limits::max_value_bytes.
Result<std::string> replace_all(const Interpreter& in, const std::string& s, const std::string& from, const std::string& to,
                                int64_t count) {
    {
        // the result's size, counted first so that nothing past the cap is allocated
        int64_t n = 0;
        if (from.empty()) {
            n = static_cast<int64_t>(code_points(s).size()) + 1;
        } else {
            for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + from.size())) ++n;
        }
        if (count >= 0) n = std::min(n, count);
        const size_t removed = from.empty() ? 0 : static_cast<size_t>(n) * from.size();
        size_t added = 0;
        if (__builtin_mul_overflow(static_cast<size_t>(n), to.size(), &added)) added = SIZE_MAX - s.size();
        HR_TRY(in.check_size(std::min(added, SIZE_MAX - s.size()) + s.size() - removed, "replace()"));
    }
    if (from.empty()) {
        // Python inserts `to` between characters (and at both ends).
        const auto cps = code_points(s);
        std::string out;
        int64_t done = 0;
        for (size_t k = 0; k <= cps.size(); ++k) {
            if (count < 0 || done < count) {
                out += to;
                ++done;
            }
            if (k < cps.size()) out += from_code_points(cps, k, k + 1);
        }
        return out;
    }
    std::string out;
    size_t pos = 0;
    int64_t done = 0;
    while (count < 0 || done < count) {
        const size_t f = s.find(from, pos);
        if (f == std::string::npos) break;
        out.append(s, pos, f - pos);
        out += to;
        pos = f + from.size();
        ++done;
    }
    out.append(s, pos, std::string::npos);
    return out;
}

Result<Value> split_str(const Interpreter& in, const std::string& s, const std::optional<std::string>& sep, int64_t maxsplit) {
    List out;
    const auto grow = [&]() { return in.check_items(out.size() + 1, "split()"); };
    if (!sep) {
        const auto cps = code_points(s);
        size_t k = 0;
        int64_t splits = 0;
        while (k < cps.size()) {
            while (k < cps.size() && is_py_space(cps[k])) ++k;
            if (k >= cps.size()) break;
            if (maxsplit >= 0 && splits >= maxsplit) {
                size_t e = cps.size();
                while (e > k && is_py_space(cps[e - 1])) --e;
                out.push_back(Value::string(from_code_points(cps, k, e)));
                break;
            }
            size_t e = k;
            while (e < cps.size() && !is_py_space(cps[e])) ++e;
            HR_TRY(grow());
            out.push_back(Value::string(from_code_points(cps, k, e)));
            ++splits;
            k = e;
        }
        return Value::make_list(std::move(out));
    }
    size_t pos = 0;
    int64_t splits = 0;
    while (maxsplit < 0 || splits < maxsplit) {
        const size_t f = s.find(*sep, pos);
        if (f == std::string::npos) break;
        HR_TRY(grow());
        out.push_back(Value::string(s.substr(pos, f - pos)));
        pos = f + sep->size();
        ++splits;
    }
    out.push_back(Value::string(s.substr(pos)));
    return Value::make_list(std::move(out));
}

int64_t length_of(const Value& v) {
    if (v.is_string()) return static_cast<int64_t>(code_points(v.s).size());
    if (v.is_list()) return static_cast<int64_t>(v.list->size());
    if (v.is_dict()) return static_cast<int64_t>(v.dict->items.size());
    return 0;
}

Result<List> iterate(const Interpreter& in, const Value& v) {
    if (v.is_list()) return *v.list;
    List out;
    if (v.is_dict()) {
        for (const auto& kv : v.dict->items) out.push_back(Value::string(kv.first));
    } else if (v.is_string()) {
        const auto cps = code_points(v.s);
        HR_TRY(in.check_items(cps.size(), "iterating over a string"));
        for (size_t k = 0; k < cps.size(); ++k) out.push_back(Value::string(from_code_points(cps, k, k + 1)));
    } else if (!v.is_undefined()) {
        return errorf("'{}' object is not iterable", type_name(v));
    }
    return out;
}

// Python int(f): truncation; an error for nan, inf and values outside int64 (Python: a big integer).
Result<int64_t> float_to_int(double f) {
    if (std::isnan(f)) return make_error("cannot convert float NaN to integer");
    if (!(f > -9223372036854775808.0 && f < 9223372036854775808.0)) {
        return errorf("chat template integer overflow: int({}) does not fit in 64 bits", float_repr(f));
    }
    return static_cast<int64_t>(f);
}

Result<Value> attribute_path(Interpreter& in, const Value& v, const std::string& path) {
    Value cur = v;
    size_t pos = 0;
    while (true) {
        const size_t dot = path.find('.', pos);
        const std::string part = path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
        bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
        if (numeric && part.size() > 18) return errorf("attribute index {} is too large", part);
        HR_ASSIGN(cur, numeric ? in.get_item(cur, Value::integer(std::stoll(part))) : in.get_item(cur, Value::string(part)));
        if (dot == std::string::npos) return cur;
        pos = dot + 1;
    }
}

std::string html_escape(const std::string& s) {
    std::string out;
    for (char c : s) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&#34;"; break;
            case '\'': out += "&#39;"; break;
            default: out.push_back(c);
        }
    }
    return out;
}

Error unsafe(const std::string& attr, const Value& obj) {
    return errorf("access to attribute '{}' of '{}' object is unsafe.", attr, type_name(obj));
}

}  // namespace

std::optional<Value> Interpreter::method(const Value& obj, const std::string& name) { return bound_method(*this, obj, name); }

std::optional<Value> bound_method(Interpreter&, const Value& obj, const std::string& name) {
    if (obj.is_string()) {
        const std::string s = obj.s;
        if (name == "strip" || name == "lstrip" || name == "rstrip") {
            const bool l = name != "rstrip", r = name != "lstrip";
            return make_func(name, [s, l, r](Interpreter&, Args& a, Kwargs& kw) -> Result<Value> {
                auto chars = arg(a, kw, 0, "chars");
                std::optional<std::string> c;
                if (chars && chars->is_string()) c = chars->s;
                return Value::string(py_strip(s, c, l, r));
            });
        }
        if (name == "startswith" || name == "endswith") {
            const bool start = name == "startswith";
            return make_func(name, [s, start, name](Interpreter&, Args& a, Kwargs& kw) -> Result<Value> {
                auto p = arg(a, kw, 0, "prefix");
                if (!p) return errorf("{}() takes at least 1 argument (0 given)", name);
                List cands = p->is_list() ? *p->list : List{*p};
                for (const Value& c : cands) {
                    if (!c.is_string()) return errorf("{} first arg must be str or a tuple of str, not {}", name, type_name(c));
                    const bool hit = start ? s.compare(0, c.s.size(), c.s) == 0
                                           : s.size() >= c.s.size() && s.compare(s.size() - c.s.size(), c.s.size(), c.s) == 0;
                    if (hit) return Value::boolean(true);
                }
                return Value::boolean(false);
            });
        }
        if (name == "lower") return make_func(name, [s](Interpreter&, Args&, Kwargs&) -> Result<Value> { return Value::string(ascii_lower(s)); });
        if (name == "upper") return make_func(name, [s](Interpreter&, Args&, Kwargs&) -> Result<Value> { return Value::string(ascii_upper(s)); });
        if (name == "title") return make_func(name, [s](Interpreter&, Args&, Kwargs&) -> Result<Value> { return Value::string(title_case(s)); });
        if (name == "capitalize") return make_func(name, [s](Interpreter&, Args&, Kwargs&) -> Result<Value> { return Value::string(capitalize(s)); });
        if (name == "split" || name == "rsplit") {
            return make_func(name, [s](Interpreter& in, Args& a, Kwargs& kw) -> Result<Value> {
                auto sep = arg(a, kw, 0, "sep");
                auto mx = arg(a, kw, 1, "maxsplit");
                std::optional<std::string> sp;
                if (sep && sep->is_string()) {
                    if (sep->s.empty()) return make_error("empty separator");
                    sp = sep->s;
                }
                return split_str(in, s, sp, mx && mx->type == Value::Type::integer ? mx->i : -1);
            });
        }
        if (name == "splitlines") {
            return make_func(name, [s](Interpreter&, Args&, Kwargs&) -> Result<Value> {
                List out;
                size_t pos = 0;
                while (pos < s.size()) {
                    size_t e = s.find_first_of("\r\n", pos);
                    if (e == std::string::npos) {
                        out.push_back(Value::string(s.substr(pos)));
                        break;
                    }
                    out.push_back(Value::string(s.substr(pos, e - pos)));
                    pos = e + ((s[e] == '\r' && e + 1 < s.size() && s[e + 1] == '\n') ? 2 : 1);
                }
                return Value::make_list(std::move(out));
            });
        }
        if (name == "replace") {
            return make_func(name, [s](Interpreter& in, Args& a, Kwargs& kw) -> Result<Value> {
                HR_ASSIGN(std::string from, str_arg(a, kw, 0, "old", "replace"));
                HR_ASSIGN(std::string to, str_arg(a, kw, 1, "new", "replace"));
                auto cnt = arg(a, kw, 2, "count");
                HR_ASSIGN(std::string out, replace_all(in, s, from, to, cnt && cnt->type == Value::Type::integer ? cnt->i : -1));
                return Value::string(std::move(out));
            });
        }
        if (name == "find" || name == "rfind" || name == "count") {
            return make_func(name, [s, name](Interpreter&, Args& a, Kwargs& kw) -> Result<Value> {
                HR_ASSIGN(std::string sub, str_arg(a, kw, 0, "sub", name.c_str()));
                if (name == "count") {
                    if (sub.empty()) return Value::integer(static_cast<int64_t>(code_points(s).size()) + 1);
                    int64_t n = 0;
                    for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
                    return Value::integer(n);
                }
                const size_t p = name == "find" ? s.find(sub) : s.rfind(sub);
                if (p == std::string::npos) return Value::integer(-1);
                return Value::integer(static_cast<int64_t>(code_points(s.substr(0, p)).size()));
            });
        }
        if (name == "join") {
            return make_func(name, [s](Interpreter& in, Args& a, Kwargs& kw) -> Result<Value> {
                auto seq = arg(a, kw, 0, "iterable");
                if (!seq) return make_error("join() takes exactly one argument (0 given)");
                HR_ASSIGN(List items, iterate(in, *seq));
                std::string out;
                for (size_t k = 0; k < items.size(); ++k) {
                    if (!items[k].is_string()) return errorf("sequence item {}: expected str instance, {} found", k, type_name(items[k]));
                    HR_TRY(in.check_size(out.size() + s.size() + items[k].s.size(), "join()"));
                    if (k > 0) out += s;
                    out += items[k].s;
                }
                return Value::string(std::move(out));
            });
        }
        if (name == "removeprefix" || name == "removesuffix") {
            const bool pre = name == "removeprefix";
            return make_func(name, [s, pre, name](Interpreter&, Args& a, Kwargs& kw) -> Result<Value> {
                HR_ASSIGN(std::string x, str_arg(a, kw, 0, "prefix", name.c_str()));
                if (pre && s.compare(0, x.size(), x) == 0) return Value::string(s.substr(x.size()));
                if (!pre && s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0) {
                    return Value::string(s.substr(0, s.size() - x.size()));
                }
                return Value::string(s);
            });
        }
        if (name == "isdigit" || name == "isalpha" || name == "isalnum" || name == "isspace" || name == "islower" ||
            name == "isupper") {
            return make_func(name, [s, name](Interpreter&, Args&, Kwargs&) -> Result<Value> {
                if (s.empty()) return Value::boolean(false);
                bool all = true, any_cased = false;
                for (uint32_t cp : code_points(s)) {
                    const bool ascii = cp < 0x80;
                    const int c = ascii ? static_cast<int>(cp) : 0;
                    if (name == "isdigit") all = all && ascii && std::isdigit(c);
                    else if (name == "isalpha") all = all && ascii && std::isalpha(c);
                    else if (name == "isalnum") all = all && ascii && std::isalnum(c);
                    else if (name == "isspace") all = all && is_py_space(cp);
                    else if (name == "islower") {
                        all = all && !(ascii && std::isupper(c));
                        any_cased = any_cased || (ascii && std::islower(c));
                    } else {
                        all = all && !(ascii && std::islower(c));
                        any_cased = any_cased || (ascii && std::isupper(c));
                    }
                }
                if (name == "islower" || name == "isupper") return Value::boolean(all && any_cased);
                return Value::boolean(all);
            });
        }
        return std::nullopt;
    }
    if (obj.is_dict() && !obj.is_namespace) {
        const Value d = obj;
        if (name == "items" || name == "keys" || name == "values") {
            return make_func(name, [d, name](Interpreter&, Args&, Kwargs&) -> Result<Value> {
                List out;
                for (const auto& kv : d.dict->items) {
                    if (name == "items") out.push_back(Value::make_list({Value::string(kv.first), kv.second}));
                    else if (name == "keys") out.push_back(Value::string(kv.first));
                    else out.push_back(kv.second);
                }
                return Value::make_list(std::move(out));
            });
        }
        if (name == "get") {
            return make_func(name, [d](Interpreter&, Args& a, Kwargs& kw) -> Result<Value> {
                auto key = arg(a, kw, 0, "key");
                if (!key) return make_error("get expected at least 1 argument, got 0");
                if (key->is_string()) {
                    if (const Value* v = d.dict->find(key->s)) return *v;
                }
                auto dflt = arg(a, kw, 1, "default");
                return dflt ? *dflt : Value::none();
            });
        }
        if (name == "update" || name == "pop" || name == "popitem" || name == "setdefault" || name == "clear") {
            return make_func(name, [d, name](Interpreter&, Args&, Kwargs&) -> Result<Value> { return unsafe(name, d); });
        }
        return std::nullopt;
    }
    if (obj.is_list()) {
        const Value l = obj;
        if (name == "append" || name == "extend" || name == "insert" || name == "pop" || name == "remove" ||
            name == "clear" || name == "sort" || name == "reverse") {
            return make_func(name, [l, name](Interpreter&, Args&, Kwargs&) -> Result<Value> { return unsafe(name, l); });
        }
        if (name == "index" || name == "count") {
            return make_func(name, [l, name](Interpreter&, Args& a, Kwargs&) -> Result<Value> {
                if (a.empty()) return errorf("{}() takes exactly one argument (0 given)", name);
                int64_t n = 0;
                for (size_t k = 0; k < l.list->size(); ++k) {
                    if (equals((*l.list)[k], a[0])) {
                        if (name == "index") return Value::integer(static_cast<int64_t>(k));
                        ++n;
                    }
                }
                if (name == "index") return errorf("{} is not in list", repr(a[0]));
                return Value::integer(n);
            });
        }
    }
    return std::nullopt;
}

Result<bool> Interpreter::apply_test(const std::string& name, const Value& v, const std::vector<Value>& args) {
    const auto need_arg = [&]() -> Result<Value> {
        if (args.empty()) return errorf("test '{}' needs an argument", name);
        return args[0];
    };
    if (name == "defined") return !v.is_undefined();
    if (name == "undefined") return v.is_undefined();
    if (name == "none") return v.is_none();
    if (name == "boolean") return v.type == Value::Type::boolean;
    if (name == "true") return v.type == Value::Type::boolean && v.b;
    if (name == "false") return v.type == Value::Type::boolean && !v.b;
    if (name == "integer") return v.type == Value::Type::integer;
    if (name == "float") return v.type == Value::Type::floating;
    if (name == "number") return v.is_number();
    if (name == "string") return v.is_string();
    if (name == "mapping") return v.is_dict() && !v.is_namespace;
    if (name == "sequence") return v.is_list() || v.is_string() || (v.is_dict() && !v.is_namespace);
    if (name == "iterable") return v.is_list() || v.is_string() || v.is_dict();
    if (name == "callable") return v.type == Value::Type::func;
    if (name == "lower") return v.is_string() && ascii_lower(v.s) == v.s;
    if (name == "upper") return v.is_string() && ascii_upper(v.s) == v.s;
    if (name == "even" || name == "odd") {
        if (v.type != Value::Type::integer) return errorf("test '{}' expects an integer, got {}", name, type_name(v));
        return (v.i % 2 == 0) == (name == "even");
    }
    if (name == "divisibleby") {
        HR_ASSIGN(Value d, need_arg());
        if (v.type != Value::Type::integer || d.type != Value::Type::integer || d.i == 0) {
            return make_error("test 'divisibleby' expects non-zero integers");
        }
        return v.i % d.i == 0;
    }
    if (name == "eq" || name == "equalto" || name == "==") {
        HR_ASSIGN(Value o, need_arg());
        return equals(v, o);
    }
    if (name == "ne" || name == "!=") {
        HR_ASSIGN(Value o, need_arg());
        return !equals(v, o);
    }
    if (name == "sameas") {
        HR_ASSIGN(Value o, need_arg());
        if (v.type != o.type) return false;
        if (v.is_list()) return v.list == o.list;
        if (v.is_dict()) return v.dict == o.dict;
        return equals(v, o);
    }
    static const std::pair<const char*, const char*> kCmp[] = {{"lt", "<"}, {"<", "<"}, {"le", "<="}, {"<=", "<="},
                                                               {"gt", ">"}, {">", ">"}, {"ge", ">="}, {">=", ">="},
                                                               {"in", "in"}};
    for (const auto& [n, op] : kCmp) {
        if (name == n) {
            HR_ASSIGN(Value o, need_arg());
            return compare_op(op, v, o);
        }
    }
    return errorf("No test named '{}'.", name);
}

Result<Value> apply_filter(Interpreter& in, const std::string& name, const Value& v, Args& args, Kwargs& kwargs) {
    const auto a = [&](size_t k, const char* n) { return arg(args, kwargs, k, n); };
    if (name == "trim") {
        auto chars = a(0, "chars");
        std::optional<std::string> c;
        if (chars && chars->is_string()) c = chars->s;
        return Value::string(py_strip(to_str(v), c, true, true));
    }
    if (name == "length" || name == "count") {
        if (!v.is_string() && !v.is_list() && !v.is_dict() && !v.is_undefined()) {
            return errorf("object of type '{}' has no len()", type_name(v));
        }
        return Value::integer(length_of(v));
    }
    if (name == "tojson") {
        auto indent = a(0, "indent");
        auto sort = a(3, "sort_keys");
        const int64_t ind = indent && indent->type == Value::Type::integer ? indent->i : -1;
        if (ind > in.limits().max_json_indent) {
            return errorf("tojson indent {} is more than the limit of {} (Limits::max_json_indent)", ind, in.limits().max_json_indent);
        }
        HR_ASSIGN(std::string s, to_json(v, static_cast<int>(std::max<int64_t>(ind, -1)), sort && truthy(*sort)));
        return Value::string(std::move(s));
    }
    if (name == "lower") return Value::string(ascii_lower(to_str(v)));
    if (name == "upper") return Value::string(ascii_upper(to_str(v)));
    if (name == "title") return Value::string(title_case(to_str(v)));
    if (name == "capitalize") return Value::string(capitalize(to_str(v)));
    if (name == "string") return Value::string(to_str(v));
    if (name == "safe") return v;
    if (name == "e" || name == "escape" || name == "forceescape") return Value::string(html_escape(to_str(v)));
    if (name == "replace") {
        auto from = a(0, "old"), to = a(1, "new"), cnt = a(2, "count");
        if (!from || !to) return make_error("replace filter needs old and new");
        HR_ASSIGN(std::string out, replace_all(in, to_str(v), to_str(*from), to_str(*to),
                                               cnt && cnt->type == Value::Type::integer ? cnt->i : -1));
        return Value::string(std::move(out));
    }
    if (name == "default" || name == "d") {
        auto dflt = a(0, "default_value");
        auto boolean = a(1, "boolean");
        const bool use = v.is_undefined() || (boolean && truthy(*boolean) && !truthy(v));
        return use ? dflt.value_or(Value::string("")) : v;
    }
    if (name == "first" || name == "last") {
        HR_ASSIGN(List items, iterate(in, v));
        if (items.empty()) return Value::undefined(fmt::format("No {} item, sequence was empty.", name));
        return name == "first" ? items.front() : items.back();
    }
    if (name == "join") {
        auto sep = a(0, "d");
        auto attr = a(1, "attribute");
        HR_ASSIGN(List items, iterate(in, v));
        std::string out;
        const std::string sep_s = sep ? to_str(*sep) : std::string();
        for (size_t k = 0; k < items.size(); ++k) {
            std::string piece;
            if (attr) {
                HR_ASSIGN(Value x, attribute_path(in, items[k], to_str(*attr)));
                piece = to_str(x);
            } else {
                piece = to_str(items[k]);
            }
            HR_TRY(in.check_size(out.size() + sep_s.size() + piece.size(), "join"));
            if (k > 0) out += sep_s;
            out += piece;
        }
        return Value::string(std::move(out));
    }
    if (name == "list") {
        HR_ASSIGN(List items, iterate(in, v));
        return Value::make_list(std::move(items));
    }
    if (name == "unique") {
        HR_ASSIGN(List items, iterate(in, v));
        List out;
        for (const Value& x : items) {
            if (std::none_of(out.begin(), out.end(), [&](const Value& y) { return equals(x, y); })) out.push_back(x);
        }
        return Value::make_list(std::move(out));
    }
    if (name == "reverse") {
        if (v.is_string()) {
            auto cps = code_points(v.s);
            std::reverse(cps.begin(), cps.end());
            return Value::string(from_code_points(cps, 0, cps.size()));
        }
        HR_ASSIGN(List items, iterate(in, v));
        std::reverse(items.begin(), items.end());
        return Value::make_list(std::move(items));
    }
    if (name == "items") {
        if (!v.is_dict()) {
            if (v.is_undefined()) return Value::make_list();
            return errorf("items filter expects a mapping, got {}", type_name(v));
        }
        List out;
        for (const auto& kv : v.dict->items) out.push_back(Value::make_list({Value::string(kv.first), kv.second}));
        return Value::make_list(std::move(out));
    }
    if (name == "dictsort") {
        if (!v.is_dict()) return errorf("dictsort filter expects a mapping, got {}", type_name(v));
        auto items = v.dict->items;
        std::stable_sort(items.begin(), items.end(), [](const auto& x, const auto& y) { return ascii_lower(x.first) < ascii_lower(y.first); });
        List out;
        for (const auto& kv : items) out.push_back(Value::make_list({Value::string(kv.first), kv.second}));
        return Value::make_list(std::move(out));
    }
    if (name == "int") {
        if (v.type == Value::Type::integer) return v;
        if (v.type == Value::Type::boolean) return Value::integer(v.b);
        if (v.type == Value::Type::floating) {
            HR_ASSIGN(int64_t x, float_to_int(v.f));
            return Value::integer(x);
        }
        if (v.is_string()) {
            try {
                size_t used = 0;
                const std::string t = py_strip(v.s, std::nullopt, true, true);
                const long long x = std::stoll(t, &used);
                if (used == t.size()) return Value::integer(x);
                HR_ASSIGN(int64_t y, float_to_int(std::stod(t)));
                return Value::integer(y);
            } catch (const std::exception&) {
            }
        }
        auto dflt = a(0, "default");
        return dflt ? *dflt : Value::integer(0);
    }
    if (name == "float") {
        if (v.is_number()) return Value::floating(v.as_double());
        if (v.is_string()) {
            try {
                return Value::floating(std::stod(v.s));
            } catch (const std::exception&) {
            }
        }
        auto dflt = a(0, "default");
        return dflt ? *dflt : Value::floating(0.0);
    }
    if (name == "abs") {
        if (v.type == Value::Type::integer) {
            HR_ASSIGN(int64_t x, checked_int("-", 0, v.i));
            return Value::integer(v.i < 0 ? x : v.i);
        }
        if (v.is_number()) return Value::floating(std::abs(v.as_double()));
        return errorf("bad operand type for abs(): '{}'", type_name(v));
    }
    if (name == "round") {
        if (!v.is_number()) return errorf("round filter expects a number, got {}", type_name(v));
        auto prec = a(0, "precision");
        const double p = std::pow(10.0, prec && prec->type == Value::Type::integer ? static_cast<double>(prec->i) : 0.0);
        return Value::floating(std::round(v.as_double() * p) / p);
    }
    if (name == "sum" || name == "min" || name == "max") {
        HR_ASSIGN(List items, iterate(in, v));
        if (name == "sum") {
            Value acc = a(1, "start").value_or(Value::integer(0));
            auto attr = a(0, "attribute");
            for (const Value& x : items) {
                Value term = x;
                if (attr) {
                    HR_ASSIGN(term, attribute_path(in, x, to_str(*attr)));
                }
                if (!term.is_number() || !acc.is_number()) return make_error("sum filter expects numbers");
                if (acc.type == Value::Type::floating || term.type == Value::Type::floating) {
                    acc = Value::floating(acc.as_double() + term.as_double());
                } else {
                    HR_ASSIGN(int64_t x, checked_int("+", acc.type == Value::Type::boolean ? acc.b : acc.i,
                                                     term.type == Value::Type::boolean ? term.b : term.i));
                    acc = Value::integer(x);
                }
            }
            return acc;
        }
        if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
        Value best = items[0];
        for (const Value& x : items) {
            HR_ASSIGN(bool less, in.compare_op("<", x, best));
            if (name == "min" ? less : !less && !equals(x, best)) best = x;
        }
        return best;
    }
    if (name == "sort") {
        HR_ASSIGN(List items, iterate(in, v));
        auto rev = a(0, "reverse");
        auto attr = a(2, "attribute");
        Status st = ok();
        std::vector<std::pair<Value, Value>> keyed;
        for (const Value& x : items) {
            Value key = x;
            if (attr) {
                HR_ASSIGN(key, attribute_path(in, x, to_str(*attr)));
            }
            if (key.is_string()) key.s = ascii_lower(key.s);
            keyed.emplace_back(key, x);
        }
        std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
            auto r = in.compare_op("<", x.first, y.first);
            if (!r.ok()) {
                st = r.take_error();
                return false;
            }
            return *r;
        });
        HR_TRY(st);
        List out;
        for (auto& kv : keyed) out.push_back(std::move(kv.second));
        if (rev && truthy(*rev)) std::reverse(out.begin(), out.end());
        return Value::make_list(std::move(out));
    }
    if (name == "selectattr" || name == "rejectattr" || name == "select" || name == "reject") {
        const bool by_attr = name == "selectattr" || name == "rejectattr";
        const bool keep = name == "selectattr" || name == "select";
        HR_ASSIGN(List items, iterate(in, v));
        size_t k0 = 0;
        std::string attr;
        if (by_attr) {
            if (args.empty()) return errorf("{} needs an attribute name", name);
            attr = to_str(args[0]);
            k0 = 1;
        }
        std::optional<std::string> test;
        if (args.size() > k0) test = to_str(args[k0]);
        std::vector<Value> test_args(args.begin() + static_cast<std::ptrdiff_t>(std::min(args.size(), k0 + 1)), args.end());
        List out;
        for (const Value& x : items) {
            Value subject = x;
            if (by_attr) {
                HR_ASSIGN(subject, attribute_path(in, x, attr));
            }
            bool r = false;
            if (test) {
                HR_ASSIGN(r, in.apply_test(*test, subject, test_args));
            } else {
                r = truthy(subject);
            }
            if (r == keep) out.push_back(x);
        }
        return Value::make_list(std::move(out));
    }
    if (name == "map") {
        HR_ASSIGN(List items, iterate(in, v));
        List out;
        auto attr = arg({}, kwargs, 0, "attribute");
        if (attr) {
            auto dflt = arg({}, kwargs, 0, "default");
            for (const Value& x : items) {
                HR_ASSIGN(Value y, attribute_path(in, x, to_str(*attr)));
                out.push_back(y.is_undefined() && dflt ? *dflt : y);
            }
            return Value::make_list(std::move(out));
        }
        if (args.empty()) return make_error("map filter needs a filter name or attribute=");
        const std::string fname = to_str(args[0]);
        Args rest(args.begin() + 1, args.end());
        Kwargs no_kw;
        for (const Value& x : items) {
            Args ra = rest;
            HR_ASSIGN(Value y, apply_filter(in, fname, x, ra, no_kw));
            out.push_back(std::move(y));
        }
        return Value::make_list(std::move(out));
    }
    if (name == "indent") {
        auto width = a(0, "width");
        auto first = a(1, "first");
        auto blank = a(2, "blank");
        const size_t pad_n = static_cast<size_t>(width && width->type == Value::Type::integer ? std::max<int64_t>(0, width->i) : 4);
        if (!(width && width->is_string())) HR_TRY(in.check_size(pad_n, "indent"));
        const std::string pad = width && width->is_string() ? width->s : std::string(pad_n, ' ');
        const std::string s = to_str(v);
        std::string out;
        size_t pos = 0;
        bool first_line = true;
        while (pos <= s.size()) {
            size_t e = s.find('\n', pos);
            const std::string line = s.substr(pos, e == std::string::npos ? std::string::npos : e - pos);
            const bool do_pad = (!first_line || (first && truthy(*first))) && (!line.empty() || (blank && truthy(*blank)));
            HR_TRY(in.check_size(out.size() + (do_pad ? pad.size() : 0) + line.size() + 1, "indent"));
            if (do_pad) out += pad;
            out += line;
            if (e == std::string::npos) break;
            out += "\n";
            pos = e + 1;
            first_line = false;
        }
        return Value::string(std::move(out));
    }
    if (name == "wordcount") {
        HR_ASSIGN(Value words, split_str(in, to_str(v), std::nullopt, -1));
        return Value::integer(static_cast<int64_t>(words.list->size()));
    }
    return errorf("No filter named '{}'.", name);
}

void install_globals(Interpreter& in) {
    in.set_global("raise_exception", make_func("raise_exception", [](Interpreter&, Args& a, Kwargs&) -> Result<Value> {
        return make_error(a.empty() ? std::string() : to_str(a[0]));
    }));
    in.set_global("range", make_func("range", [](Interpreter& it, Args& a, Kwargs&) -> Result<Value> {
        int64_t start = 0, stop = 0, step = 1;
        for (const Value& x : a) {
            if (x.type != Value::Type::integer) return errorf("'{}' object cannot be interpreted as an integer", type_name(x));
        }
        if (a.size() == 1) stop = a[0].i;
        else if (a.size() >= 2) {
            start = a[0].i;
            stop = a[1].i;
            if (a.size() >= 3) step = a[2].i;
        } else {
            return make_error("range expected at least 1 argument, got 0");
        }
        if (step == 0) return make_error("range() arg 3 must not be zero");
        List out;
        for (int64_t k = start; step > 0 ? k < stop : k > stop;) {
            HR_TRY(it.count_iteration());
            HR_TRY(it.check_items(out.size() + 1, "range()"));
            out.push_back(Value::integer(k));
            if (__builtin_add_overflow(k, step, &k)) break;  // the next one would pass INT64 limits: past stop
        }
        return Value::make_list(std::move(out));
    }));
    in.set_global("namespace", make_func("namespace", [](Interpreter& it, Args& a, Kwargs& kw) -> Result<Value> {
        Value ns = Value::make_dict();
        ns.is_namespace = true;
        it.track_namespace(ns.dict);
        for (const Value& x : a) {
            if (x.is_dict()) {
                for (const auto& kv : x.dict->items) ns.dict->set(kv.first, kv.second);
            }
        }
        for (const auto& kv : kw) ns.dict->set(kv.first, kv.second);
        return ns;
    }));
    in.set_global("dict", make_func("dict", [](Interpreter&, Args& a, Kwargs& kw) -> Result<Value> {
        Value d = Value::make_dict();
        for (const Value& x : a) {
            if (x.is_dict()) {
                for (const auto& kv : x.dict->items) d.dict->set(kv.first, kv.second);
            }
        }
        for (const auto& kv : kw) d.dict->set(kv.first, kv.second);
        return d;
    }));
    in.set_global("strftime_now", make_func("strftime_now", [](Interpreter&, Args& a, Kwargs&) -> Result<Value> {
        if (a.empty() || !a[0].is_string()) return make_error("strftime_now() expects a format string");
        const std::time_t now = std::time(nullptr);
        std::tm tm{};
        localtime_r(&now, &tm);
        char buf[256];
        const size_t n = std::strftime(buf, sizeof(buf), a[0].s.c_str(), &tm);
        return Value::string(std::string(buf, n));
    }));
}

}  // namespace hr::jinja
