// The server's API key as an operator gives it (--api-key or --api-key-file): surrounding whitespace and
// newlines are trimmed (a key file written by `echo` ends in "\n"; editors add spaces), and a key that
// is then empty or holds whitespace or control characters inside is refused instead of being
// compared byte for byte against Authorization headers that can never match it.
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace hr::server {

// `source` names where the key came from in the error ("--api-key-file").
Result<std::string> normalize_api_key(std::string_view raw, const char* source);

}  // namespace hr::server
