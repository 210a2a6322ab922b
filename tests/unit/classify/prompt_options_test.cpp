// Prompt construction with the accuracy options: label descriptions in the header, few-shot examples as
// earlier chat turns (and as "Label:" lines without a chat template), and their validation.
#include <gtest/gtest.h>

#include "classify/classify.h"
#include "support/fixtures.h"

namespace hr {
namespace {

std::unique_ptr<Tokenizer> load_tok(const std::string& name) {
    auto t = Tokenizer::from_model_dir(test::model_fixture(name));
    EXPECT_TRUE(t.ok()) << t.error().message;
    return t.ok() ? std::move(t.value()) : nullptr;
}

std::string prompt_text(const Tokenizer& tok, const ClassifyRequest& r) {
    auto p = build_classify_prompt(tok, r, 4096);
    EXPECT_TRUE(p.ok()) << p.error().message;
    if (!p.ok()) return "";
    auto text = tok.decode(p->prompt, false);
    EXPECT_TRUE(text.ok());
    return text.ok() ? *text : "";
}

TEST(ClassifyPromptOptions, DescriptionsAndExamplesInTheChatPrompt) {
    auto tok = load_tok("tiny-mixtral");  // has a chat template
    ASSERT_TRUE(tok);
    ClassifyRequest r{.document = "THE DOCUMENT", .labels = {"invoice", "receipt"}, .calibrate = false};
    const std::string plain = prompt_text(*tok, r);
    EXPECT_NE(plain.find("Labels: invoice, receipt"), std::string::npos) << plain;
    EXPECT_NE(plain.find("THE DOCUMENT"), std::string::npos);

    r.label_descriptions = {"a bill to pay later", ""};
    const std::string described = prompt_text(*tok, r);
    EXPECT_NE(described.find("- invoice: a bill to pay later\n- receipt\n"), std::string::npos) << described;

    r.label_descriptions.clear();
    r.examples = {{"EXAMPLE ONE", "receipt"}, {"EXAMPLE TWO", "invoice"}};
    r.method = ClassifyMethod::labels;  // the default with examples (embedding) keeps them out of the prompt
    const std::string shots = prompt_text(*tok, r);
    const auto e1 = shots.find("EXAMPLE ONE"), e2 = shots.find("EXAMPLE TWO"), d = shots.find("THE DOCUMENT");
    ASSERT_NE(e1, std::string::npos) << shots;
    ASSERT_NE(e2, std::string::npos);
    ASSERT_NE(d, std::string::npos);
    EXPECT_LT(e1, e2);
    EXPECT_LT(e2, d);
    // Each example is answered by its label before the next one starts; the header comes once, first.
    EXPECT_NE(shots.substr(e1, e2 - e1).find("receipt"), std::string::npos);
    EXPECT_NE(shots.substr(e2, d - e2).find("invoice"), std::string::npos);
    EXPECT_LT(shots.find("Labels:"), e1);
    EXPECT_EQ(shots.find("Labels:", e1), std::string::npos);
}

TEST(ClassifyPromptOptions, ExamplesWithoutAChatTemplate) {
    auto tok = load_tok("tiny-llama");  // no chat template
    ASSERT_TRUE(tok);
    ClassifyRequest r{.document = "THE DOCUMENT", .labels = {"invoice", "receipt"}, .calibrate = false,
                      .length_normalize = false};
    r.examples = {{"EXAMPLE ONE", "receipt"}};
    r.method = ClassifyMethod::labels;
    const std::string t = prompt_text(*tok, r);
    EXPECT_NE(t.find("EXAMPLE ONE"), std::string::npos) << t;
    EXPECT_NE(t.find("Label: receipt"), std::string::npos) << t;
    EXPECT_EQ(t.substr(t.size() - 6), "Label:") << t;
}

TEST(ClassifyPromptOptions, CalibrationPromptsHoldTheContentFreeDocuments) {
    auto tok = load_tok("tiny-mixtral");
    ASSERT_TRUE(tok);
    ClassifyRequest r{.document = "THE DOCUMENT", .labels = {"invoice", "receipt"}, .calibrate = true};
    auto p = build_classify_prompt(*tok, r, 4096);
    ASSERT_TRUE(p.ok()) << p.error().message;
    ASSERT_EQ(p->calibration_prompts.size(), 3u);
    auto na = tok->decode(p->calibration_prompts[0], false);
    ASSERT_TRUE(na.ok());
    EXPECT_NE(na->find("Document:\nN/A\n"), std::string::npos) << *na;
    EXPECT_EQ(na->find("THE DOCUMENT"), std::string::npos);
}

TEST(ClassifyPromptOptions, BadOptionsAreRejected) {
    auto tok = load_tok("tiny-mixtral");
    ASSERT_TRUE(tok);
    auto err = [&](ClassifyRequest r) {
        auto p = build_classify_prompt(*tok, r, 4096);
        return p.ok() ? std::string("<accepted>") : p.error().message;
    };
    ClassifyRequest base{.document = "d", .labels = {"a", "b"}};
    ClassifyRequest r = base;
    r.label_descriptions = {"only one"};
    EXPECT_NE(err(r).find("label_descriptions has 1 entries, expected one per label (2)"), std::string::npos) << err(r);
    r = base;
    r.examples = {{"text", "c"}};
    EXPECT_NE(err(r).find("examples[0].label 'c' is not one of the labels"), std::string::npos) << err(r);
    r = base;
    r.examples = {{"", "a"}};
    EXPECT_NE(err(r).find("examples[0].text is empty"), std::string::npos) << err(r);
    r = base;
    r.examples.assign(kMaxClassifyExamples + 1, {"t", "a"});
    EXPECT_NE(err(r).find("at most"), std::string::npos) << err(r);
    // Calibration prompts that do not fit the context are an error naming them.
    ClassifyRequest longex = base;
    std::string big;
    for (int i = 0; i < 300; ++i) big += "word ";
    longex.examples = {{big, "a"}};
    longex.calibrate = true;
    longex.method = ClassifyMethod::labels;
    auto p = build_classify_prompt(*tok, longex, 128);
    ASSERT_FALSE(p.ok());
    EXPECT_NE(p.error().message.find("calibration prompt"), std::string::npos) << p.error().message;
}

}  // namespace
}  // namespace hr
