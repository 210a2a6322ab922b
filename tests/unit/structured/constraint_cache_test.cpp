// ConstraintCache: compiled once per schema / choice list, bounded, and compiler errors passed through.
#include <gtest/gtest.h>

#include "structured/constraint_cache.h"

namespace hr {
namespace {

using nlohmann::ordered_json;

ConstraintSpec schema(ordered_json s) {
    ConstraintSpec spec;
    spec.kind = ConstraintKind::json_schema;
    spec.schema = std::move(s);
    return spec;
}

TEST(ConstraintCache, ReusesAndBounds) {
    ConstraintCache cache(2);
    auto a = cache.get(schema({{"type", "integer"}})), b = cache.get(schema({{"type", "integer"}}));
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->get(), b->get());
    ASSERT_TRUE(cache.get(schema({{"type", "boolean"}})).ok());
    ASSERT_TRUE(cache.get(schema({{"type", "string"}})).ok());
    EXPECT_EQ(cache.size(), 2u);
    // The least recently used entry ("integer") was dropped: compiling it again gives a new object.
    auto c = cache.get(schema({{"type", "integer"}}));
    ASSERT_TRUE(c.ok());
    EXPECT_NE(c->get(), a->get());
    auto bad = cache.get(schema({{"type", "string"}, {"format", "date"}}));
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.error().message.find("format"), std::string::npos);
}

TEST(ConstraintCache, KeepsSchemasAndChoicesWithTheSameTextApart) {
    ConstraintCache cache;
    ConstraintSpec choice;
    choice.kind = ConstraintKind::choice;
    choice.choices = {"a"};
    ConstraintSpec s = schema(ordered_json::array({"a"}));  // not a valid schema, same text as the choice list
    auto c = cache.get(choice);
    ASSERT_TRUE(c.ok());
    EXPECT_FALSE(cache.get(s).ok());
    ConstraintSpec none;  // json_object is never cached: one shared constraint
    EXPECT_TRUE(cache.get(none).ok());
    EXPECT_EQ(cache.size(), 1u);
}

}  // namespace
}  // namespace hr
