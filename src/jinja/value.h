// Values of the Jinja interpreter, with Python semantics for truthiness, equality, str() and repr(),
// and json.dumps(ensure_ascii=False) for the tojson filter.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace hr::jinja {

struct Value;
struct Dict;
struct Func;
using List = std::vector<Value>;

struct Value {
    enum class Type { undefined, none, boolean, integer, floating, string, list, dict, func };
    Type type = Type::undefined;
    bool b = false;
    int64_t i = 0;
    double f = 0.0;
    std::string s;                // string value; for undefined, the name used in error messages
    std::shared_ptr<List> list;   // note: shared, like Python references (namespace() and loops rely on it)
    std::shared_ptr<Dict> dict;
    std::shared_ptr<Func> func;
    bool is_namespace = false;    // a namespace() object: the only thing `set x.attr = ...` may change

    static Value undefined(std::string hint = {}) { Value v; v.s = std::move(hint); return v; }
    static Value none() { Value v; v.type = Type::none; return v; }
    static Value boolean(bool x) { Value v; v.type = Type::boolean; v.b = x; return v; }
    static Value integer(int64_t x) { Value v; v.type = Type::integer; v.i = x; return v; }
    static Value floating(double x) { Value v; v.type = Type::floating; v.f = x; return v; }
    static Value string(std::string x) { Value v; v.type = Type::string; v.s = std::move(x); return v; }
    static Value make_list(List items = {});
    static Value make_dict();

    bool is_undefined() const { return type == Type::undefined; }
    bool is_none() const { return type == Type::none; }
    bool is_string() const { return type == Type::string; }
    bool is_number() const { return type == Type::integer || type == Type::floating || type == Type::boolean; }
    bool is_list() const { return type == Type::list; }
    bool is_dict() const { return type == Type::dict; }
    double as_double() const { return type == Type::floating ? f : static_cast<double>(type == Type::boolean ? b : i); }
};

struct Dict {
    std::vector<std::pair<std::string, Value>> items;  // insertion order, as Python dicts keep it
    const Value* find(const std::string& k) const;
    Value* find(const std::string& k);
    void set(const std::string& k, Value v);
};

class Interpreter;
// A callable: builtin global, bound method, macro or loop.cycle. kwargs are (name, value) pairs.
struct Func {
    std::string name;
    std::function<Result<Value>(Interpreter&, std::vector<Value>&, std::vector<std::pair<std::string, Value>>&)> call;
};

bool truthy(const Value& v);
bool equals(const Value& a, const Value& b);
// Python type name for error messages ("str", "int", "list", "dict", ...).
std::string type_name(const Value& v);
// Python str(v) (undefined -> "").
std::string to_str(const Value& v);
// Python repr(v).
std::string repr(const Value& v);
// Python float repr ("1.0", "0.1", "1e+16").
std::string float_repr(double d);
// json.dumps(v, ensure_ascii=False, indent=indent, separators=(item_sep, key_sep), sort_keys=sort_keys).
Result<std::string> to_json(const Value& v, int indent, bool sort_keys);

Value from_json(const nlohmann::ordered_json& j);

// Code points of a UTF-8 string, and back (for Python's per-character len/index/slice).
std::vector<uint32_t> code_points(const std::string& s);
std::string from_code_points(const std::vector<uint32_t>& cps, size_t begin, size_t end);
bool is_py_space(uint32_t cp);

}  // namespace hr::jinja
