// Regression tests for issue 17 rows 1, 6, 12 and 13: checked 64-bit integer arithmetic (an error naming
// the operation, never SIGFPE or a silent wrap), the output/memory budget of a render (jinja/limits.h),
// and the start-up check of a model's chat template (Tokenizer::check_chat_template).
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "jinja/jinja.h"
#include "tokenizer/tokenizer.h"

namespace {

const nlohmann::ordered_json kEmpty = nlohmann::ordered_json::object();

std::string render_ok(const std::string& t) {
    auto r = hr::jinja::render(t, kEmpty);
    EXPECT_TRUE(r.ok()) << t << ": " << (r.ok() ? "" : r.error().message);
    return r.ok() ? *r : std::string();
}

// The error message of a render that must fail; "" (and a test failure) if it rendered.
std::string render_err(const std::string& t, const hr::jinja::Limits& limits = {}) {
    auto r = hr::jinja::render(t, kEmpty, limits);
    EXPECT_FALSE(r.ok()) << t << " rendered " << (r.ok() ? r->size() : 0) << " bytes";
    return r.ok() ? std::string() : r.error().message;
}

bool has(const std::string& s, const std::string& sub) { return s.find(sub) != std::string::npos; }

// Row 1: INT64_MIN // -1 raised SIGFPE and killed the server.
TEST(JinjaIntegers, FloorDivisionOfMinByMinusOneIsAnError) {
    const std::string e = render_err("{{ (-9223372036854775807 - 1) // -1 }}");
    EXPECT_TRUE(has(e, "integer overflow")) << e;
    EXPECT_TRUE(has(e, "-9223372036854775808 // -1")) << e;
    // Python: INT64_MIN % -1 == 0 (representable, so no error), x % -1 == 0
    EXPECT_EQ(render_ok("{{ (-9223372036854775807 - 1) % -1 }}"), "0");
    EXPECT_EQ(render_ok("{{ 7 % -1 }}|{{ 7 // -1 }}|{{ -7 // 2 }}|{{ -7 % 2 }}"), "0|-7|-4|1");
}

// Row 12: overflow wrapped silently (INT64_MAX + 1, 2**64 -> 0).
TEST(JinjaIntegers, OverflowIsAnErrorNamingTheOperation) {
    EXPECT_TRUE(has(render_err("{{ 9223372036854775807 + 1 }}"), "9223372036854775807 + 1"));
    EXPECT_TRUE(has(render_err("{{ -9223372036854775807 - 2 }}"), "-9223372036854775807 - 2"));
    EXPECT_TRUE(has(render_err("{{ 4294967296 * 4294967296 }}"), "4294967296 * 4294967296"));
    EXPECT_TRUE(has(render_err("{{ 2 ** 64 }}"), "2 ** 64"));
    EXPECT_TRUE(has(render_err("{{ 2 ** 63 }}"), "2 ** 63"));
    EXPECT_TRUE(has(render_err("{{ -(-9223372036854775807 - 1) }}"), "integer overflow"));
    EXPECT_TRUE(has(render_err("{{ (-9223372036854775807 - 1) | abs }}"), "integer overflow"));
    EXPECT_TRUE(has(render_err("{{ [9223372036854775807, 1] | sum }}"), "integer overflow"));
    EXPECT_TRUE(has(render_err("{{ 1e300 | int }}"), "does not fit"));
    // what fits stays exact (no detour through double)
    EXPECT_EQ(render_ok("{{ 2 ** 62 }}"), "4611686018427387904");
    EXPECT_EQ(render_ok("{{ (-2) ** 63 }}"), "-9223372036854775808");
    EXPECT_EQ(render_ok("{{ 1 ** 9223372036854775807 }}|{{ 0 ** 0 }}|{{ (-1) ** 9223372036854775807 }}"), "1|1|-1");
    EXPECT_EQ(render_ok("{{ 9223372036854775806 + 1 }}"), "9223372036854775807");
    EXPECT_EQ(render_ok("{{ [9223372036854775806, 1] | sum }}"), "9223372036854775807");
    EXPECT_EQ(render_ok("{{ 9007199254740993 > 9007199254740992 }}"), "True");
    EXPECT_EQ(render_ok("{{ 2 ** -1 }}"), "0.5");
    // range() stepping past INT64_MAX stops instead of wrapping
    EXPECT_EQ(render_ok("{{ range(9223372036854775806, 9223372036854775807, 5) | list }}"), "[9223372036854775806]");
}

// Row 6: memory bombs. Each must stop with an error naming the limit, before allocating past it.
TEST(JinjaBudget, DoublingAListStopsAtTheValueLimit) {
    const std::string e = render_err(
        "{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l|length }}");
    EXPECT_TRUE(has(e, "max_value_bytes")) << e;
}

TEST(JinjaBudget, DoublingAStringStopsAtTheValueLimit) {
    EXPECT_TRUE(has(render_err("{% set ns = namespace(s='ab') %}{% for i in range(40) %}"
                               "{% set ns.s = ns.s.replace('a', ns.s) %}{% endfor %}"), "max_value_bytes"));
    EXPECT_TRUE(has(render_err("{% set ns = namespace(s='ab') %}{% for i in range(40) %}"
                               "{% set ns.s = ns.s | replace('a', ns.s) %}{% endfor %}"), "max_value_bytes"));
    EXPECT_TRUE(has(render_err("{% set ns = namespace(s='ab') %}{% for i in range(40) %}"
                               "{% set ns.s = ns.s ~ ns.s %}{% endfor %}"), "max_value_bytes"));
    EXPECT_TRUE(has(render_err("{% set ns = namespace(s='ab') %}{% for i in range(40) %}"
                               "{% set ns.s = [ns.s, ns.s] | join(ns.s) %}{% endfor %}"), "max_value_bytes"));
}

TEST(JinjaBudget, SingleHugeResultsAreRefusedUpFront) {
    EXPECT_TRUE(has(render_err("{{ 'x' | indent(10**9) }}"), "max_value_bytes"));
    EXPECT_TRUE(has(render_err("{{ 'a\nb' | indent(10**9) }}"), "max_value_bytes"));
    EXPECT_TRUE(has(render_err("{{ 'x' * 9223372036854775807 }}"), "max_value_bytes"));
    EXPECT_TRUE(has(render_err("{{ 'xy' * 4611686018427387904 }}"), "max_value_bytes"));  // size wraps to 0 unchecked
    EXPECT_TRUE(has(render_err("{{ [1] * 1000000000 }}"), "max_value_bytes"));
    EXPECT_TRUE(has(render_err("{% set b = 'x' * 10000000 %}{{ [b] * 10 }}"), "max_value_bytes"));
    EXPECT_TRUE(has(render_err("{{ ('x' * 10000000) | list | length }}"), "max_value_bytes"));
    EXPECT_TRUE(has(render_err("{{ ('x ' * 5000000).split() | length }}"), "max_value_bytes"));
    EXPECT_TRUE(has(render_err("{{ range(10000000) | length }}"), "max_value_bytes"));
    EXPECT_TRUE(has(render_err("{{ {'a': 1} | tojson(indent=1000000000) }}"), "max_json_indent"));
}

TEST(JinjaBudget, UnpackingAndSlicingHugeStringsStayBounded) {
    EXPECT_TRUE(has(render_err("{% set a, b = 'x' * 16000000 %}"), "too many values to unpack"));
    EXPECT_EQ(render_ok("{% set a, b = 'xy' %}{{ b }}{{ a }}"), "yx");
    EXPECT_EQ(render_ok("{{ ('x' * 1000)[::9223372036854775807] }}|{{ 'abc'[::-9223372036854775807] }}"), "x|c");
    EXPECT_EQ(render_ok("{{ [1, 2, 3][::-2] }}|{{ 'h\u00e9llo'[1:3] }}"), "[3, 1]|\u00e9l");
}

TEST(JinjaBudget, VariablesTogetherAreCapped) {
    hr::jinja::Limits l;
    l.max_value_bytes = 1 << 20;
    l.max_variable_bytes = 4 << 20;
    std::string t = "{% set b = 'x' * 1000000 %}";
    for (int k = 0; k < 8; ++k) t += "{% set v" + std::to_string(k) + " = b ~ '" + std::to_string(k) + "' %}";
    EXPECT_TRUE(has(render_err(t, l), "max_variable_bytes"));
    // overwriting one variable in a loop does not add up
    auto r = hr::jinja::render("{% for i in range(100) %}{% set b = 'x' * 1000000 %}{% endfor %}ok", kEmpty, l);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(*r, "ok");
}

TEST(JinjaBudget, OrdinaryWorkFitsEasily) {
    EXPECT_EQ(render_ok("{{ ('ab' * 3) | replace('a', 'xy') }}|{{ ['a', 'b'] | join('-') }}|{{ 'a\nb' | indent(2) }}"),
              "xybxybxyb|a-b|a\n  b");
    EXPECT_EQ(render_ok("{{ 'x' * 0 }}|{{ [1, 2] * 2 }}|{{ range(3) | list }}"), "|[1, 2, 1, 2]|[0, 1, 2]");
}

// Row 13 and item 1: the chat template is compiled and tried on a sample at start-up.
class ChatTemplateCheck : public ::testing::Test {
protected:
    std::string dir_;
    void SetUp() override {
        dir_ = (std::filesystem::temp_directory_path() / ("hr_tmpl_check_" + std::to_string(::getpid()))).string();
        std::filesystem::create_directories(dir_);
        std::filesystem::copy_file(std::string(HR_FIXTURES_DIR) + "/tokenizers/llama2/tokenizer.json", dir_ + "/tokenizer.json",
                                   std::filesystem::copy_options::overwrite_existing);
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }
    std::unique_ptr<hr::Tokenizer> with_template(const std::string& tmpl) {
        std::ofstream(dir_ + "/tokenizer_config.json") << nlohmann::json{{"chat_template", tmpl}}.dump();
        auto t = hr::Tokenizer::from_model_dir(dir_);
        EXPECT_TRUE(t.ok()) << (t.ok() ? "" : t.error().message);
        return t.ok() ? std::move(t).value() : nullptr;
    }
};

TEST_F(ChatTemplateCheck, SyntaxErrorIsReportedAsTheTemplates) {
    auto tok = with_template("{% for m in messages %}{% if m.role == 'user' %}{{ m.content }}{% endfor %}");
    ASSERT_TRUE(tok);
    auto st = tok->check_chat_template();
    ASSERT_FALSE(st.ok());
    EXPECT_TRUE(has(st.error().message, "does not compile")) << st.error().message;
    EXPECT_TRUE(has(st.error().message, "syntax")) << st.error().message;
    // and a request afterwards names the template, not the messages
    auto r = tok->apply_chat_template(nlohmann::ordered_json::parse(R"([{"role":"user","content":"hi"}])"), true);
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(has(r.error().message, "chat template")) << r.error().message;
}

TEST_F(ChatTemplateCheck, RenderErrorOnTheSampleIsReported) {
    auto tok = with_template("{% for m in messages %}{{ (-9223372036854775807 - 1) // -1 }}{% endfor %}");
    ASSERT_TRUE(tok);
    auto st = tok->check_chat_template();
    ASSERT_FALSE(st.ok());
    EXPECT_TRUE(has(st.error().message, "sample conversation")) << st.error().message;
    EXPECT_TRUE(has(st.error().message, "integer overflow")) << st.error().message;
}

TEST_F(ChatTemplateCheck, PublishedTemplatesPass) {
    auto tok = hr::Tokenizer::from_model_dir(std::string(HR_FIXTURES_DIR) + "/tokenizers/llama2");
    ASSERT_TRUE(tok.ok()) << tok.error().message;
    EXPECT_TRUE((*tok)->check_chat_template().ok());
    auto ok_tmpl = with_template("{% for m in messages %}{% if (m.role == 'user') != (loop.index0 % 2 == 0) %}"
                                 "{{ raise_exception('roles must alternate') }}{% endif %}{{ m.content }}{% endfor %}");
    ASSERT_TRUE(ok_tmpl);
    EXPECT_TRUE(ok_tmpl->check_chat_template().ok());
    // no template at all is fine at start-up (chat requests then get a clear 400)
    std::filesystem::remove(dir_ + "/tokenizer_config.json");
    auto none = hr::Tokenizer::from_model_dir(dir_);
    ASSERT_TRUE(none.ok());
    EXPECT_TRUE((*none)->check_chat_template().ok());
}

}  // namespace
