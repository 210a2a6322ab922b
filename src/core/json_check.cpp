// check_json_structure: a SAX pass over the text (see json_check.h).
#include "core/json_check.h"

#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

namespace hr {

namespace {

struct Checker {
    using json = nlohmann::json;
    int max_depth;
    int depth = 0;
    std::vector<std::unordered_set<std::string>> keys;  // one set per open object
    std::vector<bool> is_object;                        // per open container
    JsonCheck result;

    bool null() { return true; }
    bool boolean(bool) { return true; }
    bool number_integer(json::number_integer_t) { return true; }
    bool number_unsigned(json::number_unsigned_t) { return true; }
    bool number_float(json::number_float_t, const json::string_t&) { return true; }
    bool string(json::string_t&) { return true; }
    bool binary(json::binary_t&) { return true; }
    bool open(bool object) {
        if (++depth > max_depth) {
            result.kind = JsonCheck::Kind::too_deep;
            return false;
        }
        is_object.push_back(object);
        if (object) keys.emplace_back();
        return true;
    }
    bool close() {
        --depth;
        if (!is_object.empty()) {
            if (is_object.back() && !keys.empty()) keys.pop_back();
            is_object.pop_back();
        }
        return true;
    }
    bool start_object(std::size_t) { return open(true); }
    bool end_object() { return close(); }
    bool start_array(std::size_t) { return open(false); }
    bool end_array() { return close(); }
    bool key(json::string_t& k) {
        if (!keys.empty() && !keys.back().insert(k).second) {
            result.kind = JsonCheck::Kind::duplicate_key;
            result.key = k;
            return false;
        }
        return true;
    }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) {
        result.kind = JsonCheck::Kind::syntax;
        return false;
    }
};

}  // namespace

JsonCheck check_json_structure(std::string_view text, int max_depth) {
    Checker c{max_depth};
    try {
        nlohmann::json::sax_parse(text.begin(), text.end(), &c, nlohmann::json::input_format_t::json,
                                  /*strict=*/true, /*ignore_comments=*/false);
    } catch (const std::exception&) {
        if (c.result.ok()) c.result.kind = JsonCheck::Kind::syntax;
    }
    return c.result;
}

}  // namespace hr
