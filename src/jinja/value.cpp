// Jinja values with Python semantics: truthiness, ==, str(), repr(), float repr and json.dumps.
#include "jinja/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "core/utf8.h"

namespace hr::jinja {

Value Value::make_list(List items) {
    Value v;
    v.type = Type::list;
    v.list = std::make_shared<List>(std::move(items));
    return v;
}

Value Value::make_dict() {
    Value v;
    v.type = Type::dict;
    v.dict = std::make_shared<Dict>();
    return v;
}

const Value* Dict::find(const std::string& k) const {
    for (const auto& kv : items) {
        if (kv.first == k) return &kv.second;
    }
    return nullptr;
}

Value* Dict::find(const std::string& k) {
    for (auto& kv : items) {
        if (kv.first == k) return &kv.second;
    }
    return nullptr;
}

void Dict::set(const std::string& k, Value v) {
    if (Value* e = find(k)) *e = std::move(v);
    else items.emplace_back(k, std::move(v));
}

bool truthy(const Value& v) {
    switch (v.type) {
        case Value::Type::undefined:
        case Value::Type::none: return false;
        case Value::Type::boolean: return v.b;
        case Value::Type::integer: return v.i != 0;
        case Value::Type::floating: return v.f != 0.0;
        case Value::Type::string: return !v.s.empty();
        case Value::Type::list: return !v.list->empty();
        case Value::Type::dict: return v.is_namespace || !v.dict->items.empty();
        case Value::Type::func: return true;
    }
    return false;
}

bool equals(const Value& a, const Value& b) {
    if (a.is_number() && b.is_number()) {
        if (a.type == Value::Type::floating || b.type == Value::Type::floating) return a.as_double() == b.as_double();
        return (a.type == Value::Type::boolean ? a.b : a.i) == (b.type == Value::Type::boolean ? b.b : b.i);
    }
    if (a.type != b.type) return false;
    switch (a.type) {
        case Value::Type::undefined:
        case Value::Type::none: return true;
        case Value::Type::string: return a.s == b.s;
        case Value::Type::list:
            if (a.list->size() != b.list->size()) return false;
            for (size_t k = 0; k < a.list->size(); ++k) {
                if (!equals((*a.list)[k], (*b.list)[k])) return false;
            }
            return true;
        case Value::Type::dict:
            if (a.dict == b.dict) return true;
            if (a.is_namespace || b.is_namespace) return false;
            if (a.dict->items.size() != b.dict->items.size()) return false;
            for (const auto& kv : a.dict->items) {
                const Value* o = b.dict->find(kv.first);
                if (o == nullptr || !equals(kv.second, *o)) return false;
            }
            return true;
        case Value::Type::func: return a.func == b.func;
        default: return false;
    }
}

std::string type_name(const Value& v) {
    switch (v.type) {
        case Value::Type::undefined: return "Undefined";
        case Value::Type::none: return "NoneType";
        case Value::Type::boolean: return "bool";
        case Value::Type::integer: return "int";
        case Value::Type::floating: return "float";
        case Value::Type::string: return "str";
        case Value::Type::list: return "list";
        case Value::Type::dict: return v.is_namespace ? "Namespace" : "dict";
        case Value::Type::func: return "function";
    }
    return "object";
}

std::string float_repr(double d) {
    if (std::isnan(d)) return "nan";
    if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
    std::string sci(buf, r.ptr);
    // sci = [-]D[.DDD]e(+|-)XX: split into sign, digits and decimal exponent.
    const bool neg = sci[0] == '-';
    const size_t epos = sci.find('e');
    std::string mant = sci.substr(neg ? 1 : 0, epos - (neg ? 1 : 0));
    const int exp = std::stoi(sci.substr(epos + 1));
    std::string digits;
    for (char c : mant) {
        if (c != '.') digits.push_back(c);
    }
    std::string out = neg ? "-" : "";
    if (exp >= -4 && exp < 16) {
        // Fixed notation, as Python's repr uses for exponents -4..15.
        if (exp >= 0) {
            if (digits.size() <= static_cast<size_t>(exp) + 1) {
                out += digits + std::string(static_cast<size_t>(exp) + 1 - digits.size(), '0') + ".0";
            } else {
                out += digits.substr(0, static_cast<size_t>(exp) + 1) + "." + digits.substr(static_cast<size_t>(exp) + 1);
            }
        } else {
            out += "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
        }
        return out;
    }
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    out += fmt::format("e{}{:02d}", exp < 0 ? '-' : '+', std::abs(exp));
    return out;
}

namespace {
std::string repr_string(const std::string& s) {
    const bool has_single = s.find('\'') != std::string::npos;
    const bool has_double = s.find('"') != std::string::npos;
    const char q = (has_single && !has_double) ? '"' : '\'';
    std::string out(1, q);
    size_t i = 0;
    while (i < s.size()) {
        const size_t start = i;
        const uint32_t cp = utf8::next_cp(s, i);
        if (cp == static_cast<uint32_t>(q) || cp == '\\') {
            out.push_back('\\');
            out.push_back(static_cast<char>(cp));
        } else if (cp == '\n') {
            out += "\\n";
        } else if (cp == '\r') {
            out += "\\r";
        } else if (cp == '\t') {
            out += "\\t";
        } else if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0)) {
            out += fmt::format("\\x{:02x}", cp);
        } else {
            out.append(s, start, i - start);
        }
    }
    out.push_back(q);
    return out;
}

void json_string(std::string& out, const std::string& s) {
    out.push_back('"');
    for (char c : s) {
        const auto u = static_cast<uint8_t>(c);
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            default:
                if (u < 0x20) out += fmt::format("\\u{:04x}", u);
                else out.push_back(c);
        }
    }
    out.push_back('"');
}

Status json_value(std::string& out, const Value& v, int indent, bool sort_keys, int level) {
    if (level > 256) return make_error("tojson: value nested too deeply");
    const auto newline = [&](int lvl) {
        out.push_back('\n');
        out.append(static_cast<size_t>(indent * lvl), ' ');
    };
    switch (v.type) {
        case Value::Type::undefined: return make_error("Object of type Undefined is not JSON serializable");
        case Value::Type::none: out += "null"; return ok();
        case Value::Type::boolean: out += v.b ? "true" : "false"; return ok();
        case Value::Type::integer: out += std::to_string(v.i); return ok();
        case Value::Type::floating:
            if (std::isnan(v.f)) out += "NaN";
            else if (std::isinf(v.f)) out += v.f > 0 ? "Infinity" : "-Infinity";
            else out += float_repr(v.f);
            return ok();
        case Value::Type::string: json_string(out, v.s); return ok();
        case Value::Type::func: return make_error("Object of type function is not JSON serializable");
        case Value::Type::list: {
            if (v.list->empty()) {
                out += "[]";
                return ok();
            }
            out.push_back('[');
            for (size_t k = 0; k < v.list->size(); ++k) {
                if (k > 0) out += indent >= 0 ? "," : ", ";
                if (indent >= 0) newline(level + 1);
                HR_TRY(json_value(out, (*v.list)[k], indent, sort_keys, level + 1));
            }
            if (indent >= 0) newline(level);
            out.push_back(']');
            return ok();
        }
        case Value::Type::dict: {
            if (v.dict->items.empty()) {
                out += "{}";
                return ok();
            }
            std::vector<const std::pair<std::string, Value>*> items;
            for (const auto& kv : v.dict->items) items.push_back(&kv);
            if (sort_keys) std::stable_sort(items.begin(), items.end(), [](auto* a, auto* b) { return a->first < b->first; });
            out.push_back('{');
            for (size_t k = 0; k < items.size(); ++k) {
                if (k > 0) out += indent >= 0 ? "," : ", ";
                if (indent >= 0) newline(level + 1);
                json_string(out, items[k]->first);
                out += ": ";
                HR_TRY(json_value(out, items[k]->second, indent, sort_keys, level + 1));
            }
            if (indent >= 0) newline(level);
            out.push_back('}');
            return ok();
        }
    }
    return ok();
}
}  // namespace

std::string repr(const Value& v) {
    switch (v.type) {
        case Value::Type::string: return repr_string(v.s);
        case Value::Type::list: {
            std::string out = "[";
            for (size_t k = 0; k < v.list->size(); ++k) {
                if (k > 0) out += ", ";
                out += repr((*v.list)[k]);
            }
            return out + "]";
        }
        case Value::Type::dict: {
            if (v.is_namespace) return "<Namespace>";
            std::string out = "{";
            for (size_t k = 0; k < v.dict->items.size(); ++k) {
                if (k > 0) out += ", ";
                out += repr_string(v.dict->items[k].first) + ": " + repr(v.dict->items[k].second);
            }
            return out + "}";
        }
        default: return to_str(v);
    }
}

std::string to_str(const Value& v) {
    switch (v.type) {
        case Value::Type::undefined: return "";
        case Value::Type::none: return "None";
        case Value::Type::boolean: return v.b ? "True" : "False";
        case Value::Type::integer: return std::to_string(v.i);
        case Value::Type::floating: return float_repr(v.f);
        case Value::Type::string: return v.s;
        case Value::Type::func: return "<function " + v.func->name + ">";
        default: return repr(v);
    }
}

Result<std::string> to_json(const Value& v, int indent, bool sort_keys) {
    std::string out;
    HR_TRY(json_value(out, v, indent, sort_keys, 0));
    return out;
}

Value from_json(const nlohmann::ordered_json& j) {
    switch (j.type()) {
        case nlohmann::ordered_json::value_t::null: return Value::none();
        case nlohmann::ordered_json::value_t::boolean: return Value::boolean(j.get<bool>());
        case nlohmann::ordered_json::value_t::number_integer: return Value::integer(j.get<int64_t>());
        case nlohmann::ordered_json::value_t::number_unsigned: {
            const auto u = j.get<uint64_t>();
            return u > static_cast<uint64_t>(INT64_MAX) ? Value::floating(static_cast<double>(u))
                                                        : Value::integer(static_cast<int64_t>(u));
        }
        case nlohmann::ordered_json::value_t::number_float: return Value::floating(j.get<double>());
        case nlohmann::ordered_json::value_t::string: return Value::string(j.get<std::string>());
        case nlohmann::ordered_json::value_t::array: {
            List items;
            items.reserve(j.size());
            for (const auto& e : j) items.push_back(from_json(e));
            return Value::make_list(std::move(items));
        }
        case nlohmann::ordered_json::value_t::object: {
            Value d = Value::make_dict();
            for (auto it = j.begin(); it != j.end(); ++it) d.dict->items.emplace_back(it.key(), from_json(it.value()));
            return d;
        }
        default: return Value::none();
    }
}

std::vector<uint32_t> code_points(const std::string& s) {
    std::vector<uint32_t> out;
    out.reserve(s.size());
    size_t i = 0;
    while (i < s.size()) {
        if (utf8::valid_seq_len(s, i) == 0) {
            out.push_back(0xFFFD);
            ++i;
            continue;
        }
        out.push_back(utf8::next_cp(s, i));
    }
    return out;
}

std::string from_code_points(const std::vector<uint32_t>& cps, size_t begin, size_t end) {
    std::string out;
    for (size_t k = begin; k < end && k < cps.size(); ++k) utf8::append_cp(out, cps[k]);
    return out;
}

bool is_py_space(uint32_t cp) { return utf8::is_white_space(cp) || (cp >= 0x1C && cp <= 0x1F); }

}  // namespace hr::jinja
