// The Jinja interpreter state and its builtins (filters, tests, methods, globals); internal.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "jinja/ast.h"

namespace hr::jinja {

using Frame = std::unordered_map<std::string, Value>;
using Kwargs = std::vector<std::pair<std::string, Value>>;

class Interpreter {
public:
    explicit Interpreter(const Limits& limits);
    // Empties every namespace() made during the run: a namespace is the only mutable value, so it is
    // the only way to build a reference cycle (`set ns.self = ns`), which shared_ptr alone would leak.
    ~Interpreter();
    Interpreter(const Interpreter&) = delete;
    Interpreter& operator=(const Interpreter&) = delete;
    void track_namespace(const std::shared_ptr<Dict>& d) { namespaces_.push_back(d); }
    Result<std::string> run(const Body& body);
    void set_var(const std::string& name, Value v);
    void set_global(const std::string& name, Value v) { globals_[name] = std::move(v); }
    const Limits& limits() const { return limits_; }

    Result<Value> eval(const Expr& e);
    Result<Value> call_macro(const Stmt& def, std::vector<Value>& args, Kwargs& kwargs);
    Result<Value> get_attr(const Value& obj, const std::string& name);
    Result<Value> get_item(const Value& obj, const Value& key);
    Result<bool> apply_test(const std::string& name, const Value& v, const std::vector<Value>& args);
    Result<bool> compare_op(const std::string& op, const Value& l, const Value& r);
    Status count_iteration();
    // Memory caps (Limits::max_value_bytes): a built value, a size about to be built, a list length.
    Status check_value(const Value& v) const;
    Status check_size(size_t bytes, const char* what) const;
    Status check_items(size_t items, const char* what) const;
    // From here on, values stored in variables count against Limits::max_variable_bytes (the
    // caller's context does not).
    void start_accounting() { accounting_ = true; }

private:
    enum class Flow { normal, break_, continue_ };
    Value* lookup(const std::string& name);
    Status emit(std::string_view s);
    Status exec(const Stmt& s);
    Status exec_body(const Body& body);
    Status exec_for(const Stmt& s);
    Status assign_targets(const std::vector<std::string>& targets, const Value& v);
    Status eval_args(const Expr& e, std::vector<Value>& args, Kwargs& kwargs);
    Result<Value> eval_inner(const Expr& e);
    void release_bytes(size_t n);
    size_t account_bytes(const Value& v) const;
    void release_frame(const Frame& f);
    Status check_variables() const;
    Result<Value> slice(const Value& obj, std::optional<int64_t> start, std::optional<int64_t> stop, std::optional<int64_t> step);
    Result<Value> binary_op(const std::string& op, const Value& l, const Value& r);
    // A bound method of obj (str.strip, dict.items, ...), or nullopt if obj has none by that name.
    std::optional<Value> method(const Value& obj, const std::string& name);

    const Limits& limits_;
    std::vector<std::shared_ptr<Frame>> scopes_;
    Frame globals_;
    std::string* out_ = nullptr;
    Flow flow_ = Flow::normal;
    size_t iterations_ = 0;
    size_t depth_ = 0;
    bool accounting_ = false;
    std::vector<std::weak_ptr<Dict>> namespaces_;  // every namespace() of this run (see ~Interpreter)
    size_t variable_bytes_ = 0;  // deep size of the values stored in variables (namespaces: their attributes)

    friend std::optional<Value> bound_method(Interpreter&, const Value&, const std::string&);
};

// a op b for op in + - * // ** (b >= 0), or an error naming the operation when the result does not
// fit in int64 (Python would make a big integer).
Result<int64_t> checked_int(const std::string& op, int64_t a, int64_t b);
// Approximate heap bytes of v (its Value, strings, list items and dict entries, deep), counting at most
// a little past stop_above; namespaces count their attributes only when deep_namespaces.
size_t value_bytes(const Value& v, size_t stop_above, bool deep_namespaces);

Result<Value> apply_filter(Interpreter& in, const std::string& name, const Value& v, std::vector<Value>& args, Kwargs& kwargs);
std::optional<Value> bound_method(Interpreter& in, const Value& obj, const std::string& name);
void install_globals(Interpreter& in);

}  // namespace hr::jinja
