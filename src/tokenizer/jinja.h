// A small sandboxed Jinja interpreter for chat templates (the subset that published Mistral, Mixtral,
// Llama-2/3 and ChatML/Qwen templates use), rendering like transformers' ImmutableSandboxedEnvironment
// with trim_blocks and lstrip_blocks. No I/O, no host access; output, loop and depth are capped.
#pragma once

#include <cstddef>
#include <string>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace hr::jinja {

struct Limits {
    size_t max_template_bytes = 1 << 20;   // source size
    size_t max_output_bytes = 16 << 20;    // rendered text
    size_t max_loop_iterations = 1'000'000;  // all loop bodies of one render together
    size_t max_depth = 64;                 // nesting of expressions, statements and macro calls
};

// Renders template `source` with the variables of `context` (a JSON object). A template error (a
// raise_exception call, an undefined attribute, a type error, a cap) is returned as the Error, whose
// message for raise_exception is exactly the template's message.
Result<std::string> render(const std::string& source, const nlohmann::ordered_json& context, const Limits& limits = {});

}  // namespace hr::jinja
