// Every cap of the Jinja interpreter in one place: what a hostile or careless chat template can cost.
// A render that would pass one of these stops with a template error naming the limit; nothing is
// allocated past it. Worst-case memory of one render is about
//   max_output_bytes + max_variable_bytes + (max_depth * 4) * max_value_bytes  (temporaries on the stack)
// and in practice two or three values of max_value_bytes, since deep nesting of large temporaries
// needs a template that builds each of them.
#pragma once

#include <cstddef>

namespace hr::jinja {

struct Limits {
    size_t max_template_bytes = 1 << 20;      // source size
    size_t max_output_bytes = 16 << 20;       // rendered text (and each captured block or macro output)
    size_t max_value_bytes = 16 << 20;        // any one string, list or dict the template builds (deep size)
    size_t max_variable_bytes = 64 << 20;     // all values the template stores in variables, together
    size_t max_loop_iterations = 1'000'000;   // all loop bodies (and range() items) of one render together
    size_t max_depth = 64;                    // nesting of statements and macro calls (expressions: 4x)
    int max_json_indent = 1024;               // tojson(indent=N)
};

}  // namespace hr::jinja
