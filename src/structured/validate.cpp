// validate_json: checks a value against a schema of the supported subset (used to filter enum values
// at compile time, and by tests and callers to double-check answers).
#include <cmath>

#include "structured/constraint.h"
#include "structured/regex.h"

namespace hr {

using json = nlohmann::json;

namespace {

size_t utf8_chars(const std::string& s) {
    size_t n = 0;
    for (char c : s)
        if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
    return n;
}

bool has_type(const json& v, const std::string& t) {
    if (t == "null") return v.is_null();
    if (t == "boolean") return v.is_boolean();
    if (t == "object") return v.is_object();
    if (t == "array") return v.is_array();
    if (t == "string") return v.is_string();
    if (t == "number") return v.is_number();
    if (t == "integer") {
        if (v.is_number_integer()) return true;
        if (!v.is_number_float()) return false;
        double d = v.get<double>();
        return std::isfinite(d) && std::floor(d) == d;
    }
    return false;
}

Status check(const json& v, const json& s, const std::string& path, int depth) {
    const std::string at = path.empty() ? "/" : path;
    if (depth > 64) return errorf("validate: {}: schema nested too deeply", at);
    if (s.is_boolean()) {
        if (s.get<bool>()) return ok();
        return errorf("validate: {}: schema false admits no value", at);
    }
    if (!s.is_object()) return errorf("validate: {}: expected a schema object", at);
    if (s.contains("type")) {
        const json& t = s["type"];
        bool any = false;
        if (t.is_string()) any = has_type(v, t.get<std::string>());
        else if (t.is_array())
            for (auto& x : t) any = any || (x.is_string() && has_type(v, x.get<std::string>()));
        if (!any) return errorf("validate: {}: expected type {}, found {}", at, t.dump(), v.type_name());
    }
    if (s.contains("enum")) {
        bool found = false;
        for (auto& e : s["enum"]) found = found || e == v;
        if (!found) return errorf("validate: {}: {} is not one of {}", at, v.dump(), s["enum"].dump());
    }
    if (s.contains("const") && !(s["const"] == v))
        return errorf("validate: {}: expected const {}, found {}", at, s["const"].dump(), v.dump());
    if (s.contains("anyOf")) {
        bool any = false;
        for (auto& alt : s["anyOf"]) any = any || check(v, alt, path, depth + 1).ok();
        if (!any) return errorf("validate: {}: {} matches no anyOf branch", at, v.dump());
    }
    if (v.is_object()) {
        if (s.contains("required"))
            for (auto& r : s["required"])
                if (r.is_string() && !v.contains(r.get<std::string>()))
                    return errorf("validate: {}: missing required property \"{}\"", at, r.get<std::string>());
        for (auto& [k, x] : v.items()) {
            std::string p = path + "/" + k;
            if (s.contains("properties") && s["properties"].contains(k)) {
                HR_TRY(check(x, s["properties"][k], p, depth + 1));
            } else if (s.contains("additionalProperties")) {
                HR_TRY(check(x, s["additionalProperties"], p, depth + 1));
            }
        }
    }
    if (v.is_array()) {
        if (s.contains("minItems") && v.size() < s["minItems"].get<size_t>())
            return errorf("validate: {}: expected at least {} items, found {}", at, s["minItems"].get<size_t>(), v.size());
        if (s.contains("maxItems") && v.size() > s["maxItems"].get<size_t>())
            return errorf("validate: {}: expected at most {} items, found {}", at, s["maxItems"].get<size_t>(), v.size());
        if (s.contains("items") && s["items"].is_object())
            for (size_t i = 0; i < v.size(); ++i) HR_TRY(check(v[i], s["items"], path + "/" + std::to_string(i), depth + 1));
    }
    if (v.is_string()) {
        const std::string& str = v.get_ref<const std::string&>();
        size_t n = utf8_chars(str);
        if (s.contains("minLength") && n < s["minLength"].get<size_t>())
            return errorf("validate: {}: expected at least {} characters, found {}", at, s["minLength"].get<size_t>(), n);
        if (s.contains("maxLength") && n > s["maxLength"].get<size_t>())
            return errorf("validate: {}: expected at most {} characters, found {}", at, s["maxLength"].get<size_t>(), n);
        if (s.contains("pattern") && s["pattern"].is_string()) {
            auto d = structured::compile_pattern(s["pattern"].get<std::string>());
            if (!d.ok()) return errorf("validate: {}: {}", at, d.error().message);
            if (!d->full_match(str))
                return errorf("validate: {}: \"{}\" does not fully match pattern \"{}\"", at, str,
                              s["pattern"].get<std::string>());
        }
    }
    if (v.is_number()) {
        double d = v.get<double>();
        if (s.contains("minimum") && s["minimum"].is_number() && d < s["minimum"].get<double>())
            return errorf("validate: {}: {} is below minimum {}", at, v.dump(), s["minimum"].dump());
        if (s.contains("maximum") && s["maximum"].is_number() && d > s["maximum"].get<double>())
            return errorf("validate: {}: {} is above maximum {}", at, v.dump(), s["maximum"].dump());
    }
    return ok();
}

}  // namespace

Status validate_json(const json& value, const json& schema) {
    try {
        return check(value, schema, "", 0);
    } catch (const json::exception& e) {
        return errorf("validate: malformed schema or value ({})", e.what());
    }
}

}  // namespace hr
