// JSON schema (supported subset) -> grammar nodes. Pass 1 collects every unsupported keyword and every
// malformed keyword value with its JSON pointer; pass 2 builds nodes and checks satisfiability.
#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "structured/constraint.h"
#include "structured/grammar.h"
#include "structured/number_rules.h"

namespace hr {

using namespace structured;
using json = nlohmann::json;

namespace structured {

void LiteralTrie::insert(const std::string& s, uint32_t index) {
    uint32_t n = 0;
    nodes[0].below.push_back(index);
    for (char ch : s) {
        uint8_t b = static_cast<uint8_t>(ch);
        uint32_t c = child(n, b);
        if (c == kNone) {
            c = static_cast<uint32_t>(nodes.size());
            nodes.emplace_back();
            auto& kids = nodes[n].kids;
            kids.insert(std::upper_bound(kids.begin(), kids.end(), std::make_pair(b, 0u),
                                         [](auto& x, auto& y) { return x.first < y.first; }),
                        {b, c});
        }
        n = c;
        nodes[n].below.push_back(index);
    }
    nodes[n].terminal = static_cast<int32_t>(index);
}

}  // namespace structured

namespace {

const std::set<std::string> kSupported = {"type",    "properties", "required", "additionalProperties",
                                          "enum",    "const",      "items",    "minItems",
                                          "maxItems", "anyOf",     "minLength", "maxLength",
                                          "minimum", "maximum",    "pattern"};
// Annotations: they never change which values validate, so accepting them cannot break the guarantee.
const std::set<std::string> kAnnotations = {"title", "description", "default", "examples", "$schema", "$comment"};
const std::set<std::string> kTypes = {"object", "array", "string", "integer", "number", "boolean", "null"};

std::string ptr_escape(const std::string& s) {
    std::string r;
    for (char c : s) {
        if (c == '~') r += "~0";
        else if (c == '/') r += "~1";
        else r += c;
    }
    return r;
}

bool is_count(const json& v) { return v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0); }

class SchemaCompiler {
public:
    explicit SchemaCompiler(CompiledConstraint& c) : c_(c) {}

    // Declared property order per JSON pointer of a "properties" object (from an ordered_json schema);
    // without an entry, the order is the json object's iteration order (sorted keys).
    std::map<std::string, std::vector<std::string>> property_order;

    // Pass 1: keyword check over every subschema.
    void check(const json& s, const std::string& path, size_t depth) {
        if (depth > kMaxSchemaDepth) {
            problems_.push_back(fmt::format("{}: nesting deeper than {} subschemas", path, kMaxSchemaDepth));
            return;
        }
        if (s.is_boolean()) return;
        if (!s.is_object()) {
            problems_.push_back(fmt::format("{}: expected a schema (object or boolean), found {}", path, s.type_name()));
            return;
        }
        for (auto& [k, v] : s.items()) {
            std::string p = path + "/" + ptr_escape(k);
            if (kAnnotations.count(k)) continue;
            if (!kSupported.count(k)) {
                unsupported_.push_back(p);
                continue;
            }
            if (k == "type") {
                auto ok_type = [](const json& t) { return t.is_string() && kTypes.count(t.get<std::string>()); };
                bool ok = ok_type(v) || (v.is_array() && !v.empty() && std::all_of(v.begin(), v.end(), ok_type));
                if (ok && v.is_array()) {
                    std::set<std::string> seen;
                    for (auto& t : v) ok = ok && seen.insert(t.get<std::string>()).second;
                }
                if (!ok) problems_.push_back(fmt::format("{}: expected one of the JSON types or a non-empty list of "
                                                         "distinct ones, found {}", p, v.dump()));
            } else if (k == "properties") {
                if (!v.is_object()) {
                    problems_.push_back(fmt::format("{}: expected an object of schemas, found {}", p, v.type_name()));
                    continue;
                }
                for (auto& [pk, pv] : v.items()) check(pv, p + "/" + ptr_escape(pk), depth + 1);
            } else if (k == "required") {
                std::set<std::string> seen;
                bool ok = v.is_array();
                if (ok)
                    for (auto& r : v) ok = ok && r.is_string() && seen.insert(r.get<std::string>()).second;
                if (!ok) problems_.push_back(fmt::format("{}: expected a list of distinct strings, found {}", p, v.dump()));
            } else if (k == "additionalProperties" || k == "items") {
                if (k == "items" && v.is_array()) {
                    unsupported_.push_back(p + " (array form)");
                    continue;
                }
                check(v, p, depth + 1);
            } else if (k == "enum") {
                if (!v.is_array() || v.empty())
                    problems_.push_back(fmt::format("{}: expected a non-empty array, found {}", p, v.dump()));
            } else if (k == "anyOf") {
                if (!v.is_array() || v.empty()) {
                    problems_.push_back(fmt::format("{}: expected a non-empty array of schemas, found {}", p, v.type_name()));
                    continue;
                }
                for (size_t i = 0; i < v.size(); ++i) check(v[i], p + "/" + std::to_string(i), depth + 1);
            } else if (k == "minItems" || k == "maxItems" || k == "minLength" || k == "maxLength") {
                if (!is_count(v) || v.get<uint64_t>() > (1u << 20))
                    problems_.push_back(fmt::format("{}: expected an integer in [0, 1048576], found {}", p, v.dump()));
            } else if (k == "minimum" || k == "maximum") {
                if (!v.is_number() || !std::isfinite(v.get<double>()))
                    problems_.push_back(fmt::format("{}: expected a finite number, found {}", p, v.dump()));
            } else if (k == "pattern") {
                if (!v.is_string()) {
                    problems_.push_back(fmt::format("{}: expected a string, found {}", p, v.type_name()));
                    continue;
                }
                auto d = compile_pattern(v.get<std::string>());
                if (!d.ok()) problems_.push_back(fmt::format("{}: {}", p, d.error().message));
            }
        }
    }

    Status check_result() const {
        if (unsupported_.empty() && problems_.empty()) return ok();
        std::string msg;
        if (!unsupported_.empty()) {
            msg = "json_schema: unsupported keywords: ";
            for (size_t i = 0; i < unsupported_.size(); ++i) msg += (i ? ", " : "") + unsupported_[i];
            msg += " (supported: type, properties, required, additionalProperties, enum, const, items, minItems, "
                   "maxItems, anyOf, minLength, maxLength, minimum, maximum, pattern)";
        }
        for (auto& p : problems_) msg += (msg.empty() ? "json_schema: " : "; ") + p;
        return make_error(msg);
    }

    Result<uint32_t> add(Node n) {
        if (c_.nodes.size() >= kMaxSchemaNodes)
            return errorf("json_schema: expected at most {} grammar nodes, the schema needs more", kMaxSchemaNodes);
        c_.nodes.push_back(std::move(n));
        return static_cast<uint32_t>(c_.nodes.size() - 1);
    }

    uint32_t plain_string() {
        if (plain_string_ == kNone) {
            StringSpec sp;
            c_.strings.push_back(sp);
            Node n;
            n.kind = NodeKind::string;
            n.spec = static_cast<uint32_t>(c_.strings.size() - 1);
            c_.nodes.push_back(std::move(n));
            plain_string_ = static_cast<uint32_t>(c_.nodes.size() - 1);
        }
        return plain_string_;
    }

    // Any JSON value: a union of object (any keys, any values), array, string, number, true/false/null.
    uint32_t any() {
        if (any_ != kNone) return any_;
        Node u;
        u.kind = NodeKind::union_;
        c_.nodes.push_back(u);
        any_ = static_cast<uint32_t>(c_.nodes.size() - 1);
        Node obj;
        obj.kind = NodeKind::map;
        obj.key_node = plain_string();
        obj.child = any_;
        Node arr;
        arr.kind = NodeKind::array;
        arr.child = any_;
        NumSpec ns;
        c_.numbers.push_back(ns);
        Node num;
        num.kind = NodeKind::number;
        num.spec = static_cast<uint32_t>(c_.numbers.size() - 1);
        Node lit;
        lit.kind = NodeKind::literal;
        lit.lits.insert("true", 0);
        lit.lits.insert("false", 1);
        lit.lits.insert("null", 2);
        std::vector<uint32_t> alts;
        for (Node* n : {&obj, &arr, &num, &lit}) {
            c_.nodes.push_back(std::move(*n));
            alts.push_back(static_cast<uint32_t>(c_.nodes.size() - 1));
        }
        alts.push_back(plain_string());
        c_.nodes[any_].alts = alts;
        return any_;
    }

    Result<uint32_t> literal_node(const std::vector<std::string>& texts) {
        Node n;
        n.kind = NodeKind::literal;
        for (size_t i = 0; i < texts.size(); ++i) {
            literal_bytes_ += texts[i].size();
            if (literal_bytes_ > kMaxLiteralBytes)
                return errorf("json_schema: enum/const values exceed {} bytes in total", kMaxLiteralBytes);
            n.lits.insert(texts[i], static_cast<uint32_t>(i));
        }
        return add(std::move(n));
    }

    Result<uint32_t> compile(const json& s, const std::string& path) {
        if (s.is_boolean()) {
            if (s.get<bool>()) return any();
            return errorf("json_schema: {}: schema false admits no value", path.empty() ? "/" : path);
        }
        bool constraining = false;
        for (auto& [k, v] : s.items())
            if (kSupported.count(k)) constraining = true;
        if (!constraining) return any();

        if (s.contains("enum") || s.contains("const")) return compile_enum(s, path);
        if (s.contains("anyOf")) {
            std::vector<std::string> siblings;
            for (auto& [k, v] : s.items())
                if (k != "anyOf" && kSupported.count(k)) siblings.push_back(k);
            if (!siblings.empty())
                return errorf("json_schema: {}: anyOf together with sibling keywords ({}) is not supported; move "
                              "them into each anyOf branch", path.empty() ? "/" : path, fmt::join(siblings, ", "));
            Node u;
            u.kind = NodeKind::union_;
            const json& alts = s["anyOf"];
            for (size_t i = 0; i < alts.size(); ++i) {
                HR_ASSIGN(uint32_t a, compile(alts[i], path + "/anyOf/" + std::to_string(i)));
                u.alts.push_back(a);
            }
            return add(std::move(u));
        }
        std::vector<std::string> types;
        if (s.contains("type")) {
            if (s["type"].is_string()) types.push_back(s["type"].get<std::string>());
            else
                for (auto& t : s["type"]) types.push_back(t.get<std::string>());
            // "number" already admits every integer
            if (std::count(types.begin(), types.end(), "number") && std::count(types.begin(), types.end(), "integer"))
                types.erase(std::find(types.begin(), types.end(), "integer"));
        } else {
            types = {"object", "array", "string", "number", "boolean", "null"};
        }
        std::vector<uint32_t> nodes;
        for (auto& t : types) {
            HR_ASSIGN(uint32_t n, compile_typed(s, t, path));
            nodes.push_back(n);
        }
        if (nodes.size() == 1) return nodes[0];
        Node u;
        u.kind = NodeKind::union_;
        u.alts = nodes;
        return add(std::move(u));
    }

private:
    static std::string where(const std::string& path) { return path.empty() ? "/" : path; }

    Result<uint32_t> compile_enum(const json& s, const std::string& path) {
        std::vector<json> cands;
        if (s.contains("enum")) cands.assign(s["enum"].begin(), s["enum"].end());
        if (s.contains("const")) {
            if (s.contains("enum")) {
                bool found = std::any_of(cands.begin(), cands.end(), [&](const json& v) { return v == s["const"]; });
                cands.clear();
                if (found) cands.push_back(s["const"]);
            } else {
                cands.push_back(s["const"]);
            }
        }
        json rest = s;
        rest.erase("enum");
        rest.erase("const");
        std::vector<std::string> texts;
        std::set<std::string> seen;
        for (auto& v : cands) {
            if (!validate_json(v, rest).ok()) continue;
            std::string t;
            try {
                t = v.dump();
            } catch (const json::exception& e) {
                return errorf("json_schema: {}: enum/const value is not valid UTF-8 ({})", where(path), e.what());
            }
            if (seen.insert(t).second) texts.push_back(t);
        }
        if (texts.empty())
            return errorf("json_schema: {}: no enum/const value satisfies the other keywords of this schema", where(path));
        return literal_node(texts);
    }

    Result<uint32_t> compile_typed(const json& s, const std::string& t, const std::string& path) {
        if (t == "null") return literal_node({"null"});
        if (t == "boolean") return literal_node({"true", "false"});
        if (t == "object") return compile_object(s, path);
        if (t == "array") {
            Node n;
            n.kind = NodeKind::array;
            if (s.contains("items")) {
                HR_ASSIGN(n.child, compile(s["items"], path + "/items"));
            } else {
                n.child = any();
            }
            if (s.contains("minItems")) n.min_items = s["minItems"].get<uint32_t>();
            if (s.contains("maxItems")) n.max_items = s["maxItems"].get<uint32_t>();
            if (n.min_items > n.max_items && n.max_items != kNone)
                return errorf("json_schema: {}: minItems {} > maxItems {}", where(path), n.min_items, n.max_items);
            return add(std::move(n));
        }
        if (t == "string") return compile_string(s, path);
        return compile_number(s, t == "integer", path);
    }

    Result<uint32_t> compile_object(const json& s, const std::string& path) {
        Node n;
        std::vector<std::string> required;
        if (s.contains("required"))
            for (auto& r : s["required"]) required.push_back(r.get<std::string>());
        auto is_required = [&](const std::string& k) {
            return std::find(required.begin(), required.end(), k) != required.end();
        };
        if (s.contains("properties")) {
            std::vector<std::string> order;
            auto it = property_order.find(path + "/properties");
            if (it != property_order.end()) {
                order = it->second;
            } else {
                for (auto& [k, v] : s["properties"].items()) order.push_back(k);
            }
            for (const std::string& k : order) {
                HR_ASSIGN(uint32_t pn, compile(s["properties"][k], path + "/properties/" + ptr_escape(k)));
                n.props.push_back(Prop{k, pn, is_required(k)});
            }
        }
        bool additional_false = s.contains("additionalProperties") && s["additionalProperties"].is_boolean() &&
                                !s["additionalProperties"].get<bool>();
        for (auto& r : required) {
            bool declared = std::any_of(n.props.begin(), n.props.end(), [&](const Prop& p) { return p.name == r; });
            if (declared) continue;
            if (additional_false)
                return errorf("json_schema: {}: required property \"{}\" is not in properties and additionalProperties "
                              "is false", where(path), r);
            if (s.contains("additionalProperties") && s["additionalProperties"].is_object()) {
                HR_ASSIGN(uint32_t an, compile(s["additionalProperties"], path + "/additionalProperties"));
                n.props.push_back(Prop{r, an, true});
            } else {
                n.props.push_back(Prop{r, any(), true});
            }
        }
        if (n.props.empty() && !additional_false) {
            // A map: any keys, values from additionalProperties (any value when absent or true).
            n.kind = NodeKind::map;
            n.key_node = plain_string();
            if (s.contains("additionalProperties") && s["additionalProperties"].is_object()) {
                HR_ASSIGN(n.child, compile(s["additionalProperties"], path + "/additionalProperties"));
            } else {
                n.child = any();
            }
            return add(std::move(n));
        }
        // Declared properties only, in schema order (see docs: additional properties are never generated).
        n.kind = NodeKind::object;
        size_t np = n.props.size();
        n.optional_from.assign(np + 1, 1);
        for (size_t i = np; i-- > 0;) n.optional_from[i] = n.optional_from[i + 1] && !n.props[i].required;
        n.last_candidate.assign(np, 0);
        for (size_t i = 0; i < np; ++i) {
            size_t j = i;
            while (j + 1 < np && !n.props[j].required) ++j;
            n.last_candidate[i] = static_cast<uint32_t>(j);
        }
        for (size_t i = 0; i < np; ++i) n.keys.insert(json(n.props[i].name).dump(), static_cast<uint32_t>(i));
        return add(std::move(n));
    }

    Result<uint32_t> compile_string(const json& s, const std::string& path) {
        StringSpec sp;
        if (s.contains("minLength")) sp.min_len = s["minLength"].get<uint32_t>();
        if (s.contains("maxLength")) sp.max_len = s["maxLength"].get<uint32_t>();
        if (sp.max_len != kNone && sp.min_len > sp.max_len)
            return errorf("json_schema: {}: minLength {} > maxLength {}", where(path), sp.min_len, sp.max_len);
        if (s.contains("pattern")) {
            HR_ASSIGN(sp.dfa, compile_pattern(s["pattern"].get<std::string>()));
            sp.plain = false;
            HR_TRY(fill_good(sp, path));
        }
        if (!sp.is_good(0, 0))
            return errorf("json_schema: {}: no string matches pattern {} with length in [{}, {}]", where(path),
                          s.value("pattern", std::string("(none)")), sp.min_len,
                          sp.max_len == kNone ? std::string("inf") : std::to_string(sp.max_len));
        c_.strings.push_back(std::move(sp));
        Node n;
        n.kind = NodeKind::string;
        n.spec = static_cast<uint32_t>(c_.strings.size() - 1);
        return add(std::move(n));
    }

    // good[q][l]: backward fixed point over (state, length) with UTF-8 lead bytes counting one character.
    Status fill_good(StringSpec& sp, const std::string& path) {
        const ByteDfa& d = sp.dfa;
        bool bounded = sp.max_len != kNone;
        sp.lcap = bounded ? sp.max_len : sp.min_len;
        size_t cols = static_cast<size_t>(sp.lcap) + 1;
        if (static_cast<size_t>(d.n_states) * cols > (size_t{1} << 22))
            return errorf("json_schema: {}: pattern automaton ({} states) times length bound ({}) is too large",
                          where(path), d.n_states, sp.lcap);
        // distinct successors per state, with their character weight
        std::vector<std::vector<std::pair<int32_t, uint8_t>>> succ(d.n_states);
        for (uint32_t q = 0; q < d.n_states; ++q) {
            for (int b = 0; b < 256; ++b) {
                int32_t t = d.step(static_cast<int32_t>(q), static_cast<uint8_t>(b));
                if (t < 0) continue;
                uint8_t wgt = (b < 0x80 || b >= 0xC0) ? 1 : 0;
                auto pr = std::make_pair(t, wgt);
                if (std::find(succ[q].begin(), succ[q].end(), pr) == succ[q].end()) succ[q].push_back(pr);
            }
        }
        sp.good.assign(static_cast<size_t>(d.n_states) * cols, 0);
        for (size_t l = cols; l-- > 0;) {
            for (bool changed = true; changed;) {
                changed = false;
                for (uint32_t q = 0; q < d.n_states; ++q) {
                    uint8_t& g = sp.good[q * cols + l];
                    if (g) continue;
                    bool v = d.accept[q] && l >= sp.min_len;
                    for (size_t i = 0; !v && i < succ[q].size(); ++i) {
                        size_t l2 = l + succ[q][i].second;
                        if (l2 > sp.lcap) {
                            if (bounded) continue;
                            l2 = sp.lcap;
                        }
                        v = sp.good[static_cast<size_t>(succ[q][i].first) * cols + l2] != 0;
                    }
                    if (v) {
                        g = 1;
                        changed = true;
                    }
                }
            }
        }
        return ok();
    }

    Result<uint32_t> compile_number(const json& s, bool integer, const std::string& path) {
        NumSpec ns;
        ns.integer = integer;
        if (s.contains("minimum")) ns.has_min = true, ns.min = s["minimum"].get<double>();
        if (s.contains("maximum")) ns.has_max = true, ns.max = s["maximum"].get<double>();
        if (integer) {
            const double lim = 1e18;
            if (ns.has_min) ns.imin = ns.min > lim ? INT64_MAX : ns.min < -lim ? INT64_MIN : static_cast<int64_t>(std::ceil(ns.min));
            if (ns.has_max) ns.imax = ns.max > lim ? INT64_MAX : ns.max < -lim ? INT64_MIN : static_cast<int64_t>(std::floor(ns.max));
            // exact integer bounds when given as integers (a double loses precision past 2^53)
            auto exact = [](const json& v, int64_t& out) {
                if (v.is_number_unsigned()) out = v.get<uint64_t>() > uint64_t(INT64_MAX) ? INT64_MAX : v.get<int64_t>();
                else if (v.is_number_integer()) out = v.get<int64_t>();
            };
            if (s.contains("minimum")) exact(s["minimum"], ns.imin);
            if (s.contains("maximum")) exact(s["maximum"], ns.imax);
        }
        NumState start;
        if (!number_feasible(ns, start) || (ns.has_min && ns.has_max && (ns.min > ns.max || (integer && ns.imin > ns.imax))))
            return errorf("json_schema: {}: no {} of the generated form (at most {} integer digits{}) lies in [{}, {}]",
                          where(path), integer ? "integer" : "number",
                          integer ? kMaxIntegerDigits : kMaxNumberIntDigits,
                          integer ? "" : fmt::format(", {} fraction digits", kMaxNumberFracDigits),
                          ns.has_min ? fmt::format("{}", ns.min) : "-inf", ns.has_max ? fmt::format("{}", ns.max) : "inf");
        c_.numbers.push_back(ns);
        Node n;
        n.kind = NodeKind::number;
        n.spec = static_cast<uint32_t>(c_.numbers.size() - 1);
        return add(std::move(n));
    }

    CompiledConstraint& c_;
    std::vector<std::string> unsupported_;
    std::vector<std::string> problems_;
    uint32_t any_ = kNone;
    uint32_t plain_string_ = kNone;
    size_t literal_bytes_ = 0;
};

bool valid_utf8(const std::string& s) {
    size_t i = 0;
    while (i < s.size()) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        size_t len = c < 0x80 ? 1 : (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3 : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
        if (len == 0 || i + len > s.size()) return false;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
        for (size_t k = 1; k < len; ++k) {
            unsigned char cc = static_cast<unsigned char>(s[i + k]);
            if (cc < (k == 1 ? lo : 0x80) || cc > (k == 1 ? hi : 0xBF)) return false;
        }
        i += len;
    }
    return true;
}

}  // namespace

Result<std::shared_ptr<const CompiledConstraint>> compile_json_schema(const json& schema) {
    auto c = std::make_shared<CompiledConstraint>();
    c->kind = ConstraintKind::json_schema;
    SchemaCompiler sc(*c);
    sc.check(schema, "", 0);
    HR_TRY(sc.check_result());
    HR_ASSIGN(c->root, sc.compile(schema, ""));
    return std::shared_ptr<const CompiledConstraint>(std::move(c));
}

namespace {

// Records the key order of every "properties" object at a schema position of an ordered_json schema.
void collect_property_order(const nlohmann::ordered_json& s, const std::string& path, size_t depth,
                            std::map<std::string, std::vector<std::string>>& out) {
    if (!s.is_object() || depth > kMaxSchemaDepth + 1) return;
    for (auto& [k, v] : s.items()) {
        std::string p = path + "/" + ptr_escape(k);
        if (k == "properties" && v.is_object()) {
            auto& order = out[p];
            for (auto& [pk, pv] : v.items()) {
                order.push_back(pk);
                collect_property_order(pv, p + "/" + ptr_escape(pk), depth + 1, out);
            }
        } else if ((k == "items" || k == "additionalProperties") && v.is_object()) {
            collect_property_order(v, p, depth + 1, out);
        } else if (k == "anyOf" && v.is_array()) {
            for (size_t i = 0; i < v.size(); ++i) collect_property_order(v[i], p + "/" + std::to_string(i), depth + 1, out);
        }
    }
}

}  // namespace

Result<std::shared_ptr<const CompiledConstraint>> compile_json_schema(const nlohmann::ordered_json& schema) {
    json plain;
    try {
        plain = json::parse(schema.dump());
    } catch (const json::exception& e) {
        return errorf("json_schema: cannot convert the schema ({})", e.what());
    }
    auto c = std::make_shared<CompiledConstraint>();
    c->kind = ConstraintKind::json_schema;
    SchemaCompiler sc(*c);
    collect_property_order(schema, "", 0, sc.property_order);
    sc.check(plain, "", 0);
    HR_TRY(sc.check_result());
    HR_ASSIGN(c->root, sc.compile(plain, ""));
    return std::shared_ptr<const CompiledConstraint>(std::move(c));
}

std::shared_ptr<const CompiledConstraint> compile_json_object() {
    auto c = std::make_shared<CompiledConstraint>();
    c->kind = ConstraintKind::json_object;
    SchemaCompiler sc(*c);
    auto r = sc.compile(json{{"type", "object"}}, "");
    HR_CHECK(r.ok());
    c->root = r.value();
    return c;
}

Result<std::shared_ptr<const CompiledConstraint>> compile_choice(std::vector<std::string> choices) {
    if (choices.empty()) return errorf("choice: expected at least one choice, found none");
    if (choices.size() > kMaxChoices)
        return errorf("choice: expected at most {} choices, found {}", kMaxChoices, choices.size());
    auto c = std::make_shared<CompiledConstraint>();
    c->kind = ConstraintKind::choice;
    Node n;
    n.kind = NodeKind::literal;
    std::set<std::string> seen;
    size_t total = 0;
    for (size_t i = 0; i < choices.size(); ++i) {
        if (choices[i].empty()) return errorf("choice: choice {} is empty", i);
        if (!valid_utf8(choices[i])) return errorf("choice: choice {} is not valid UTF-8", i);
        if (!seen.insert(choices[i]).second) return errorf("choice: choice {} (\"{}\") is a duplicate", i, choices[i]);
        total += choices[i].size();
        if (total > kMaxLiteralBytes) return errorf("choice: choices exceed {} bytes in total", kMaxLiteralBytes);
        n.lits.insert(choices[i], static_cast<uint32_t>(i));
    }
    c->nodes.push_back(std::move(n));
    c->root = 0;
    return std::shared_ptr<const CompiledConstraint>(std::move(c));
}

}  // namespace hr
