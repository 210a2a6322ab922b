// Jinja evaluator: statements, expressions with Python operator semantics, scoping as jinja2 does it
// (loop bodies and macros get their own scope), the sandbox (no mutating methods, no I/O) and caps.
#include <algorithm>
#include <cmath>
#include <ctime>
#include <unordered_map>

#include "core/utf8.h"
#include "jinja/ast.h"
#include "jinja/builtins.h"

namespace hr::jinja {

Interpreter::Interpreter(const Limits& limits) : limits_(limits) {
    scopes_.push_back(std::make_shared<Frame>());
}

Interpreter::~Interpreter() {
    for (const auto& w : namespaces_) {
        // Move the items out before they die: destroying them may release other namespaces.
        if (auto d = w.lock()) std::vector<std::pair<std::string, Value>>(std::move(d->items)).clear();
    }
}

Value* Interpreter::lookup(const std::string& name) {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
        auto f = (*it)->find(name);
        if (f != (*it)->end()) return &f->second;
    }
    auto g = globals_.find(name);
    return g == globals_.end() ? nullptr : &g->second;
}

void Interpreter::set_var(const std::string& name, Value v) {
    Frame& f = *scopes_.back();
    if (accounting_) {
        auto old = f.find(name);
        if (old != f.end()) release_bytes(account_bytes(old->second));
        variable_bytes_ += account_bytes(v);
    }
    f[name] = std::move(v);
}

// note: counted up to just past the cap, so that storing and releasing the same value count the same and
// a huge value costs no more than the cap to measure.
size_t Interpreter::account_bytes(const Value& v) const { return value_bytes(v, limits_.max_variable_bytes, false); }

void Interpreter::release_bytes(size_t n) { variable_bytes_ -= std::min(n, variable_bytes_); }

void Interpreter::release_frame(const Frame& f) {
    if (!accounting_) return;
    for (const auto& kv : f) release_bytes(account_bytes(kv.second));
}

Status Interpreter::check_variables() const {
    if (variable_bytes_ > limits_.max_variable_bytes) {
        return errorf("chat template variables hold more than the limit of {} bytes (Limits::max_variable_bytes)",
                      limits_.max_variable_bytes);
    }
    return ok();
}

Status Interpreter::check_value(const Value& v) const {
    const size_t n = value_bytes(v, limits_.max_value_bytes, true);
    if (n > limits_.max_value_bytes) {
        return errorf("chat template value exceeds the limit of {} bytes (Limits::max_value_bytes)", limits_.max_value_bytes);
    }
    return ok();
}

Status Interpreter::check_size(size_t bytes, const char* what) const {
    if (bytes > limits_.max_value_bytes) {
        return errorf("chat template: {} would make {} bytes, more than the limit of {} (Limits::max_value_bytes)", what,
                      bytes, limits_.max_value_bytes);
    }
    return ok();
}

Status Interpreter::check_items(size_t items, const char* what) const {
    const size_t cap = limits_.max_value_bytes / sizeof(Value);
    if (items > cap) {
        return errorf("chat template: {} would make a list of {} items, more than the limit of {} ({} bytes, "
                      "Limits::max_value_bytes)", what, items, cap, limits_.max_value_bytes);
    }
    return ok();
}

size_t value_bytes(const Value& v, size_t stop_above, bool deep_namespaces) {
    size_t n = sizeof(Value) + v.s.size();
    if (v.is_list()) {
        for (const Value& x : *v.list) {
            if (n > stop_above) break;
            n += value_bytes(x, stop_above - std::min(n, stop_above), deep_namespaces);
        }
    } else if (v.is_dict() && (deep_namespaces || !v.is_namespace)) {
        for (const auto& kv : v.dict->items) {
            if (n > stop_above) break;
            n += kv.first.size() + value_bytes(kv.second, stop_above - std::min(n, stop_above), deep_namespaces);
        }
    }
    return n;
}

Status Interpreter::emit(std::string_view s) {
    if (out_->size() + s.size() > limits_.max_output_bytes) {
        return errorf("chat template output exceeds the limit of {} bytes", limits_.max_output_bytes);
    }
    out_->append(s);
    return ok();
}

Status Interpreter::count_iteration() {
    if (++iterations_ > limits_.max_loop_iterations) {
        return errorf("chat template exceeds the limit of {} loop iterations", limits_.max_loop_iterations);
    }
    return ok();
}

Status Interpreter::exec_body(const Body& body) {
    for (const StmtPtr& s : body) {
        HR_TRY(exec(*s));
        if (flow_ != Flow::normal) return ok();
    }
    return ok();
}

Status Interpreter::assign_targets(const std::vector<std::string>& targets, const Value& v) {
    if (targets.size() == 1) {
        set_var(targets[0], v);
        return ok();
    }
    const List* items = nullptr;
    List chars;
    if (v.is_list()) {
        items = v.list.get();
    } else if (v.is_string()) {
        const auto cps = code_points(v.s);
        if (cps.size() != targets.size()) {  // checked first: a 16 MiB string must not become 16M values
            return errorf("{} values to unpack (expected {}, got {})", cps.size() > targets.size() ? "too many" : "not enough",
                          targets.size(), cps.size());
        }
        for (uint32_t cp : cps) chars.push_back(Value::string(from_code_points({cp}, 0, 1)));
        items = &chars;
    } else {
        return errorf("cannot unpack non-iterable {} object", type_name(v));
    }
    if (items->size() != targets.size()) {
        return errorf("{} values to unpack (expected {}, got {})", items->size() > targets.size() ? "too many" : "not enough",
                      targets.size(), items->size());
    }
    for (size_t k = 0; k < targets.size(); ++k) set_var(targets[k], (*items)[k]);
    return ok();
}

Status Interpreter::exec(const Stmt& s) {
    if (++depth_ > limits_.max_depth) return make_error("chat template nesting exceeds the depth limit");
    struct DepthGuard {
        size_t& d;
        ~DepthGuard() { --d; }
    } guard{depth_};
    switch (s.kind) {
        case Stmt::Kind::text: return emit(s.text);
        case Stmt::Kind::output: {
            HR_ASSIGN(Value v, eval(*s.expr));
            return emit(to_str(v));
        }
        case Stmt::Kind::if_:
            for (const auto& [cond, body] : s.branches) {
                HR_ASSIGN(Value c, eval(*cond));
                if (truthy(c)) return exec_body(body);
            }
            return exec_body(s.else_body);
        case Stmt::Kind::for_: return exec_for(s);
        case Stmt::Kind::set: {
            HR_ASSIGN(Value v, eval(*s.expr));
            if (s.attr_target) {
                Value* ns = lookup(s.targets[0]);
                if (ns == nullptr || !ns->is_dict() || !ns->is_namespace) {
                    return make_error("cannot assign attribute on non-namespace object");
                }
                if (accounting_) {
                    if (const Value* old = ns->dict->find(s.targets[1])) release_bytes(account_bytes(*old));
                    variable_bytes_ += account_bytes(v);
                }
                ns->dict->set(s.targets[1], std::move(v));
                return check_variables();
            }
            HR_TRY(assign_targets(s.targets, v));
            return check_variables();
        }
        case Stmt::Kind::set_block: {
            std::string captured;
            std::string* saved = out_;
            out_ = &captured;
            Status st = exec_body(s.body);
            out_ = saved;
            HR_TRY(st);
            set_var(s.targets[0], Value::string(std::move(captured)));
            return check_variables();
        }
        case Stmt::Kind::macro: {
            auto f = std::make_shared<Func>();
            f->name = s.name;
            const Stmt* def = &s;
            f->call = [def](Interpreter& in, std::vector<Value>& args,
                            std::vector<std::pair<std::string, Value>>& kwargs) -> Result<Value> {
                return in.call_macro(*def, args, kwargs);
            };
            Value v;
            v.type = Value::Type::func;
            v.func = std::move(f);
            set_var(s.name, std::move(v));
            return ok();
        }
        case Stmt::Kind::break_: flow_ = Flow::break_; return ok();
        case Stmt::Kind::continue_: flow_ = Flow::continue_; return ok();
        case Stmt::Kind::block: return exec_body(s.body);
    }
    return ok();
}

Result<Value> Interpreter::call_macro(const Stmt& def, std::vector<Value>& args,
                                      std::vector<std::pair<std::string, Value>>& kwargs) {
    if (args.size() > def.params.size()) {
        return errorf("macro '{}' takes not more than {} argument(s)", def.name, def.params.size());
    }
    auto saved = scopes_;
    scopes_ = {saved.front(), std::make_shared<Frame>()};
    Status st = ok();
    for (size_t k = 0; k < def.params.size() && st.ok(); ++k) {
        const std::string& pname = def.params[k].first;
        Value v;
        bool found = false;
        if (k < args.size()) {
            v = args[k];
            found = true;
        }
        for (auto& kv : kwargs) {
            if (kv.first == pname) {
                v = kv.second;
                found = true;
            }
        }
        if (!found && def.params[k].second) {
            auto d = eval(*def.params[k].second);
            if (!d.ok()) st = d.take_error();
            else v = std::move(d).value();
        } else if (!found) {
            v = Value::undefined(fmt::format("'{}' is undefined", pname));
        }
        set_var(pname, std::move(v));
    }
    std::string captured;
    std::string* saved_out = out_;
    out_ = &captured;
    if (st.ok()) st = check_variables();
    if (st.ok()) st = exec_body(def.body);
    out_ = saved_out;
    flow_ = Flow::normal;
    release_frame(*scopes_.back());
    scopes_ = std::move(saved);
    if (!st.ok()) return st.take_error();
    return Value::string(std::move(captured));
}

Status Interpreter::exec_for(const Stmt& s) {
    HR_ASSIGN(Value seq, eval(*s.expr));
    List items;
    if (seq.is_list()) {
        items = *seq.list;
    } else if (seq.is_dict()) {
        for (const auto& kv : seq.dict->items) items.push_back(Value::string(kv.first));
    } else if (seq.is_string()) {
        const auto cps = code_points(seq.s);
        HR_TRY(check_items(cps.size(), "iterating over a string"));
        for (uint32_t cp : cps) items.push_back(Value::string(from_code_points({cp}, 0, 1)));
    } else if (!seq.is_undefined()) {
        return errorf("'{}' object is not iterable", type_name(seq));
    }
    scopes_.push_back(std::make_shared<Frame>());
    struct PopGuard {
        Interpreter& in;
        ~PopGuard() {
            in.release_frame(*in.scopes_.back());
            in.scopes_.pop_back();
        }
    } pop{*this};
    if (s.cond) {
        List kept;
        for (Value& it : items) {
            HR_TRY(count_iteration());
            HR_TRY(assign_targets(s.targets, it));
            HR_ASSIGN(Value c, eval(*s.cond));
            if (truthy(c)) kept.push_back(std::move(it));
        }
        items = std::move(kept);
    }
    if (items.empty()) return exec_body(s.else_body);
    const auto n = static_cast<int64_t>(items.size());
    for (int64_t k = 0; k < n; ++k) {
        HR_TRY(count_iteration());
        Value loop = Value::make_dict();
        Dict& d = *loop.dict;
        d.set("index", Value::integer(k + 1));
        d.set("index0", Value::integer(k));
        d.set("revindex", Value::integer(n - k));
        d.set("revindex0", Value::integer(n - k - 1));
        d.set("first", Value::boolean(k == 0));
        d.set("last", Value::boolean(k == n - 1));
        d.set("length", Value::integer(n));
        d.set("depth", Value::integer(1));
        d.set("depth0", Value::integer(0));
        d.set("previtem", k > 0 ? items[k - 1] : Value::undefined("there is no previous item"));
        d.set("nextitem", k + 1 < n ? items[k + 1] : Value::undefined("there is no next item"));
        auto cycle = std::make_shared<Func>();
        cycle->name = "cycle";
        cycle->call = [k](Interpreter&, std::vector<Value>& args, std::vector<std::pair<std::string, Value>>&) -> Result<Value> {
            if (args.empty()) return make_error("no items for cycling given");
            return args[static_cast<size_t>(k) % args.size()];
        };
        Value cv;
        cv.type = Value::Type::func;
        cv.func = std::move(cycle);
        d.set("cycle", std::move(cv));
        set_var("loop", std::move(loop));
        HR_TRY(assign_targets(s.targets, items[k]));
        HR_TRY(check_variables());
        HR_TRY(exec_body(s.body));
        if (flow_ == Flow::break_) {
            flow_ = Flow::normal;
            break;
        }
        flow_ = Flow::normal;
    }
    return ok();
}

// ---- expressions ----

Result<Value> Interpreter::eval(const Expr& e) {
    HR_ASSIGN(Value v, eval_inner(e));
    switch (e.kind) {
        case Expr::Kind::literal:
        case Expr::Kind::name:
        case Expr::Kind::getattr:
        case Expr::Kind::getitem:
        case Expr::Kind::test:
        case Expr::Kind::compare:
        case Expr::Kind::cond: return v;  // nothing new was built
        default: break;
    }
    if (v.is_string()) {
        if (v.s.size() > limits_.max_value_bytes) HR_TRY(check_value(v));
    } else if (v.is_list() || v.is_dict()) {
        HR_TRY(check_value(v));
    }
    return v;
}

Result<Value> Interpreter::eval_inner(const Expr& e) {
    if (++depth_ > limits_.max_depth * 4) return make_error("chat template expression exceeds the depth limit");
    struct DepthGuard {
        size_t& d;
        ~DepthGuard() { --d; }
    } guard{depth_};
    switch (e.kind) {
        case Expr::Kind::literal: return e.value;
        case Expr::Kind::name: {
            if (Value* v = lookup(e.name)) return *v;
            return Value::undefined(fmt::format("'{}' is undefined", e.name));
        }
        case Expr::Kind::list:
        case Expr::Kind::tuple: {
            List items;
            for (const auto& a : e.args) {
                HR_ASSIGN(Value v, eval(*a));
                items.push_back(std::move(v));
            }
            return Value::make_list(std::move(items));
        }
        case Expr::Kind::dict: {
            Value d = Value::make_dict();
            for (size_t k = 0; k < e.args.size(); ++k) {
                HR_ASSIGN(Value key, eval(*e.args[k]));
                if (!key.is_string()) return make_error("chat template dict keys must be strings");
                HR_ASSIGN(Value val, eval(*e.args2[k]));
                d.dict->set(key.s, std::move(val));
            }
            return d;
        }
        case Expr::Kind::getattr: {
            HR_ASSIGN(Value obj, eval(*e.a));
            return get_attr(obj, e.name);
        }
        case Expr::Kind::getitem: {
            HR_ASSIGN(Value obj, eval(*e.a));
            HR_ASSIGN(Value key, eval(*e.b));
            return get_item(obj, key);
        }
        case Expr::Kind::slice: {
            HR_ASSIGN(Value obj, eval(*e.a));
            std::optional<int64_t> parts[3];
            for (int k = 0; k < 3; ++k) {
                if (!e.args[k]) continue;
                HR_ASSIGN(Value p, eval(*e.args[k]));
                if (p.is_none()) continue;
                if (p.type != Value::Type::integer && p.type != Value::Type::boolean) {
                    return make_error("slice indices must be integers or None");
                }
                parts[k] = p.type == Value::Type::boolean ? int64_t{p.b} : p.i;
            }
            return slice(obj, parts[0], parts[1], parts[2]);
        }
        case Expr::Kind::call: {
            HR_ASSIGN(Value fn, eval(*e.a));
            std::vector<Value> args;
            std::vector<std::pair<std::string, Value>> kwargs;
            HR_TRY(eval_args(e, args, kwargs));
            if (fn.type != Value::Type::func) {
                if (fn.is_undefined()) return make_error(fn.s.empty() ? "undefined is not callable" : fn.s);
                return errorf("'{}' object is not callable", type_name(fn));
            }
            return fn.func->call(*this, args, kwargs);
        }
        case Expr::Kind::filter: {
            HR_ASSIGN(Value v, eval(*e.a));
            std::vector<Value> args;
            std::vector<std::pair<std::string, Value>> kwargs;
            HR_TRY(eval_args(e, args, kwargs));
            return apply_filter(*this, e.name, v, args, kwargs);
        }
        case Expr::Kind::test: {
            HR_ASSIGN(Value v, eval(*e.a));
            std::vector<Value> args;
            std::vector<std::pair<std::string, Value>> kwargs;
            HR_TRY(eval_args(e, args, kwargs));
            HR_ASSIGN(bool r, apply_test(e.name, v, args));
            return Value::boolean(r != e.negate);
        }
        case Expr::Kind::unary: {
            HR_ASSIGN(Value v, eval(*e.a));
            if (e.op == "not") return Value::boolean(!truthy(v));
            if (v.type == Value::Type::integer || v.type == Value::Type::boolean) {
                const int64_t x = v.type == Value::Type::boolean ? v.b : v.i;
                if (e.op == "-") {
                    HR_ASSIGN(int64_t neg, checked_int("-", 0, x));
                    return Value::integer(neg);
                }
                return Value::integer(x);
            }
            if (v.type == Value::Type::floating) return Value::floating(e.op == "-" ? -v.f : v.f);
            return errorf("bad operand type for unary {}: '{}'", e.op, type_name(v));
        }
        case Expr::Kind::binary: {
            HR_ASSIGN(Value l, eval(*e.a));
            if (e.op == "and") {
                if (!truthy(l)) return l;
                return eval(*e.b);
            }
            if (e.op == "or") {
                if (truthy(l)) return l;
                return eval(*e.b);
            }
            HR_ASSIGN(Value r, eval(*e.b));
            return binary_op(e.op, l, r);
        }
        case Expr::Kind::compare: {
            HR_ASSIGN(Value left, eval(*e.a));
            for (size_t k = 0; k < e.ops.size(); ++k) {
                HR_ASSIGN(Value right, eval(*e.args[k]));
                HR_ASSIGN(bool r, compare_op(e.ops[k], left, right));
                if (!r) return Value::boolean(false);
                left = std::move(right);
            }
            return Value::boolean(true);
        }
        case Expr::Kind::cond: {
            HR_ASSIGN(Value c, eval(*e.a));
            if (truthy(c)) return eval(*e.args[0]);
            if (e.args[1]) return eval(*e.args[1]);
            return Value::undefined("the inline if-expression evaluated to false and no else section was defined");
        }
    }
    return make_error("chat template: unknown expression");
}

Status Interpreter::eval_args(const Expr& e, std::vector<Value>& args, std::vector<std::pair<std::string, Value>>& kwargs) {
    for (const auto& a : e.args) {
        HR_ASSIGN(Value v, eval(*a));
        args.push_back(std::move(v));
    }
    for (const auto& [k, a] : e.kwargs) {
        HR_ASSIGN(Value v, eval(*a));
        kwargs.emplace_back(k, std::move(v));
    }
    return ok();
}

Result<Value> Interpreter::get_attr(const Value& obj, const std::string& name) {
    if (obj.is_undefined()) return make_error(obj.s.empty() ? "undefined value has no attributes" : obj.s);
    if (auto m = method(obj, name)) return *m;
    if (obj.is_dict()) {
        if (const Value* v = obj.dict->find(name)) return *v;
        return Value::undefined(fmt::format("'{}' has no attribute '{}'", obj.is_namespace ? "Namespace" : "dict object", name));
    }
    return Value::undefined(fmt::format("'{}' object has no attribute '{}'", type_name(obj), name));
}

Result<Value> Interpreter::get_item(const Value& obj, const Value& key) {
    if (obj.is_undefined()) return make_error(obj.s.empty() ? "undefined value is not subscriptable" : obj.s);
    if (obj.is_dict()) {
        if (key.is_string()) {
            if (const Value* v = obj.dict->find(key.s)) return *v;
            if (auto m = method(obj, key.s)) return *m;
            return Value::undefined(fmt::format("'dict object' has no attribute '{}'", key.s));
        }
        return Value::undefined(fmt::format("'dict object' has no attribute {}", repr(key)));
    }
    if ((obj.is_list() || obj.is_string()) && (key.type == Value::Type::integer || key.type == Value::Type::boolean)) {
        int64_t idx = key.type == Value::Type::boolean ? key.b : key.i;
        if (obj.is_list()) {
            const auto n = static_cast<int64_t>(obj.list->size());
            if (idx < 0) idx += n;
            if (idx < 0 || idx >= n) return Value::undefined(fmt::format("list object has no element {}", key.i));
            return (*obj.list)[static_cast<size_t>(idx)];
        }
        const auto cps = code_points(obj.s);
        const auto n = static_cast<int64_t>(cps.size());
        if (idx < 0) idx += n;
        if (idx < 0 || idx >= n) return Value::undefined(fmt::format("str object has no element {}", key.i));
        return Value::string(from_code_points(cps, static_cast<size_t>(idx), static_cast<size_t>(idx) + 1));
    }
    if (key.is_string()) return get_attr(obj, key.s);
    return Value::undefined(fmt::format("'{}' object has no element {}", type_name(obj), repr(key)));
}

Result<Value> Interpreter::slice(const Value& obj, std::optional<int64_t> start, std::optional<int64_t> stop,
                                 std::optional<int64_t> step) {
    const int64_t st = step.value_or(1);
    if (st == 0) return make_error("slice step cannot be zero");
    std::vector<uint32_t> cps;
    int64_t n = 0;
    if (obj.is_list()) {
        n = static_cast<int64_t>(obj.list->size());
    } else if (obj.is_string()) {
        cps = code_points(obj.s);
        n = static_cast<int64_t>(cps.size());
    } else {
        if (obj.is_undefined()) return make_error(obj.s.empty() ? "undefined value is not subscriptable" : obj.s);
        return errorf("'{}' object is not subscriptable", type_name(obj));
    }
    // Python's slice.indices().
    const auto clamp = [&](std::optional<int64_t> v, int64_t dflt, int64_t lo, int64_t hi) {
        if (!v) return dflt;
        int64_t x = *v;
        if (x < 0) x += n;
        return std::clamp(x, lo, hi);
    };
    int64_t b, e;
    if (st > 0) {
        b = clamp(start, 0, 0, n);
        e = clamp(stop, n, 0, n);
    } else {
        b = clamp(start, n - 1, -1, n - 1);
        e = clamp(stop, -1, -1, n - 1);
    }
    // note: b and e are in [-1, n], so k + st cannot overflow before the loop condition fails
    // unless st is huge: the step is applied with an overflow check.
    const auto next = [&](int64_t& k) { return !__builtin_add_overflow(k, st, &k); };
    if (obj.is_list()) {
        List out;
        for (int64_t k = b; st > 0 ? k < e : k > e;) {
            out.push_back((*obj.list)[static_cast<size_t>(k)]);
            if (!next(k)) break;
        }
        return Value::make_list(std::move(out));
    }
    std::string out;
    for (int64_t k = b; st > 0 ? k < e : k > e;) {
        utf8::append_cp(out, cps[static_cast<size_t>(k)]);
        if (!next(k)) break;
    }
    return Value::string(std::move(out));
}

Result<int64_t> checked_int(const std::string& op, int64_t a, int64_t b) {
    int64_t out = 0;
    bool overflow = false;
    if (op == "+") overflow = __builtin_add_overflow(a, b, &out);
    else if (op == "-") overflow = __builtin_sub_overflow(a, b, &out);
    else if (op == "*") overflow = __builtin_mul_overflow(a, b, &out);
    else if (op == "//") {
        overflow = a == INT64_MIN && b == -1;
        if (!overflow) out = a / b;
    } else if (op == "**") {
        // exponentiation by squaring, every step checked (b >= 0)
        int64_t base = a, e = b;
        out = 1;
        while (e > 0 && !overflow) {
            if (e & 1) overflow = __builtin_mul_overflow(out, base, &out);
            e >>= 1;
            if (e > 0 && !overflow) overflow = __builtin_mul_overflow(base, base, &base);
        }
    } else {
        return errorf("chat template: unknown integer operator {}", op);
    }
    if (overflow) {
        return errorf("chat template integer overflow: {} {} {} does not fit in 64 bits (headroom's template integers "
                      "are int64; Python would make a big integer)", a, op, b);
    }
    return out;
}

Result<Value> Interpreter::binary_op(const std::string& op, const Value& l, const Value& r) {
    if (op == "~") {
        std::string ls = to_str(l), rs = to_str(r);
        HR_TRY(check_size(ls.size() + rs.size(), "'~'"));
        return Value::string(ls + rs);
    }
    if (l.is_undefined() && !l.s.empty()) return make_error(l.s);
    if (r.is_undefined() && !r.s.empty()) return make_error(r.s);
    const bool nums = l.is_number() && r.is_number();
    const bool ints = nums && l.type != Value::Type::floating && r.type != Value::Type::floating;
    const auto li = [&] { return l.type == Value::Type::boolean ? int64_t{l.b} : l.i; };
    const auto ri = [&] { return r.type == Value::Type::boolean ? int64_t{r.b} : r.i; };
    const auto unsupported = [&]() {
        return errorf("unsupported operand type(s) for {}: '{}' and '{}'", op, type_name(l), type_name(r));
    };
    if (op == "+") {
        if (ints) {
            HR_ASSIGN(int64_t x, checked_int(op, li(), ri()));
            return Value::integer(x);
        }
        if (nums) return Value::floating(l.as_double() + r.as_double());
        if (l.is_string() && r.is_string()) {
            HR_TRY(check_size(l.s.size() + r.s.size(), "'+' of two strings"));
            return Value::string(l.s + r.s);
        }
        if (l.is_list() && r.is_list()) {
            HR_TRY(check_items(l.list->size() + r.list->size(), "'+' of two lists"));
            List out = *l.list;
            out.insert(out.end(), r.list->begin(), r.list->end());
            return Value::make_list(std::move(out));
        }
        if (l.is_string()) return errorf("can only concatenate str (not \"{}\") to str", type_name(r));
        if (l.is_list()) return errorf("can only concatenate list (not \"{}\") to list", type_name(r));
        return unsupported();
    }
    if (op == "-") {
        if (ints) {
            HR_ASSIGN(int64_t x, checked_int(op, li(), ri()));
            return Value::integer(x);
        }
        if (nums) return Value::floating(l.as_double() - r.as_double());
        return unsupported();
    }
    if (op == "*") {
        if (ints) {
            HR_ASSIGN(int64_t x, checked_int(op, li(), ri()));
            return Value::integer(x);
        }
        if (nums) return Value::floating(l.as_double() * r.as_double());
        const Value* seq = l.is_string() || l.is_list() ? &l : (r.is_string() || r.is_list() ? &r : nullptr);
        const Value* cnt = seq == &l ? &r : &l;
        if (seq != nullptr && (cnt->type == Value::Type::integer || cnt->type == Value::Type::boolean)) {
            const int64_t times = std::max<int64_t>(0, cnt->type == Value::Type::boolean ? cnt->b : cnt->i);
            // deep size of one copy (list items are copied, strings and all)
            const size_t unit = seq->is_string() ? seq->s.size() : value_bytes(*seq, limits_.max_value_bytes, true);
            size_t total = 0;
            if (__builtin_mul_overflow(unit, static_cast<uint64_t>(times), &total)) total = SIZE_MAX;
            HR_TRY(check_size(total, "repetition with '*'"));
            if (seq->is_string()) {
                std::string out;
                for (int64_t k = 0; k < times; ++k) out += seq->s;
                return Value::string(std::move(out));
            }
            List out;
            for (int64_t k = 0; k < times; ++k) out.insert(out.end(), seq->list->begin(), seq->list->end());
            return Value::make_list(std::move(out));
        }
        return unsupported();
    }
    if (op == "/" || op == "//" || op == "%") {
        if (!nums) return unsupported();
        if (r.as_double() == 0.0) return make_error(op == "%" ? "integer modulo by zero" : "division by zero");
        if (op == "/") return Value::floating(l.as_double() / r.as_double());
        if (ints) {
            const int64_t a = li(), b = ri();
            if (b == -1) {  // a / -1 traps for INT64_MIN in C++; Python's a % -1 is always 0
                if (op == "%") return Value::integer(0);
                HR_ASSIGN(int64_t neg, checked_int("//", a, b));
                return Value::integer(neg);
            }
            int64_t q = a / b, m = a % b;
            if (m != 0 && ((m < 0) != (b < 0))) {
                q -= 1;
                m += b;
            }
            return Value::integer(op == "//" ? q : m);
        }
        const double a = l.as_double(), b = r.as_double();
        const double q = std::floor(a / b);
        return Value::floating(op == "//" ? q : a - q * b);
    }
    if (op == "**") {
        if (ints && ri() >= 0) {
            HR_ASSIGN(int64_t x, checked_int(op, li(), ri()));
            return Value::integer(x);
        }
        if (nums) return Value::floating(std::pow(l.as_double(), r.as_double()));
        return unsupported();
    }
    return errorf("chat template: unknown operator {}", op);
}

Result<bool> Interpreter::compare_op(const std::string& op, const Value& l, const Value& r) {
    if (op == "==") return equals(l, r);
    if (op == "!=") return !equals(l, r);
    if (op == "in" || op == "not in") {
        bool found = false;
        if (r.is_string()) {
            if (!l.is_string()) return errorf("'in <string>' requires string as left operand, not {}", type_name(l));
            found = r.s.find(l.s) != std::string::npos;
        } else if (r.is_list()) {
            found = std::any_of(r.list->begin(), r.list->end(), [&](const Value& x) { return equals(x, l); });
        } else if (r.is_dict()) {
            found = l.is_string() && r.dict->find(l.s) != nullptr;
        } else if (r.is_undefined()) {
            found = false;
        } else {
            return errorf("argument of type '{}' is not iterable", type_name(r));
        }
        return op == "in" ? found : !found;
    }
    int c = 0;
    const bool ints = l.is_number() && r.is_number() && l.type != Value::Type::floating && r.type != Value::Type::floating;
    if (ints) {
        const int64_t a = l.type == Value::Type::boolean ? l.b : l.i, b = r.type == Value::Type::boolean ? r.b : r.i;
        c = a < b ? -1 : (a > b ? 1 : 0);
    } else if (l.is_number() && r.is_number()) {
        c = l.as_double() < r.as_double() ? -1 : (l.as_double() > r.as_double() ? 1 : 0);
    } else if (l.is_string() && r.is_string()) {
        c = l.s < r.s ? -1 : (l.s > r.s ? 1 : 0);
    } else {
        return errorf("'{}' not supported between instances of '{}' and '{}'", op, type_name(l), type_name(r));
    }
    if (op == "<") return c < 0;
    if (op == "<=") return c <= 0;
    if (op == ">") return c > 0;
    return c >= 0;
}

Result<std::string> Interpreter::run(const Body& body) {
    std::string out;
    out_ = &out;
    HR_TRY(exec_body(body));
    return out;
}

Result<Template> Template::compile(const std::string& source, const Limits& limits) {
    HR_ASSIGN(Body body, parse_template(source, limits));
    Template t;
    t.body_ = std::make_shared<const Body>(std::move(body));
    t.limits_ = limits;
    return t;
}

Result<std::string> Template::render(const nlohmann::ordered_json& context) const {
    Interpreter in(limits_);
    install_globals(in);
    if (context.is_object()) {
        for (auto it = context.begin(); it != context.end(); ++it) in.set_var(it.key(), from_json(it.value()));
    } else if (!context.is_null()) {
        return make_error("chat template context must be a JSON object");
    }
    in.start_accounting();
    return in.run(*body_);
}

Result<std::string> render(const std::string& source, const nlohmann::ordered_json& context, const Limits& limits) {
    HR_ASSIGN(Template t, Template::compile(source, limits));
    return t.render(context);
}

}  // namespace hr::jinja
