// ConstraintState at the byte level: which outputs are accepted, completeness, EOS, and that every
// accepted prefix can still be completed.
#include <gtest/gtest.h>

#include "structured/constraint.h"

using nlohmann::json;

namespace {

std::shared_ptr<const hr::CompiledConstraint> schema(const char* s) {
    auto r = hr::compile_json_schema(json::parse(s));
    EXPECT_TRUE(r.ok()) << s << ": " << (r.ok() ? "" : r.error().message);
    return r.ok() ? r.value() : hr::compile_json_object();
}

// Accepts the whole text and ends complete.
bool accepts(const std::shared_ptr<const hr::CompiledConstraint>& c, const std::string& text) {
    hr::ConstraintState st(c);
    return st.advance_bytes(text).ok() && st.is_complete();
}
// Accepts the text as a prefix (possibly incomplete).
bool accepts_prefix(const std::shared_ptr<const hr::CompiledConstraint>& c, const std::string& text) {
    hr::ConstraintState st(c);
    return st.advance_bytes(text).ok();
}

TEST(StructuredConstraint, ObjectPropertiesInSchemaOrderRequiredAndOptional) {
    auto c = schema(R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"},"c":{"type":"boolean"}},
                      "required":["b"]})");
    EXPECT_TRUE(accepts(c, R"({"b":"x"})"));
    EXPECT_TRUE(accepts(c, R"({"a":1,"b":"x","c":true})"));
    EXPECT_TRUE(accepts(c, R"({"a":-12,"b":""})"));
    EXPECT_FALSE(accepts_prefix(c, R"({"b":"x","a")"));  // out of order
    EXPECT_FALSE(accepts(c, R"({"a":1})"));             // missing required b
    EXPECT_FALSE(accepts_prefix(c, R"({"a":1})"));       // '}' may not close before b
    EXPECT_FALSE(accepts_prefix(c, R"({"d")"));
    EXPECT_FALSE(accepts_prefix(c, R"({ "b")"));         // compact: no whitespace
    EXPECT_FALSE(accepts_prefix(c, R"({"b":"x"} )"));
    EXPECT_FALSE(accepts(c, R"({"b":"x")"));
}

TEST(StructuredConstraint, NoPropertiesMeansAnyKeysUnlessAdditionalFalse) {
    auto m = schema(R"({"type":"object","additionalProperties":{"type":"number"}})");
    EXPECT_TRUE(accepts(m, R"({"x":1.5,"y":-2})"));
    EXPECT_FALSE(accepts_prefix(m, R"({"x":"s")"));
    auto e = schema(R"({"type":"object","additionalProperties":false})");
    EXPECT_TRUE(accepts(e, "{}"));
    EXPECT_FALSE(accepts_prefix(e, R"({")"));
}

TEST(StructuredConstraint, ArraysRespectMinAndMaxItems) {
    auto c = schema(R"({"type":"array","items":{"type":"integer"},"minItems":1,"maxItems":3})");
    EXPECT_FALSE(accepts_prefix(c, "[]"));
    EXPECT_TRUE(accepts(c, "[1]"));
    EXPECT_TRUE(accepts(c, "[1,2,3]"));
    EXPECT_FALSE(accepts_prefix(c, "[1,2,3,"));
    EXPECT_FALSE(accepts_prefix(c, "[1,]"));
}

TEST(StructuredConstraint, StringLengthsAndEscapes) {
    auto c = schema(R"({"type":"string","minLength":2,"maxLength":4})");
    EXPECT_FALSE(accepts_prefix(c, R"("a")"));
    EXPECT_TRUE(accepts(c, R"("ab")"));
    EXPECT_TRUE(accepts(c, R"("a\nb\u0041")"));
    EXPECT_FALSE(accepts_prefix(c, "\"h\xC3\xA9llo"));  // 5 characters
    EXPECT_TRUE(accepts(c, "\"h\xC3\xA9ll\""));                            // 4 characters, 5 bytes
    EXPECT_FALSE(accepts_prefix(c, R"("abcde)"));
    EXPECT_FALSE(accepts_prefix(c, R"("a\x)"));
    EXPECT_FALSE(accepts_prefix(c, R"("a\u00e9)"));  // \u escapes limited to ASCII
    EXPECT_FALSE(accepts_prefix(c, "\"a\x01"));      // raw control character
    EXPECT_FALSE(accepts_prefix(c, "\"a\xC0\x80"));  // overlong UTF-8
    EXPECT_FALSE(accepts_prefix(c, "\"a\xED\xA0\x80"));  // surrogate
}

TEST(StructuredConstraint, PatternsAreFullMatchesAndNeverDeadEnd) {
    auto c = schema(R"({"type":"string","pattern":"^INV-[0-9]{3}$"})");
    EXPECT_TRUE(accepts(c, R"("INV-123")"));
    EXPECT_FALSE(accepts_prefix(c, R"("INV-12")"));
    EXPECT_FALSE(accepts_prefix(c, R"("INV-1234)"));
    EXPECT_FALSE(accepts_prefix(c, R"("X)"));
    // pattern + maxLength: "ab" repeated, at most 5 characters -> "ab" or "abab", never a 5th char
    auto d = schema(R"({"type":"string","pattern":"(ab)+","maxLength":5})");
    EXPECT_TRUE(accepts(d, R"("abab")"));
    EXPECT_FALSE(accepts_prefix(d, R"("ababa)"));
    // escapes decode before matching: \u0041 is 'A'
    auto e = schema(R"({"type":"string","pattern":"[A-Z]+"})");
    EXPECT_TRUE(accepts(e, R"("\u0041B")"));
    EXPECT_FALSE(accepts_prefix(e, R"("\n)"));
}

TEST(StructuredConstraint, NumbersWithBounds) {
    auto i = schema(R"({"type":"integer","minimum":10,"maximum":250})");
    EXPECT_TRUE(accepts(i, "10"));
    EXPECT_TRUE(accepts(i, "250"));
    EXPECT_FALSE(accepts(i, "9"));    // a prefix of 90..99, but not complete
    EXPECT_TRUE(accepts_prefix(i, "9"));
    EXPECT_FALSE(accepts_prefix(i, "3000"));
    EXPECT_TRUE(accepts(i, "26"));
    EXPECT_FALSE(accepts_prefix(i, "260"));
    EXPECT_FALSE(accepts_prefix(i, "-"));
    EXPECT_FALSE(accepts_prefix(i, "1.5"));
    EXPECT_FALSE(accepts_prefix(i, "01"));
    auto n = schema(R"({"type":"number","minimum":-1.5,"maximum":0.25})");
    EXPECT_TRUE(accepts(n, "-1.5"));
    EXPECT_TRUE(accepts(n, "0.25"));
    EXPECT_TRUE(accepts(n, "-0.001"));
    EXPECT_FALSE(accepts_prefix(n, "0.26"));
    EXPECT_FALSE(accepts_prefix(n, "-2"));
    EXPECT_FALSE(accepts_prefix(n, "1"));
    EXPECT_FALSE(accepts_prefix(n, "1e5"));  // no exponents in generated numbers
}

TEST(StructuredConstraint, EnumConstAnyOfAndTypeLists) {
    auto e = schema(R"({"enum":["paid","unpaid",3,null,{"k":[1]}]})");
    for (const char* ok : {R"("paid")", R"("unpaid")", "3", "null", R"({"k":[1]})"}) EXPECT_TRUE(accepts(e, ok)) << ok;
    EXPECT_FALSE(accepts_prefix(e, R"("pa")"));
    EXPECT_FALSE(accepts_prefix(e, "4"));
    auto a = schema(R"({"anyOf":[{"type":"object","properties":{"x":{"type":"integer"}},"required":["x"]},
                                 {"type":"object","properties":{"x":{"type":"string"}},"required":["x"]}]})");
    EXPECT_TRUE(accepts(a, R"({"x":1})"));
    EXPECT_TRUE(accepts(a, R"({"x":"s"})"));
    EXPECT_FALSE(accepts_prefix(a, R"({"x":true)"));
    auto t = schema(R"({"type":["string","null"],"maxLength":1})");
    EXPECT_TRUE(accepts(t, "null"));
    EXPECT_TRUE(accepts(t, R"("a")"));
    EXPECT_FALSE(accepts_prefix(t, R"("ab)"));
}

TEST(StructuredConstraint, JsonObjectAcceptsAnyObjectUpToTheDepthCap) {
    auto c = hr::compile_json_object();
    EXPECT_TRUE(accepts(c, R"({"a":[1,{"b":null}],"c":"d","e":-0.5,"f":true})"));
    EXPECT_FALSE(accepts_prefix(c, "["));
    EXPECT_FALSE(accepts_prefix(c, R"({"a":tru3)"));
    std::string deep = "{\"a\":";
    for (int i = 0; i < 30; ++i) deep += "[";
    EXPECT_TRUE(accepts_prefix(c, deep));
    EXPECT_FALSE(accepts_prefix(c, deep + "[["));  // 33 levels of nesting
}

TEST(StructuredConstraint, ChoiceIsRawTextAndPrefixesMayEnd) {
    auto r = hr::compile_choice({"invoice", "in", "receipt"});
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(accepts(*r, "in"));
    EXPECT_TRUE(accepts(*r, "invoice"));
    EXPECT_FALSE(accepts(*r, "inv"));
    EXPECT_FALSE(accepts_prefix(*r, "\"in"));
    hr::ConstraintState st(*r);
    ASSERT_TRUE(st.advance_bytes("in").ok());
    EXPECT_TRUE(st.is_complete());
    EXPECT_TRUE(st.can_continue());
    ASSERT_TRUE(st.advance_bytes("voice").ok());
    EXPECT_TRUE(st.is_complete());
    EXPECT_FALSE(st.can_continue());
}

TEST(StructuredConstraint, RejectedBytesLeaveTheStateUnchanged) {
    auto c = schema(R"({"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]})");
    hr::ConstraintState st(c);
    ASSERT_TRUE(st.advance_bytes(R"({"a":1)").ok());
    auto bad = st.advance_bytes("2x");
    EXPECT_FALSE(bad.ok());
    EXPECT_EQ(st.text(), R"({"a":1)");
    EXPECT_TRUE(st.advance_bytes("2}").ok());
    EXPECT_TRUE(st.is_complete());
}

}  // namespace
