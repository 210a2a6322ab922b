// Randomly generated schemas from the supported subset (nested objects, arrays, anyOf, enums, patterns,
// bounds): each compiles, random constrained walks over the Mistral vocabulary never dead-end, and
// every finished output parses and validates.
#include <gtest/gtest.h>

#include "structured/constraint.h"
#include "unit/structured/structured_support.h"

using nlohmann::json;
namespace st = hr::structured_test;

namespace {

const hr::TokenVocab& vocab() {
    static auto v = st::vocab_from_tokenizer_json(st::mistral_tokenizer_path());
    if (!v.ok()) std::abort();
    return v.value();
}

class SchemaGen {
public:
    explicit SchemaGen(uint64_t seed) : rng_(seed) {}

    json gen(int depth) {
        int kind = pick(depth >= 3 ? 7 : 11);
        switch (kind) {
            case 0: return string_schema();
            case 1: return number_schema(true);
            case 2: return number_schema(false);
            case 3: return json{{"type", "boolean"}};
            case 4: return json{{"enum", enum_values()}};
            case 5: return json{{"const", enum_values()[0]}};
            case 6: return json{{"type", json::array({"string", "null"})}, {"maxLength", pick(6)}};
            case 7: return object_schema(depth);
            case 8: {
                json s = {{"type", "array"}, {"items", gen(depth + 1)}};
                int mn = pick(3);
                if (coin()) s["minItems"] = mn;
                if (coin()) s["maxItems"] = mn + pick(3);
                return s;
            }
            case 9: {
                json alts = json::array();
                for (int i = 0, n = 2 + pick(2); i < n; ++i) alts.push_back(gen(depth + 1));
                return json{{"anyOf", alts}};
            }
            default: return coin() ? json::object() : object_schema(depth);
        }
    }

private:
    int pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
    bool coin() { return pick(2) == 0; }

    json string_schema() {
        static const char* patterns[] = {"[a-z]+", "\\d{2,4}", "(ab|cd)*e", "[A-Z][a-z]{0,5}", "[^\"\\\\]{1,8}",
                                         "x?y+z*", "\\w+@\\w+\\.(com|org)", "é.{0,3}"};
        json s = {{"type", "string"}};
        int mn = pick(4);
        if (coin()) s["minLength"] = mn;
        if (coin()) s["maxLength"] = mn + pick(12);
        if (pick(3) == 0) {
            s["pattern"] = patterns[pick(8)];
            // keep it satisfiable: bounds wide enough for every pattern above
            s.erase("minLength");
            if (s.contains("maxLength")) s["maxLength"] = 16;
        }
        return s;
    }
    json number_schema(bool integer) {
        json s = {{"type", integer ? "integer" : "number"}};
        int lo = pick(200) - 100;
        if (coin()) s["minimum"] = integer ? json(lo) : json(lo + 0.25);
        if (coin()) s["maximum"] = integer ? json(lo + pick(300)) : json(lo + 0.5 + pick(300) * 0.5);
        return s;
    }
    json enum_values() {
        json pool = json::array({"a", "bb", "paid", 1, 2.5, -3, true, nullptr, json::array({1, "x"}),
                                 json{{"k", "v"}}, "quote\"d", "uni\xC3\xA9"});
        json out = json::array();
        for (int i = 0, n = 1 + pick(4); i < n; ++i) {
            json v = pool[static_cast<size_t>(pick(static_cast<int>(pool.size())))];
            if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
        }
        return out;
    }
    json object_schema(int depth) {
        static const char* names[] = {"id", "name", "total", "items", "meta", "x y", "ключ", "a\"b"};
        json s = {{"type", "object"}};
        json props = json::object();
        json req = json::array();
        for (int i = 0, n = pick(5); i < n; ++i) {
            std::string k = names[pick(8)];
            if (props.contains(k)) continue;
            props[k] = gen(depth + 1);
            if (coin()) req.push_back(k);
        }
        if (!props.empty() || coin()) s["properties"] = props;
        if (!req.empty()) s["required"] = req;
        int a = pick(3);
        if (a == 0) s["additionalProperties"] = false;
        if (a == 1) s["additionalProperties"] = json{{"type", "integer"}};
        return s;
    }

    std::mt19937_64 rng_;
};

TEST(StructuredRandomSchemas, CompileSampleValidate) {
    SchemaGen gen(2024);
    std::mt19937_64 rng(77);
    int compiled = 0, finished = 0;
    for (int i = 0; i < 80; ++i) {
        json schema = gen.gen(0);
        auto c = hr::compile_json_schema(schema);
        ASSERT_TRUE(c.ok()) << c.error().message << "\nschema: " << schema.dump();
        ++compiled;
        for (int k = 0; k < 3; ++k) {
            st::Sample s = st::sample_one(*c, vocab(), rng, 250);
            ASSERT_TRUE(s.error.empty()) << s.error << "\nschema: " << schema.dump() << "\noutput: " << s.text;
            if (!s.finished) continue;
            ++finished;
            json v;
            ASSERT_NO_THROW(v = json::parse(s.text)) << s.text;
            auto ok = hr::validate_json(v, schema);
            EXPECT_TRUE(ok.ok()) << ok.error().message << "\nschema: " << schema.dump() << "\noutput: " << s.text;
        }
    }
    EXPECT_EQ(compiled, 80);
    EXPECT_GT(finished, 120);  // most walks finish within 250 tokens
}

}  // namespace
