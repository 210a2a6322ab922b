// A small sandboxed Jinja interpreter for chat templates (the subset that published Mistral, Mixtral,
// Llama-2/3 and ChatML/Qwen templates use), rendering like transformers' ImmutableSandboxedEnvironment
// with trim_blocks and lstrip_blocks. No I/O, no host access; output, memory, loops, depth
// and integer arithmetic are checked (jinja/limits.h): a template that passes a cap gets an error.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "jinja/limits.h"

namespace hr::jinja {

struct Stmt;

// A parsed template: compile once (syntax errors surface here, at load), render many times. render()
// is const and thread-safe: each call has its own interpreter state.
class Template {
public:
    static Result<Template> compile(const std::string& source, const Limits& limits = {});
    // Renders with the variables of `context` (a JSON object).
    Result<std::string> render(const nlohmann::ordered_json& context) const;
    const Limits& limits() const { return limits_; }

private:
    Template() = default;
    std::shared_ptr<const std::vector<std::unique_ptr<Stmt>>> body_;
    Limits limits_;
};

// Renders template `source` with the variables of `context` (a JSON object). A template error (a
// raise_exception call, an undefined attribute, a type error, a cap) is returned as the Error, whose
// message for raise_exception is exactly the template's message.
Result<std::string> render(const std::string& source, const nlohmann::ordered_json& context, const Limits& limits = {});

}  // namespace hr::jinja
