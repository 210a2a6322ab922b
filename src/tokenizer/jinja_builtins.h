// The Jinja interpreter state and its builtins (filters, tests, methods, globals); internal.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/jinja_ast.h"

namespace hr::jinja {

using Frame = std::unordered_map<std::string, Value>;
using Kwargs = std::vector<std::pair<std::string, Value>>;

class Interpreter {
public:
    explicit Interpreter(const Limits& limits);
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

private:
    enum class Flow { normal, break_, continue_ };
    Value* lookup(const std::string& name);
    Status emit(std::string_view s);
    Status exec(const Stmt& s);
    Status exec_body(const Body& body);
    Status exec_for(const Stmt& s);
    Status assign_targets(const std::vector<std::string>& targets, const Value& v);
    Status eval_args(const Expr& e, std::vector<Value>& args, Kwargs& kwargs);
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

    friend std::optional<Value> bound_method(Interpreter&, const Value&, const std::string&);
};

Result<Value> apply_filter(Interpreter& in, const std::string& name, const Value& v, std::vector<Value>& args, Kwargs& kwargs);
std::optional<Value> bound_method(Interpreter& in, const Value& obj, const std::string& name);
void install_globals(Interpreter& in);

}  // namespace hr::jinja
