// Tokenizer vs Hugging Face goldens (tests/fixtures/tokenizers/*/goldens.json): encode with BOS and
// decode must match exactly; plus the streaming decoder and the model-dir loader.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"

namespace {

const std::string kFixtures = HR_FIXTURES_DIR;

nlohmann::json load_json(const std::string& path) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return nlohmann::json::parse(ss.str());
}

class TokenizerGoldens : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerGoldens, EncodeAndDecodeMatchHuggingFace) {
    const std::string dir = kFixtures + "/tokenizers/" + GetParam();
    if (!std::filesystem::exists(dir + "/goldens.json")) GTEST_SKIP() << "no fixture " << dir;
    auto tok = hr::Tokenizer::from_file(dir + "/tokenizer.json");
    ASSERT_TRUE(tok.ok()) << tok.error().message;
    const auto goldens = load_json(dir + "/goldens.json");
    ASSERT_GT(goldens.size(), 0u);
    for (const auto& g : goldens) {
        const std::string text = g["text"].get<std::string>();
        const auto expected = g["ids"].get<std::vector<int32_t>>();
        auto ids = (*tok)->encode(text, true);
        ASSERT_TRUE(ids.ok()) << ids.error().message;
        EXPECT_EQ(*ids, expected) << "text: " << text;
        auto decoded = (*tok)->decode(expected, true);
        ASSERT_TRUE(decoded.ok()) << decoded.error().message;
        EXPECT_EQ(*decoded, g["decoded"].get<std::string>()) << "text: " << text;

        // Streaming: the concatenation of emitted pieces is the whole decode.
        hr::StreamDecoder sd(**tok, true);
        std::string acc;
        for (int32_t id : expected) acc += sd.push(id);
        acc += sd.finish();
        EXPECT_EQ(acc, *decoded) << "text: " << text;
    }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TokenizerGoldens, ::testing::Values("mistral", "llama2"));

TEST(TokenizerModelDir, ReadsBosEosAndTemplate) {
    const std::string dir = kFixtures + "/models/tiny-mixtral";
    if (!std::filesystem::exists(dir)) GTEST_SKIP() << "no fixture " << dir;
    auto tok = hr::Tokenizer::from_model_dir(dir);
    ASSERT_TRUE(tok.ok()) << tok.error().message;
    EXPECT_EQ((*tok)->bos_id(), std::optional<int32_t>(1));
    EXPECT_EQ((*tok)->eos_id(), std::optional<int32_t>(2));
    EXPECT_EQ((*tok)->vocab_size(), 32000);
    EXPECT_TRUE((*tok)->is_special(1));
    EXPECT_FALSE((*tok)->is_special(22557));
    EXPECT_FALSE((*tok)->chat_template().empty());
}

TEST(TokenizerTokenBytes, SentencePieceLeadingSpaceAndBytes) {
    auto tok = hr::Tokenizer::from_file(kFixtures + "/tokenizers/mistral/tokenizer.json");
    ASSERT_TRUE(tok.ok()) << tok.error().message;
    const auto hello = (*tok)->token_to_id("\xE2\x96\x81Hello");
    ASSERT_TRUE(hello.has_value());
    EXPECT_EQ((*tok)->token_bytes(*hello), " Hello");
    const auto byte = (*tok)->token_to_id("<0xE2>");
    ASSERT_TRUE(byte.has_value());
    EXPECT_EQ((*tok)->token_bytes(*byte), std::string("\xE2"));
    EXPECT_EQ((*tok)->token_bytes(1), "<s>");
    // As the first token of a decode, the leading space is dropped (documented rule).
    const int32_t one[] = {*hello};
    EXPECT_EQ(*(*tok)->decode(one, false), "Hello");
}

TEST(TokenizerErrors, InvalidInputsAreErrorsNotCrashes) {
    auto tok = hr::Tokenizer::from_file(kFixtures + "/tokenizers/mistral/tokenizer.json");
    ASSERT_TRUE(tok.ok()) << tok.error().message;
    auto bad_utf8 = (*tok)->encode(std::string("ab\xFF"), true);
    ASSERT_FALSE(bad_utf8.ok());
    EXPECT_NE(bad_utf8.error().message.find("offset 2"), std::string::npos);
    const int32_t bad_ids[] = {1, 32000};
    auto d = (*tok)->decode(bad_ids, false);
    ASSERT_FALSE(d.ok());
    EXPECT_NE(d.error().message.find("32000"), std::string::npos);
    hr::StreamDecoder sd(**tok, false);
    EXPECT_FALSE(sd.try_push(-1).ok());
    auto missing = hr::Tokenizer::from_file("/nonexistent/tokenizer.json");
    EXPECT_FALSE(missing.ok());
}

}  // namespace
