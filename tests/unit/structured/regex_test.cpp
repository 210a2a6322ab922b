// Pattern subset: what compiles, what it matches (full match), and what is rejected.
#include <gtest/gtest.h>

#include "structured/regex.h"

using hr::structured::compile_pattern;

namespace {

bool matches(const char* pattern, const std::string& s) {
    auto d = compile_pattern(pattern);
    EXPECT_TRUE(d.ok()) << pattern << ": " << (d.ok() ? "" : d.error().message);
    return d.ok() && d->full_match(s);
}

TEST(StructuredRegex, LiteralsClassesAndQuantifiers) {
    EXPECT_TRUE(matches("abc", "abc"));
    EXPECT_FALSE(matches("abc", "abcd"));  // implicit anchors: full match
    EXPECT_TRUE(matches("^[A-Z]{3}-\\d{4}$", "INV-2024"));
    EXPECT_FALSE(matches("^[A-Z]{3}-\\d{4}$", "IN-2024"));
    EXPECT_FALSE(matches("^[A-Z]{3}-\\d{4}$", "INV-20245"));
    EXPECT_TRUE(matches("a{2,}", "aaaa"));
    EXPECT_FALSE(matches("a{2,}", "a"));
    EXPECT_TRUE(matches("a{0,2}b?", ""));
    EXPECT_TRUE(matches("(ab|cd)+", "abcdab"));
    EXPECT_FALSE(matches("(ab|cd)+", "abc"));
    EXPECT_TRUE(matches("(?:x|y)*z", "xyxz"));
    EXPECT_TRUE(matches("[^0-9]+", "héllo"));  // negated classes admit non-ASCII characters
    EXPECT_FALSE(matches("[^0-9]+", "h3"));
    EXPECT_TRUE(matches("\\w+@\\w+\\.com", "a_b@x1.com"));
    EXPECT_TRUE(matches("\\s", "\t"));
    EXPECT_TRUE(matches("é+", "ééé"));
}

TEST(StructuredRegex, DotIsOneCharacterButNotNewline) {
    EXPECT_TRUE(matches("^.$", "é"));
    EXPECT_TRUE(matches("^.$", "\xF0\x9F\x98\x80"));  // one 4-byte character
    EXPECT_FALSE(matches("^.$", "ab"));
    EXPECT_FALSE(matches("^.$", "\n"));
}

TEST(StructuredRegex, RejectsConstructsOutsideTheSubset) {
    for (const char* p : {"(?=a)", "a*?", "\\bword", "\\1", "[[:alpha:]]", "a^b", "a$b", "(ab", "ab)", "*a",
                          "[é]", "a{3,2}", "a{5000}", "\\D", "\\p{L}", "[a", "(?i)a"}) {
        auto d = compile_pattern(p);
        EXPECT_FALSE(d.ok()) << p;
        if (!d.ok()) {
            EXPECT_NE(d.error().message.find("pattern"), std::string::npos);
        }
    }
}

TEST(StructuredRegex, CapsSizeAndNesting) {
    std::string deep(100, '(');
    deep += "a" + std::string(100, ')');
    EXPECT_FALSE(compile_pattern(deep).ok());
    EXPECT_FALSE(compile_pattern(std::string(2000, 'a')).ok());
    EXPECT_FALSE(compile_pattern("(a{1000}){1000}").ok());
}

}  // namespace
