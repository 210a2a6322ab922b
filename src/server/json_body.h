// Request bodies as untrusted bytes: UTF-8 and nesting-depth checks before JSON parsing, and a parse
// that never throws. Pure functions over bytes (fuzzable).
#pragma once

#include <string_view>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace hr::server {

constexpr int kMaxJsonDepth = 32;

// True when `s` is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool is_valid_utf8(std::string_view s);
// Deepest array/object nesting of JSON text (strings skipped); stops counting past `limit`.
int json_nesting_depth(std::string_view s, int limit);
// UTF-8, depth and syntax checks, then nlohmann parse. Errors are fixed strings (no body echo).
Result<nlohmann::json> parse_json_body(std::string_view body);
// The same checks and parse, keeping object keys in the order sent.
Result<nlohmann::ordered_json> parse_json_body_ordered(std::string_view body);

}  // namespace hr::server
