// normalize_api_key (see api_key.h).
#include "server/api_key.h"

namespace hr::server {

Result<std::string> normalize_api_key(std::string_view raw, const char* source) {
    const auto space = [](unsigned char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; };
    size_t b = 0, e = raw.size();
    while (b < e && space(static_cast<unsigned char>(raw[b]))) ++b;
    while (e > b && space(static_cast<unsigned char>(raw[e - 1]))) --e;
    const std::string_view key = raw.substr(b, e - b);
    if (key.empty()) return errorf("{}: the key is empty (expected a non-empty key, whitespace around it is ignored)", source);
    for (size_t i = 0; i < key.size(); ++i) {
        const auto c = static_cast<unsigned char>(key[i]);
        if (space(c) || c < 0x20 || c == 0x7f) {
            return errorf("{}: the key holds whitespace or a control character at byte {} (expected one token; "
                          "a key file holds the key alone, optionally followed by a newline)", source, i);
        }
    }
    return std::string(key);
}

}  // namespace hr::server
