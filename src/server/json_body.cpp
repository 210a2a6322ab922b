// Untrusted JSON bodies (see json_body.h).
#include "server/json_body.h"

#include <algorithm>
#include <cctype>

#include "core/json_check.h"

namespace hr::server {

bool is_valid_utf8(std::string_view s) {
    size_t i = 0;
    const size_t n = s.size();
    while (i < n) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            ++i;
            continue;
        }
        int len;
        uint32_t cp;
        if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + static_cast<size_t>(len) > n) return false;
        for (int k = 1; k < len; ++k) {
            const auto cc = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
            if ((cc & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (cc & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return false;
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += static_cast<size_t>(len);
    }
    return true;
}

int json_nesting_depth(std::string_view s, int limit) {
    int depth = 0, max_depth = 0;
    bool in_string = false, escaped = false;
    for (char ch : s) {
        if (in_string) {
            if (escaped) {
                escaped = false;
            } else if (ch == '\\') {
                escaped = true;
            } else if (ch == '"') {
                in_string = false;
            }
            continue;
        }
        if (ch == '"') {
            in_string = true;
        } else if (ch == '[' || ch == '{') {
            if (++depth > max_depth) max_depth = depth;
            if (max_depth > limit) return max_depth;
        } else if (ch == ']' || ch == '}') {
            --depth;
        }
    }
    return max_depth;
}

namespace {

// One parse for both object-key orders (sorted: nlohmann::json; as sent: nlohmann::ordered_json).
template <class Json>
Result<Json> parse_checked(std::string_view body) {
    if (body.empty()) return make_error("the request body is empty; expected a JSON object");
    if (!is_valid_utf8(body)) return make_error("the request body is not valid UTF-8");
    if (json_nesting_depth(body, kMaxJsonDepth) > kMaxJsonDepth) {
        return errorf("the request body nests JSON deeper than {} levels", kMaxJsonDepth);
    }
    // Duplicate keys: nlohmann keeps the last one silently, so {"max_tokens": 1, "max_tokens": 9999}
    // would mean whatever the last proxy in line thinks. Refused, naming the key (short, JSON-quoted).
    const JsonCheck check = check_json_structure(body, kMaxJsonDepth);
    if (check.kind == JsonCheck::Kind::duplicate_key) {
        // note: like other field names, the key is echoed only when it looks like an identifier.
        const std::string& k = check.key;
        const bool plain = !k.empty() && k.size() <= 64 && std::all_of(k.begin(), k.end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
        });
        const std::string key = plain ? k : std::string("(not an identifier)");
        return errorf("the request body has the key {} more than once in one object (expected each key once)",
                      nlohmann::json(key).dump());
    }
    // note: nlohmann throws out_of_range (not parse_error) for numbers beyond double, so catch the
    // base class; its message quotes the input, so it is never returned.
    try {
        Json j = Json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/true, /*ignore_comments=*/false);
        return j;
    } catch (const typename Json::out_of_range&) {
        return make_error("the request body holds a number outside the range of a double");
    } catch (const typename Json::exception&) {
        return make_error("the request body is not valid JSON");
    }
}

}  // namespace

Result<nlohmann::json> parse_json_body(std::string_view body) { return parse_checked<nlohmann::json>(body); }

Result<nlohmann::ordered_json> parse_json_body_ordered(std::string_view body) {
    return parse_checked<nlohmann::ordered_json>(body);
}

}  // namespace hr::server
