// libFuzzer target over the JSON-schema compiler (src/structured): the input is a schema (JSON text,
// ordered keys as a request keeps them). A schema that compiles must give a matcher that accepts or
// refuses bytes without crashing; the bytes fed are the first string value found in the schema
// (often a const/enum/pattern the mutator grew) or "{}".
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "structured/constraint.h"

namespace {

void require(bool cond) {
    if (!cond) __builtin_trap();
}

std::string first_string(const nlohmann::ordered_json& j, int depth = 0) {
    if (j.is_string()) return j.get<std::string>();
    if (depth > 40 || !j.is_structured()) return {};
    for (const auto& x : j) {
        std::string s = first_string(x, depth + 1);
        if (!s.empty()) return s;
    }
    return {};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto schema = nlohmann::ordered_json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
    if (schema.is_discarded()) return 0;
    auto c = hr::compile_json_schema(schema);
    if (!c.ok()) {
        require(!c.error().message.empty());
        return 0;
    }
    for (const std::string& bytes : {first_string(schema), std::string("{}"), std::string("[1, \"a\", null]")}) {
        hr::ConstraintState st(*c);
        for (size_t i = 0; i < bytes.size() && i < 256; ++i) {
            if (!st.advance_bytes(bytes.substr(i, 1)).ok()) break;
        }
        (void)st.is_complete();
        (void)st.can_continue();
    }
    return 0;
}
