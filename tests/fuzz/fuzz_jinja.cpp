// libFuzzer target over the Jinja interpreter (src/jinja): the input is a template, rendered with a
// fixed chat context. Any input must give a Result (a template error is fine), never a crash, a
// sanitizer report, a leak, a hang or an allocation past the limits; a successful render respects
// max_output_bytes. The caps are 1/16 of the defaults (jinja/limits.h) and loops 1/50, so that
// ASan-slowed inputs stay under the 10 s per-input timeout; the code paths are the same.
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "jinja/jinja.h"

namespace {

void require(bool cond) {
    if (!cond) __builtin_trap();
}

const nlohmann::ordered_json& context() {
    static const nlohmann::ordered_json ctx = nlohmann::ordered_json::parse(R"({
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello\nthere"},
                     {"role": "assistant", "content": "Hi!", "tool_calls": [{"name": "f", "arguments": {"a": 1}}]},
                     {"role": "user", "content": "2 + 2?"}],
        "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>",
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]})");
    return ctx;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string source(reinterpret_cast<const char*>(data), size);
    hr::jinja::Limits limits;
    limits.max_loop_iterations = 20000;
    limits.max_output_bytes = 1 << 20;
    limits.max_value_bytes = 1 << 20;
    limits.max_variable_bytes = 4 << 20;
    auto t = hr::jinja::Template::compile(source, limits);
    if (!t.ok()) {
        require(!t.error().message.empty());
        return 0;
    }
    auto out = t->render(context());
    if (out.ok()) require(out->size() <= limits.max_output_bytes);
    return 0;
}
