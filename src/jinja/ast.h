// Syntax tree of the Jinja subset and the parser entry point (internal to the interpreter).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "jinja/jinja.h"
#include "jinja/value.h"

namespace hr::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
    enum class Kind {
        literal,    // value
        name,       // name
        list,       // args
        tuple,      // args
        dict,       // kwargs (key exprs in args, values in args2)
        getattr,    // a . name
        getitem,    // a [ b ]
        slice,      // a [ args[0] : args[1] : args[2] ] (null entries = omitted)
        call,       // a ( args, kwargs )
        filter,     // a | name ( args, kwargs )   (a may be null inside a filter block: unused)
        test,       // a is [not] name ( args )   (negate)
        unary,      // op a       ("-", "+", "not")
        binary,     // a op b     ("+", "-", "*", "/", "//", "%", "**", "~", "and", "or", "in", "not in")
        compare,    // a ops[k] args[k] ... (chained)
        cond,       // args[0] if a else args[1] (args[1] may be null)
    };
    Kind kind;
    int line = 0;
    Value value;
    std::string name;
    std::string op;
    bool negate = false;
    ExprPtr a, b;
    std::vector<ExprPtr> args;
    std::vector<ExprPtr> args2;
    std::vector<std::string> ops;
    std::vector<std::pair<std::string, ExprPtr>> kwargs;
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
    enum class Kind { text, output, if_, for_, set, set_block, macro, break_, continue_, block };
    Kind kind;
    int line = 0;
    std::string text;                     // text
    ExprPtr expr;                         // output, for (iterable), set (value)
    std::vector<std::pair<ExprPtr, Body>> branches;  // if / elif
    Body body;                            // for body, set_block body, macro body, block body
    Body else_body;                       // if else, for else
    std::vector<std::string> targets;     // for / set targets (tuple unpacking), or {name, attr} for ns.attr
    bool attr_target = false;             // set ns.attr = ...
    ExprPtr cond;                         // for ... if cond
    std::string name;                     // macro name
    std::vector<std::pair<std::string, ExprPtr>> params;  // macro parameters with optional defaults
};

// Parses a template (after newline normalization) into statements, applying trim_blocks,
// lstrip_blocks and the "-" whitespace controls.
Result<Body> parse_template(const std::string& source, const Limits& limits);

}  // namespace hr::jinja
