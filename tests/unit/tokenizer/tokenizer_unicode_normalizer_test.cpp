// Unicode normalizers (NFC, NFD, NFKC, NFKD; ICU) on a tiny in-memory byte-fallback tokenizer: composed
// and decomposed input, Hangul jamo, canonical reordering, text already normalized, normalizers inside a
// Sequence, normalized added tokens, and invalid UTF-8 rejected before normalization.
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"

namespace {

constexpr int32_t kByte0 = 1;           // <0x00> .. <0xFF> are ids 1..256
constexpr int32_t kEAcute = 259;        // "é" U+00E9
constexpr int32_t kGa = 260;            // "가" U+AC00
constexpr int32_t kE = 261;             // "e"
constexpr int32_t kCombAcute = 262;     // U+0301 COMBINING ACUTE ACCENT

int32_t byte_id(unsigned char b) { return kByte0 + b; }

// No pre-tokenizer, so the whole normalized text is one BPE word; characters outside the vocabulary
// fall back to byte tokens, so decode(encode(x)) is exactly the normalized x.
nlohmann::json tiny(const nlohmann::json& normalizer) {
    nlohmann::json vocab = nlohmann::json::object();
    vocab["<unk>"] = 0;
    for (int b = 0; b < 256; ++b) vocab[fmt::format("<0x{:02X}>", b)] = kByte0 + b;
    vocab["a"] = 257;
    vocab["b"] = 258;
    vocab["\xC3\xA9"] = kEAcute;
    vocab["\xEA\xB0\x80"] = kGa;
    vocab["e"] = kE;
    vocab["\xCC\x81"] = kCombAcute;
    vocab["ab"] = 263;
    nlohmann::json j;
    j["added_tokens"] = nlohmann::json::array({{{"id", 0}, {"content", "<unk>"}, {"special", true},
                                                {"normalized", false}, {"lstrip", false}, {"rstrip", false},
                                                {"single_word", false}}});
    j["normalizer"] = normalizer;
    j["pre_tokenizer"] = nullptr;
    j["post_processor"] = nullptr;
    j["decoder"] = {{"type", "Sequence"}, {"decoders", nlohmann::json::array({{{"type", "ByteFallback"}}, {{"type", "Fuse"}}})}};
    j["model"] = {{"type", "BPE"}, {"unk_token", "<unk>"}, {"fuse_unk", true}, {"byte_fallback", true},
                  {"vocab", vocab}, {"merges", nlohmann::json::array({"a b"})}};
    return j;
}

std::unique_ptr<hr::Tokenizer> load(const nlohmann::json& j) {
    auto t = hr::Tokenizer::from_json_text(j.dump());
    EXPECT_TRUE(t.ok()) << (t.ok() ? "" : t.error().message);
    return t.ok() ? std::move(t).value() : nullptr;
}

std::vector<int32_t> enc(const hr::Tokenizer& t, const std::string& text) {
    auto r = t.encode(text, false);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    return r.ok() ? r.value() : std::vector<int32_t>{-1};
}

// What the model sees after normalization (byte fallback makes the round trip exact).
std::string normalized(const hr::Tokenizer& t, const std::string& text) {
    auto d = t.decode(enc(t, text), false);
    EXPECT_TRUE(d.ok()) << (d.ok() ? "" : d.error().message);
    return d.ok() ? d.value() : std::string("<error>");
}

const nlohmann::json kNfc = {{"type", "NFC"}};

TEST(TokenizerNfc, ComposesCombiningMarks) {
    auto t = load(tiny(kNfc));
    ASSERT_TRUE(t);
    EXPECT_EQ(enc(*t, "e\xCC\x81"), std::vector<int32_t>{kEAcute});       // e + U+0301 -> U+00E9
    EXPECT_EQ(enc(*t, "\xC3\xA9"), std::vector<int32_t>{kEAcute});        // already composed
    EXPECT_EQ(normalized(*t, "cafe\xCC\x81"), "caf\xC3\xA9");
    // Canonical reordering: cedilla (ccc 202) sorts before acute (ccc 230) whichever comes first, then
    // a + acute composes to U+00E1 and the cedilla stays combining.
    EXPECT_EQ(normalized(*t, "a\xCC\x81\xCC\xA7"), "\xC3\xA1\xCC\xA7");
    EXPECT_EQ(normalized(*t, "a\xCC\xA7\xCC\x81"), "\xC3\xA1\xCC\xA7");
    // As `tokenizers` (Unicode 9.0 tables): U+1DF8 (assigned in 10.0) is a boundary, so the marks around it
    // keep their order, while the same marks without it are reordered.
    EXPECT_EQ(normalized(*t, "s\xCD\x9B\xCC\xA9"), "s\xCC\xA9\xCD\x9B");  // U+035B U+0329
    EXPECT_EQ(normalized(*t, "s\xCD\x9B\xE1\xB7\xB8\xCC\xA9"), "s\xCD\x9B\xE1\xB7\xB8\xCC\xA9");
    // A lone combining mark has nothing to compose with and is kept.
    EXPECT_EQ(enc(*t, "\xCC\x81"), std::vector<int32_t>{kCombAcute});
}

TEST(TokenizerNfc, ComposesHangulJamo) {
    auto t = load(tiny(kNfc));
    ASSERT_TRUE(t);
    // U+1100 U+1161 (L V) -> U+AC00 가
    EXPECT_EQ(enc(*t, "\xE1\x84\x80\xE1\x85\xA1"), std::vector<int32_t>{kGa});
    // U+1100 U+1161 U+11A8 (L V T) -> U+AC01 각, not in the vocabulary: its three UTF-8 bytes.
    EXPECT_EQ(enc(*t, "\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8"),
              (std::vector<int32_t>{byte_id(0xEA), byte_id(0xB0), byte_id(0x81)}));
    // LV syllable + trailing T -> LVT.
    EXPECT_EQ(normalized(*t, "\xEA\xB0\x80\xE1\x86\xA8"), "\xEA\xB0\x81");
}

TEST(TokenizerNfc, NormalizedTextIsUnchanged) {
    auto t = load(tiny(kNfc));
    ASSERT_TRUE(t);
    for (const std::string s : {"", "ab", "h\xC3\xA9llo w\xC3\xB6rld", "\xEA\xB0\x80\xEA\xB0\x81 \xE6\x97\xA5\xE6\x9C\xAC",
                                "\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7", "\xEF\xAC\x81 \xE2\x91\xA0"}) {
        EXPECT_EQ(normalized(*t, s), s);
    }
    EXPECT_EQ(enc(*t, "ab"), std::vector<int32_t>{263});
}

TEST(TokenizerNfc, OtherFormsAndSequence) {
    auto nfd = load(tiny({{"type", "NFD"}}));
    ASSERT_TRUE(nfd);
    EXPECT_EQ(enc(*nfd, "\xC3\xA9"), (std::vector<int32_t>{kE, kCombAcute}));
    EXPECT_EQ(normalized(*nfd, "\xEA\xB0\x81"), "\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8");
    EXPECT_EQ(normalized(*nfd, "\xEF\xAC\x81"), "\xEF\xAC\x81");  // compatibility forms stay under NFD
    auto nfkc = load(tiny({{"type", "NFKC"}}));
    ASSERT_TRUE(nfkc);
    EXPECT_EQ(normalized(*nfkc, "\xEF\xAC\x81 \xE2\x91\xA0 e\xCC\x81"), "fi 1 \xC3\xA9");  // ﬁ ① e+acute
    auto nfkd = load(tiny({{"type", "NFKD"}}));
    ASSERT_TRUE(nfkd);
    EXPECT_EQ(normalized(*nfkd, "\xEF\xAC\x81\xC3\xA9"), "fie\xCC\x81");
    // Inside a Sequence, in order: Replace sees the composed character only after NFC.
    auto seq = load(tiny({{"type", "Sequence"}, {"normalizers", nlohmann::json::array({
        kNfc, {{"type", "Replace"}, {"pattern", {{"String", "\xC3\xA9"}}}, {"content", "ab"}}})}}));
    ASSERT_TRUE(seq);
    EXPECT_EQ(enc(*seq, "e\xCC\x81"), std::vector<int32_t>{263});
    auto seq_rev = load(tiny({{"type", "Sequence"}, {"normalizers", nlohmann::json::array({
        {{"type", "Replace"}, {"pattern", {{"String", "\xC3\xA9"}}}, {"content", "ab"}}, kNfc})}}));
    ASSERT_TRUE(seq_rev);
    EXPECT_EQ(enc(*seq_rev, "e\xCC\x81"), std::vector<int32_t>{kEAcute});
}

TEST(TokenizerNfc, NormalizedAddedTokenMatchesEitherForm) {
    auto j = tiny(kNfc);
    // An added token written decomposed is matched by its NFC form after the input is normalized.
    j["added_tokens"].push_back({{"id", 264}, {"content", "<e\xCC\x81>"}, {"special", false}, {"normalized", true},
                                 {"lstrip", false}, {"rstrip", false}, {"single_word", false}});
    auto t = load(j);
    ASSERT_TRUE(t);
    EXPECT_EQ(enc(*t, "<\xC3\xA9>"), std::vector<int32_t>{264});
    EXPECT_EQ(enc(*t, "<e\xCC\x81>"), std::vector<int32_t>{264});
}

TEST(TokenizerNfc, InvalidUtf8IsAnErrorNotACrash) {
    auto t = load(tiny(kNfc));
    ASSERT_TRUE(t);
    for (const std::string& s : {std::string("e\xCC"), std::string("\xFF"), std::string("a\xE1\x84"),
                                std::string("\xED\xA0\x80"), std::string("e\xCC\x81\xC0\xAF")}) {
        auto r = t->encode(s, false);
        ASSERT_FALSE(r.ok());
        EXPECT_NE(r.error().message.find("UTF-8"), std::string::npos) << r.error().message;
    }
}

}  // namespace
