// Tokenizer components on small in-memory tokenizer.json files: load-time errors that name what is
// unsupported, merges as pairs, byte fallback, the streaming decoder over split byte sequences,
// UTF-8 lossy decoding, and concurrent encode from several threads.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace {

// A tiny SentencePiece-style BPE: chars a, b, ▁ and the 256 byte tokens; merges a+b, ▁+ab.
nlohmann::json tiny_sp() {
    nlohmann::json vocab = nlohmann::json::object();
    vocab["<unk>"] = 0;
    vocab["<s>"] = 1;
    vocab["</s>"] = 2;
    for (int b = 0; b < 256; ++b) vocab[fmt::format("<0x{:02X}>", b)] = 3 + b;
    vocab["a"] = 259;
    vocab["b"] = 260;
    vocab["\xE2\x96\x81"] = 261;
    vocab["ab"] = 262;
    vocab["\xE2\x96\x81" "ab"] = 263;
    nlohmann::json j;
    j["added_tokens"] = nlohmann::json::array({
        {{"id", 0}, {"content", "<unk>"}, {"special", true}, {"normalized", false}, {"lstrip", false}, {"rstrip", false}, {"single_word", false}},
        {{"id", 1}, {"content", "<s>"}, {"special", true}, {"normalized", false}, {"lstrip", false}, {"rstrip", false}, {"single_word", false}},
        {{"id", 2}, {"content", "</s>"}, {"special", true}, {"normalized", false}, {"lstrip", false}, {"rstrip", false}, {"single_word", false}}});
    j["normalizer"] = {{"type", "Sequence"}, {"normalizers", nlohmann::json::array({
        {{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
        {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}})}};
    j["pre_tokenizer"] = nullptr;
    j["post_processor"] = {{"type", "TemplateProcessing"},
                           {"single", nlohmann::json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                                             {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
                           {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}};
    j["decoder"] = {{"type", "Sequence"}, {"decoders", nlohmann::json::array({
        {{"type", "Replace"}, {"pattern", {{"String", "\xE2\x96\x81"}}}, {"content", " "}},
        {{"type", "ByteFallback"}}, {{"type", "Fuse"}}, {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}};
    j["model"] = {{"type", "BPE"}, {"unk_token", "<unk>"}, {"fuse_unk", true}, {"byte_fallback", true},
                  {"vocab", vocab}, {"merges", nlohmann::json::array({"a b", "\xE2\x96\x81 ab"})}};
    return j;
}

std::unique_ptr<hr::Tokenizer> load(const nlohmann::json& j) {
    auto t = hr::Tokenizer::from_json_text(j.dump());
    EXPECT_TRUE(t.ok()) << (t.ok() ? "" : t.error().message);
    return t.ok() ? std::move(t).value() : nullptr;
}

std::string load_error(const nlohmann::json& j) {
    auto t = hr::Tokenizer::from_json_text(j.dump());
    return t.ok() ? std::string("<loaded>") : t.error().message;
}

TEST(TokenizerLoad, UnsupportedPartsAreNamed) {
    auto j = tiny_sp();
    j["model"]["type"] = "WordPiece";
    EXPECT_NE(load_error(j).find("WordPiece"), std::string::npos);
    j = tiny_sp();
    j["normalizer"] = {{"type", "BertNormalizer"}};
    EXPECT_NE(load_error(j).find("BertNormalizer"), std::string::npos);
    j = tiny_sp();
    j["pre_tokenizer"] = {{"type", "Whitespace"}};
    EXPECT_NE(load_error(j).find("Whitespace"), std::string::npos);
    j = tiny_sp();
    j["decoder"] = {{"type", "WordPiece"}};
    EXPECT_NE(load_error(j).find("WordPiece"), std::string::npos);
    j = tiny_sp();
    j["post_processor"] = {{"type", "Mystery"}};
    EXPECT_NE(load_error(j).find("Mystery"), std::string::npos);
    j = tiny_sp();
    j["model"]["merges"] = nlohmann::json::array();
    EXPECT_NE(load_error(j).find("empty merge table"), std::string::npos);
    j = tiny_sp();
    j["model"]["merges"] = nlohmann::json::array({"a zz"});
    EXPECT_NE(load_error(j).find("not in the vocabulary"), std::string::npos);
    j = tiny_sp();
    j["model"]["merges"] = nlohmann::json::array({"a b c"});
    EXPECT_NE(load_error(j).find("exactly one space"), std::string::npos);
    j = tiny_sp();
    j["model"]["vocab"]["dup"] = 259;
    EXPECT_NE(load_error(j).find("259"), std::string::npos);
    EXPECT_NE(load_error(nlohmann::json::array()).find("object"), std::string::npos);
    auto bad_json = hr::Tokenizer::from_json_text("{\"model\": ");
    EXPECT_FALSE(bad_json.ok());
    j = tiny_sp();
    j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
    EXPECT_NE(load_error(j).find("(unclosed"), std::string::npos);
}

TEST(TokenizerBpe, MergesAsPairsEqualStrings) {
    auto a = load(tiny_sp());
    auto j = tiny_sp();
    j["model"]["merges"] = nlohmann::json::array({nlohmann::json::array({"a", "b"}), nlohmann::json::array({"\xE2\x96\x81", "ab"})});
    auto b = load(j);
    ASSERT_TRUE(a && b);
    for (const char* text : {"ab", "abab", "a b", "ba", " ab"}) {
        EXPECT_EQ(*a->encode(text, true), *b->encode(text, true)) << text;
    }
    EXPECT_EQ(*a->encode("ab ab", true), (std::vector<int32_t>{1, 263, 263}));
}

TEST(TokenizerBpe, ByteFallbackAndUnknown) {
    auto t = load(tiny_sp());
    ASSERT_TRUE(t);
    // "é" is not in the vocabulary: two byte tokens <0xC3><0xA9>.
    EXPECT_EQ(*t->encode("\xC3\xA9", false), (std::vector<int32_t>{261, 3 + 0xC3, 3 + 0xA9}));
    const int32_t ids[] = {261, 3 + 0xC3, 3 + 0xA9};
    EXPECT_EQ(*t->decode(ids, false), "\xC3\xA9");
    // An invalid byte run decodes to one U+FFFD per byte, as ByteFallback does.
    const int32_t bad[] = {259, 3 + 0xC3, 259};
    EXPECT_EQ(*t->decode(bad, false), "a\xEF\xBF\xBD" "a");
    // Without byte fallback, unknown characters fuse into one <unk>.
    auto j = tiny_sp();
    j["model"]["byte_fallback"] = false;
    auto u = load(j);
    ASSERT_TRUE(u);
    EXPECT_EQ(*u->encode("a\xC3\xA9\xC3\xA9" "b", false), (std::vector<int32_t>{261, 259, 0, 260}));
}

TEST(TokenizerStream, ByteSequencesSplitAcrossPushes) {
    auto t = load(tiny_sp());
    ASSERT_TRUE(t);
    // "a🦙b": the llama is four byte tokens; nothing is emitted until the run ends.
    const std::vector<int32_t> ids = {259, 3 + 0xF0, 3 + 0x9F, 3 + 0xA6, 3 + 0x99, 260};
    hr::StreamDecoder sd(*t, false);
    std::vector<std::string> pieces;
    for (int32_t id : ids) pieces.push_back(sd.push(id));
    pieces.push_back(sd.finish());
    EXPECT_EQ(pieces[0], "a");
    for (int k = 1; k <= 4; ++k) EXPECT_EQ(pieces[k], "") << k;
    EXPECT_EQ(pieces[5], "\xF0\x9F\xA6\x99" "b");
    std::string all;
    for (const auto& p : pieces) {
        EXPECT_FALSE(hr::utf8::first_invalid(p).has_value());
        all += p;
    }
    EXPECT_EQ(all, *t->decode(ids, false));
    // A run that turns invalid later: the valid prefix must not have been emitted on its own.
    const std::vector<int32_t> bad = {3 + 0xE2, 3 + 0x82, 3 + 0xAC, 3 + 0xFF, 259};
    std::string acc;
    for (int32_t id : bad) acc += sd.push(id);
    acc += sd.finish();
    EXPECT_EQ(acc, *t->decode(bad, false));
    // Leading-space strip applies to the first token only, also when streaming.
    const std::vector<int32_t> words = {263, 263, 2, 263};
    hr::StreamDecoder skip(*t, true);
    acc.clear();
    for (int32_t id : words) acc += skip.push(id);
    acc += skip.finish();
    EXPECT_EQ(acc, *t->decode(words, true));
    EXPECT_EQ(acc, "ab ab ab");
}

TEST(TokenizerModelDir, LlamaClassFlagsOverridePostProcessor) {
    // transformers' LlamaTokenizerFast rebuilds the template from add_bos_token/add_eos_token.
    const auto dir = std::filesystem::temp_directory_path() / ("hr_tok_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    {
        std::ofstream(dir / "tokenizer.json") << tiny_sp().dump();
        std::ofstream(dir / "tokenizer_config.json")
            << R"({"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "add_eos_token": true,
                  "chat_template": [{"name": "default", "template": "{{ bos_token }}x"}, {"name": "rag", "template": "y"}]})";
    }
    auto t = hr::Tokenizer::from_model_dir(dir.string());
    ASSERT_TRUE(t.ok()) << t.error().message;
    EXPECT_EQ(*(*t)->encode("ab", true), (std::vector<int32_t>{1, 263, 2}));
    EXPECT_EQ(*(*t)->apply_chat_template(nlohmann::json::array(), false), "<s>x");
    {
        std::ofstream(dir / "tokenizer_config.json") << R"({"tokenizer_class": "LlamaTokenizer", "eos_token": "</s>", "add_bos_token": false})";
    }
    auto u = hr::Tokenizer::from_model_dir(dir.string());
    ASSERT_TRUE(u.ok()) << u.error().message;
    EXPECT_EQ(*(*u)->encode("ab", true), (std::vector<int32_t>{263}));
    {
        std::ofstream(dir / "tokenizer_config.json") << R"({"bos_token": "<nope>"})";
    }
    EXPECT_FALSE(hr::Tokenizer::from_model_dir(dir.string()).ok());
    std::filesystem::remove_all(dir);
}

TEST(TokenizerUtf8, LossyMatchesRustMaximalSubparts) {
    EXPECT_EQ(hr::utf8::lossy("a\xF0\x9F\xA6"), "a\xEF\xBF\xBD");          // truncated 4-byte: one U+FFFD
    EXPECT_EQ(hr::utf8::lossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate: 3
    EXPECT_EQ(hr::utf8::lossy("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");     // overlong
    EXPECT_EQ(hr::utf8::lossy("\xE2\x82\xAC"), "\xE2\x82\xAC");
    EXPECT_TRUE(hr::utf8::ends_with_incomplete("x\xE2\x82"));
    EXPECT_FALSE(hr::utf8::ends_with_incomplete("x\xE2\x82\xAC"));
}

TEST(TokenizerUtf8, NextCpNeverReadsPastTheEnd) {
    // A truncated sequence at the end (found by fuzz_jinja: split() of a string with stray bytes).
    const std::string s = "a\xE2\x82";
    size_t i = 0;
    EXPECT_EQ(hr::utf8::next_cp(s, i), 'a');
    EXPECT_EQ(hr::utf8::next_cp(s, i), 0xFFFDu);
    EXPECT_EQ(i, 2u);
    EXPECT_EQ(hr::utf8::next_cp(s, i), 0xFFFDu);
    EXPECT_EQ(i, 3u);
    size_t j = 0;
    EXPECT_EQ(hr::utf8::next_cp("\xE2\x82\xAC", j), 0x20ACu);
    EXPECT_EQ(j, 3u);
}

TEST(TokenizerThreads, ConcurrentEncodeIsDeterministic) {
    const std::string path = std::string(HR_FIXTURES_DIR) + "/tokenizers/deepseek/tokenizer.json";
    if (!std::filesystem::exists(path)) GTEST_SKIP() << "no fixture";
    auto tok = hr::Tokenizer::from_file(path);
    ASSERT_TRUE(tok.ok()) << tok.error().message;
    const std::vector<std::string> texts = {"Hello world! It's 2024.", "日本語のテキスト 🦙", "  code(x) {\n\treturn 1;\n}",
                                            "<｜begin▁of▁sentence｜>hi", "don't stop   believing"};
    std::vector<std::vector<int32_t>> want;
    for (const auto& s : texts) want.push_back(*(*tok)->encode(s, true));
    std::vector<int> mismatches(4, 0);
    std::vector<std::thread> threads;
    for (int k = 0; k < 4; ++k) {
        threads.emplace_back([&, k] {
            for (int r = 0; r < 200; ++r) {
                const size_t i = static_cast<size_t>(r + k) % texts.size();
                auto got = (*tok)->encode(texts[i], true);
                if (!got.ok() || *got != want[i]) ++mismatches[k];
            }
        });
    }
    for (auto& th : threads) th.join();
    for (int m : mismatches) EXPECT_EQ(m, 0);
}

}  // namespace
