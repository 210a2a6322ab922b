// Schema compilation: every unsupported keyword reported with its JSON pointer, malformed values and
// unsatisfiable schemas rejected, choice/json_object inputs validated.
#include <gtest/gtest.h>

#include "structured/constraint.h"

using nlohmann::json;

namespace {

std::string compile_error(const json& schema) {
    auto r = hr::compile_json_schema(schema);
    return r.ok() ? std::string() : r.error().message;
}

TEST(StructuredSchema, ListsEveryUnsupportedKeywordWithItsPath) {
    json s = json::parse(R"({"type":"object","properties":{"a":{"type":"string","format":"date"},
        "b/c":{"type":"array","items":{"type":"integer","multipleOf":3},"uniqueItems":true}},
        "oneOf":[{"type":"object"}],"$ref":"#/x"})");
    std::string e = compile_error(s);
    for (const char* p : {"/properties/a/format", "/properties/b~1c/items/multipleOf", "/properties/b~1c/uniqueItems",
                          "/oneOf", "/$ref"})
        EXPECT_NE(e.find(p), std::string::npos) << p << " missing in: " << e;
    EXPECT_NE(e.find("unsupported keywords"), std::string::npos);
}

TEST(StructuredSchema, TupleItemsAreUnsupported) {
    EXPECT_NE(compile_error(json::parse(R"({"type":"array","items":[{"type":"string"}]})")).find("/items (array form)"),
              std::string::npos);
}

TEST(StructuredSchema, AnnotationsAreAccepted) {
    auto r = hr::compile_json_schema(json::parse(
        R"({"title":"t","description":"d","$schema":"https://json-schema.org/draft/2020-12/schema","type":"string","default":"x","examples":["y"]})"));
    EXPECT_TRUE(r.ok()) << r.error().message;
}

TEST(StructuredSchema, RejectsMalformedKeywordValues) {
    for (const char* s : {R"({"type":"str"})", R"({"type":[]})", R"({"type":["string","string"]})",
                          R"({"required":"a"})", R"({"required":["a","a"]})", R"({"enum":[]})",
                          R"({"minLength":-1})", R"({"maxItems":1.5})", R"({"minimum":"3"})", R"({"pattern":"(a"})",
                          R"({"anyOf":[]})", R"({"properties":[1]})", R"(5)", R"({"items":3})"}) {
        EXPECT_FALSE(compile_error(json::parse(s)).empty()) << s;
    }
}

TEST(StructuredSchema, RejectsUnsatisfiableSchemas) {
    for (const char* s : {R"({"type":"string","minLength":5,"maxLength":2})", R"({"type":"array","minItems":3,"maxItems":1})",
                          R"({"type":"integer","minimum":5,"maximum":4})", R"({"type":"integer","minimum":1.2,"maximum":1.8})",
                          R"({"type":"number","minimum":1e20})", R"({"type":"string","pattern":"a{3}","maxLength":2})",
                          R"({"type":"string","enum":[1,2]})", R"({"enum":["a"],"const":"b"})", R"(false)",
                          R"({"type":"object","required":["x"],"additionalProperties":false})"}) {
        EXPECT_FALSE(compile_error(json::parse(s)).empty()) << s;
    }
}

TEST(StructuredSchema, AnyOfWithSiblingsIsRejectedNotIgnored) {
    std::string e = compile_error(json::parse(R"({"type":"string","anyOf":[{"maxLength":3},{"minLength":5}]})"));
    EXPECT_NE(e.find("anyOf together with sibling keywords"), std::string::npos) << e;
}

TEST(StructuredSchema, DepthAndSizeCaps) {
    json s = {{"type", "string"}};
    for (int i = 0; i < 40; ++i) s = {{"type", "array"}, {"items", s}};
    EXPECT_NE(compile_error(s).find("nesting deeper"), std::string::npos);
    json wide = {{"type", "object"}, {"properties", json::object()}};
    for (int i = 0; i < 12000; ++i) wide["properties"]["p" + std::to_string(i)] = {{"type", "integer"}};
    EXPECT_NE(compile_error(wide).find("grammar nodes"), std::string::npos);
}

TEST(StructuredSchema, OrderedJsonKeepsTheSchemaPropertyOrder) {
    const char* text = R"({"type":"object","properties":{"reason":{"type":"string","maxLength":3},
        "label":{"enum":["a","b"]}},"required":["reason","label"]})";
    auto ordered = hr::compile_json_schema(nlohmann::ordered_json::parse(text));
    ASSERT_TRUE(ordered.ok()) << ordered.error().message;
    hr::ConstraintState s1(*ordered);
    EXPECT_TRUE(s1.advance_bytes(R"({"reason":"x","label":"a"})").ok());
    EXPECT_TRUE(s1.is_complete());
    auto sorted = hr::compile_json_schema(json::parse(text));  // nlohmann::json iterates keys sorted
    ASSERT_TRUE(sorted.ok());
    hr::ConstraintState s2(*sorted);
    EXPECT_TRUE(s2.advance_bytes(R"({"label":"a","reason":"x"})").ok());
    EXPECT_TRUE(s2.is_complete());
    hr::ConstraintState s3(*ordered);
    EXPECT_FALSE(s3.advance_bytes(R"({"label")").ok());
    // errors keep their paths through the ordered overload
    auto bad = hr::compile_json_schema(nlohmann::ordered_json::parse(R"({"properties":{"a":{"format":"x"}}})"));
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.error().message.find("/properties/a/format"), std::string::npos);
}

TEST(StructuredSchema, HugeIntegerBoundsAreExact) {
    auto r = hr::compile_json_schema(json::parse(R"({"type":"integer","minimum":18446744073709551615})"));
    EXPECT_FALSE(r.ok());  // above the 18-digit generated range
    auto q = hr::compile_json_schema(json::parse(R"({"type":"integer","minimum":9007199254740993,"maximum":9007199254740993})"));
    ASSERT_TRUE(q.ok()) << q.error().message;
    hr::ConstraintState s(*q);
    EXPECT_FALSE(s.advance_bytes("9007199254740992").ok() && s.is_complete());
    hr::ConstraintState t(*q);
    EXPECT_TRUE(t.advance_bytes("9007199254740993").ok() && t.is_complete());
}

TEST(StructuredSchema, ChoiceInputsAreChecked) {
    EXPECT_FALSE(hr::compile_choice({}).ok());
    EXPECT_FALSE(hr::compile_choice({"a", ""}).ok());
    EXPECT_FALSE(hr::compile_choice({"a", "a"}).ok());
    EXPECT_FALSE(hr::compile_choice({"\xff"}).ok());
    EXPECT_TRUE(hr::compile_choice({"invoice", "receipt"}).ok());
}

TEST(StructuredSchema, ValidatorAgreesOnBasics) {
    json s = json::parse(R"({"type":"object","properties":{"n":{"type":"integer","minimum":1},
        "tags":{"type":"array","items":{"type":"string","pattern":"[a-z]+"},"maxItems":2}},"required":["n"],
        "additionalProperties":false})");
    EXPECT_TRUE(hr::validate_json(json::parse(R"({"n":1,"tags":["ab"]})"), s).ok());
    EXPECT_FALSE(hr::validate_json(json::parse(R"({"n":0})"), s).ok());
    EXPECT_FALSE(hr::validate_json(json::parse(R"({"tags":[]})"), s).ok());
    EXPECT_FALSE(hr::validate_json(json::parse(R"({"n":1,"x":1})"), s).ok());
    EXPECT_FALSE(hr::validate_json(json::parse(R"({"n":1,"tags":["a","b","c"]})"), s).ok());
    EXPECT_FALSE(hr::validate_json(json::parse(R"({"n":1,"tags":["A"]})"), s).ok());
}

}  // namespace
