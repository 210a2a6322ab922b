// Chat templates vs what jinja2 renders the way transformers configures it: the fixture goldens
// (*-chat-goldens.json), our own goldens for five published templates plus a feature template
// (data/chat_templates.json, made by tests/python/tokenizer/make_chat_goldens.py), and the sandbox caps.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "jinja/jinja.h"
#include "tokenizer/tokenizer.h"

namespace {

nlohmann::ordered_json load(const std::string& path) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return nlohmann::ordered_json::parse(ss.str());
}

void check_case(const std::string& tmpl, nlohmann::ordered_json ctx, const nlohmann::ordered_json& c, const std::string& label) {
    auto r = hr::jinja::render(tmpl, ctx);
    if (c.contains("error")) {
        ASSERT_FALSE(r.ok()) << label << ": expected error, got " << (r.ok() ? *r : "");
        EXPECT_EQ(r.error().message, c["error"].get<std::string>()) << label;
    } else {
        ASSERT_TRUE(r.ok()) << label << ": " << r.error().message;
        EXPECT_EQ(*r, c["text"].get<std::string>()) << label;
    }
}

TEST(ChatTemplate, FixtureGoldens) {
    const std::string dir = std::string(HR_FIXTURES_DIR) + "/tokenizers";
    if (!std::filesystem::exists(dir)) GTEST_SKIP() << "no fixtures";
    int n = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        const std::string name = entry.path().filename().string();
        if (name.size() < 18 || name.substr(name.size() - 18) != "-chat-goldens.json") continue;
        const auto g = load(entry.path().string());
        const std::string tmpl = g["template"].get<std::string>();
        for (const auto& c : g["cases"]) {
            nlohmann::ordered_json ctx{{"messages", c["messages"]}, {"bos_token", "<s>"}, {"eos_token", "</s>"},
                                       {"add_generation_prompt", true}};
            check_case(tmpl, ctx, c, name + " case " + std::to_string(n));
            ++n;
        }
    }
    EXPECT_GE(n, 8);
}

TEST(ChatTemplate, PublishedTemplatesMatchJinja2) {
    const auto all = load(std::string(HR_SOURCE_DIR) + "/tests/unit/tokenizer/data/chat_templates.json");
    int n = 0;
    for (const auto& t : all) {
        const std::string tmpl = t["template"].get<std::string>();
        int k = 0;
        for (const auto& c : t["cases"]) {
            nlohmann::ordered_json ctx{{"messages", c["messages"]}, {"add_generation_prompt", c["add_generation_prompt"]}};
            if (!t["bos_token"].get<std::string>().empty()) ctx["bos_token"] = t["bos_token"];
            if (!t["eos_token"].get<std::string>().empty()) ctx["eos_token"] = t["eos_token"];
            if (c.contains("tools")) ctx["tools"] = c["tools"];
            check_case(tmpl, ctx, c, t["name"].get<std::string>() + " case " + std::to_string(k++));
            ++n;
        }
    }
    EXPECT_GE(n, 150);
}

TEST(ChatTemplate, TokenizerAppliesModelTemplate) {
    const std::string dir = std::string(HR_FIXTURES_DIR) + "/models/tiny-mixtral";
    if (!std::filesystem::exists(dir)) GTEST_SKIP() << "no fixture";
    auto tok = hr::Tokenizer::from_model_dir(dir);
    ASSERT_TRUE(tok.ok()) << tok.error().message;
    nlohmann::json msgs = nlohmann::json::array({{{"role", "user"}, {"content", "Hi"}}});
    auto r = (*tok)->apply_chat_template(msgs, true);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(*r, "<s>[INST] Hi [/INST]");
    auto bad = (*tok)->apply_chat_template(nlohmann::json::object(), true);
    EXPECT_FALSE(bad.ok());
}

TEST(ChatTemplateSandbox, CapsAndRefusals) {
    const nlohmann::ordered_json ctx = nlohmann::ordered_json::object();
    hr::jinja::Limits small;
    small.max_loop_iterations = 1000;
    small.max_output_bytes = 1000;
    auto loops = hr::jinja::render("{% for i in range(100000) %}x{% endfor %}", ctx, small);
    ASSERT_FALSE(loops.ok());
    EXPECT_NE(loops.error().message.find("loop iterations"), std::string::npos);
    auto big = hr::jinja::render("{% for i in range(400) %}xxx{% endfor %}", ctx, small);
    ASSERT_FALSE(big.ok());
    EXPECT_NE(big.error().message.find("output exceeds"), std::string::npos);
    auto rec = hr::jinja::render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", ctx);
    ASSERT_FALSE(rec.ok());
    EXPECT_NE(rec.error().message.find("depth"), std::string::npos);
    auto deep = hr::jinja::render("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}", ctx);
    EXPECT_FALSE(deep.ok());
    auto mutate = hr::jinja::render("{% set l = [1] %}{{ l.append(2) }}", ctx);
    ASSERT_FALSE(mutate.ok());
    EXPECT_EQ(mutate.error().message, "access to attribute 'append' of 'list' object is unsafe.");
    EXPECT_FALSE(hr::jinja::render("{% include 'x.jinja' %}", ctx).ok());
    EXPECT_FALSE(hr::jinja::render("{% import 'x' as y %}", ctx).ok());
    EXPECT_FALSE(hr::jinja::render("{{ x.y }}", ctx).ok());
    EXPECT_FALSE(hr::jinja::render("{% if %}", ctx).ok());
    EXPECT_FALSE(hr::jinja::render("{{ 'a' + 1 }}", ctx).ok());
    auto raised = hr::jinja::render("{{ raise_exception('custom message') }}", ctx);
    ASSERT_FALSE(raised.ok());
    EXPECT_EQ(raised.error().message, "custom message");
}

}  // namespace
