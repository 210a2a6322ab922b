// The GGUF tokenizer on tiny vocabularies: a "gpt2" (byte-level BPE) one and a "llama" (SentencePiece,
// merges derived from scores, byte fallback) one, built from a GgufVocab and from GGUF bytes written
// here; encodings under each tokenizer.ggml.pre, special tokens and flags, and the load errors (missing
// merges, token_type length, ids outside the vocabulary, unknown pre/model names, malformed merges).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "io/gguf.h"
#include "tokenizer/gguf_vocab.h"
#include "tokenizer/tokenizer.h"

namespace {

using hr::tok::GgufVocab;
constexpr int32_t kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kByte = 6;

// Byte-level: "<|end|>" (control), single characters, "<think>" (user-defined), and merges that build
// "hello", "Ġworld" and "12".
GgufVocab tiny_gpt2(const std::string& pre) {
    GgufVocab v;
    v.model = "gpt2";
    v.pre = pre;
    v.tokens = {"<|end|>", "h", "e", "l", "o", "\xC4\xA0" /* Ġ */, "w", "r", "d", "1", "2",
                "he", "ll", "hell", "hello", "\xC4\xA0w", "or", "\xC4\xA0wor", "\xC4\xA0worl", "\xC4\xA0world",
                "12", "<think>"};
    v.token_types.assign(v.tokens.size(), kNormal);
    v.token_types[0] = kControl;
    v.token_types.back() = kUserDefined;
    v.merges = {"h e", "l l", "he ll", "hell o", "\xC4\xA0 w", "o r", "\xC4\xA0w or", "\xC4\xA0wor l",
                "\xC4\xA0worl d", "1 2"};
    v.eos_id = 0;
    return v;
}

// SentencePiece: <unk>, <s>, </s>, the 256 byte tokens, then ▁, h, i, ▁h, ▁hi with scores (no merges).
GgufVocab tiny_llama() {
    GgufVocab v;
    v.model = "llama";
    v.pre = "default";
    v.tokens = {"<unk>", "<s>", "</s>"};
    v.token_types = {kUnknown, kControl, kControl};
    for (int b = 0; b < 256; ++b) {
        v.tokens.push_back(fmt::format("<0x{:02X}>", b));
        v.token_types.push_back(kByte);
    }
    for (const char* t : {"\xE2\x96\x81", "h", "i", "\xE2\x96\x81h", "\xE2\x96\x81hi"}) {
        v.tokens.emplace_back(t);
        v.token_types.push_back(kNormal);
    }
    v.scores.assign(v.tokens.size(), 0.0f);
    for (size_t i = 259; i < v.tokens.size(); ++i) v.scores[i] = -static_cast<float>(i - 259);
    v.bos_id = 1;
    v.eos_id = 2;
    v.unk_id = 0;
    v.chat_template = "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}{{ eos_token }}{% endfor %}";
    return v;
}

std::vector<int32_t> enc(const hr::Tokenizer& t, const std::string& s, bool special = false) {
    auto r = t.encode(s, special);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    return r.ok() ? *r : std::vector<int32_t>{};
}

std::string load_error(const GgufVocab& v) {
    auto t = hr::tokenizer_from_gguf_vocab(v);
    EXPECT_FALSE(t.ok());
    return t.ok() ? std::string() : t.error().message;
}

TEST(GgufVocab, Gpt2DefaultPreMergesDigitRuns) {
    auto t = hr::tokenizer_from_gguf_vocab(tiny_gpt2("default"));
    ASSERT_TRUE(t.ok()) << t.error().message;
    EXPECT_EQ(enc(**t, "hello world"), (std::vector<int32_t>{14, 19}));
    EXPECT_EQ(enc(**t, "12"), (std::vector<int32_t>{20}));
    EXPECT_EQ(enc(**t, "hello<|end|>"), (std::vector<int32_t>{14, 0}));
    EXPECT_EQ(enc(**t, "<think>he"), (std::vector<int32_t>{21, 11}));
    EXPECT_TRUE((*t)->is_special(0));
    EXPECT_FALSE((*t)->is_special(21));  // user-defined: matched whole, not special
    EXPECT_EQ((*t)->decode(std::vector<int32_t>{14, 19, 0}, false).value(), "hello world<|end|>");
    EXPECT_EQ((*t)->decode(std::vector<int32_t>{14, 19, 0}, true).value(), "hello world");
    EXPECT_EQ((*t)->eos_id(), 0);
    EXPECT_EQ((*t)->eos_token(), "<|end|>");
    // No add_bos/add_eos flags on a gpt2 vocabulary: nothing is added.
    EXPECT_EQ(enc(**t, "he", true), (std::vector<int32_t>{11}));
}

TEST(GgufVocab, SmollmPreSplitsEveryDigit) {
    auto t = hr::tokenizer_from_gguf_vocab(tiny_gpt2("smollm"));
    ASSERT_TRUE(t.ok()) << t.error().message;
    EXPECT_EQ(enc(**t, "12"), (std::vector<int32_t>{9, 10}));
    EXPECT_EQ(enc(**t, "hello world"), (std::vector<int32_t>{14, 19}));
}

TEST(GgufVocab, AddBosAndEosFlags) {
    GgufVocab v = tiny_gpt2("default");
    v.bos_id = 0;
    v.add_bos = true;
    v.add_eos = true;
    auto t = hr::tokenizer_from_gguf_vocab(v);
    ASSERT_TRUE(t.ok()) << t.error().message;
    EXPECT_EQ(enc(**t, "he", true), (std::vector<int32_t>{0, 11, 0}));
    v.eos_id.reset();
    EXPECT_NE(load_error(v).find("add_eos_token is true but there is no eos_token_id"), std::string::npos);
}

TEST(GgufVocab, LlamaScoresByteFallbackAndTemplate) {
    auto t = hr::tokenizer_from_gguf_vocab(tiny_llama());
    ASSERT_TRUE(t.ok()) << t.error().message;
    const int32_t sp = 259, h = 260, i = 261, sph = 262, sphi = 263;
    // "first" prefix space, BOS by default for llama vocabularies.
    EXPECT_EQ(enc(**t, "hi", true), (std::vector<int32_t>{1, sphi}));
    EXPECT_EQ(enc(**t, "hi hi"), (std::vector<int32_t>{sphi, sphi}));
    EXPECT_EQ(enc(**t, "ih"), (std::vector<int32_t>{sp, i, h}));
    // é is not in the vocabulary: its UTF-8 bytes C3 A9 as byte tokens (ids 3 + byte).
    EXPECT_EQ(enc(**t, "h\xC3\xA9"), (std::vector<int32_t>{sph, 3 + 0xC3, 3 + 0xA9}));
    EXPECT_EQ((*t)->decode(std::vector<int32_t>{1, sph, 3 + 0xC3, 3 + 0xA9}, true).value(), "h\xC3\xA9");
    EXPECT_EQ((*t)->decode(std::vector<int32_t>{sphi, sphi}, false).value(), "hi hi");
    EXPECT_EQ((*t)->bos_token(), "<s>");
    nlohmann::json msgs = nlohmann::json::array({{{"role", "user"}, {"content", "hi"}}});
    EXPECT_EQ((*t)->apply_chat_template(msgs, false).value(), "<s>[user] hi</s>");

    GgufVocab v = tiny_llama();
    v.add_space_prefix = false;
    v.add_bos = false;
    auto u = hr::tokenizer_from_gguf_vocab(v);
    ASSERT_TRUE(u.ok()) << u.error().message;
    EXPECT_EQ(enc(**u, "hi", true), (std::vector<int32_t>{h, i}));
    EXPECT_EQ((*u)->decode(std::vector<int32_t>{sphi}, false).value(), " hi");
}

TEST(GgufVocab, MergesFromScoresOrder) {
    // Best score first; a token's own splits in (left id, right id) order.
    std::vector<std::string> tokens = {"a", "b", "c", "ab", "bc", "abc"};
    std::vector<float> scores = {0, 0, 0, -2, -1, -3};
    auto m = hr::tok::merges_from_scores(tokens, scores);
    ASSERT_TRUE(m.ok()) << m.error().message;
    using P = std::pair<std::string, std::string>;
    EXPECT_EQ(*m, (std::vector<P>{{"b", "c"}, {"a", "b"}, {"ab", "c"}, {"a", "bc"}}));
    scores[4] = std::nanf("");
    EXPECT_FALSE(hr::tok::merges_from_scores(tokens, scores).ok());
}

TEST(GgufVocab, LoadErrorsNameWhatIsWrong) {
    GgufVocab v = tiny_gpt2("default");
    v.merges.clear();
    EXPECT_NE(load_error(v).find("needs tokenizer.ggml.merges"), std::string::npos);

    v = tiny_gpt2("default");
    v.token_types.pop_back();
    EXPECT_NE(load_error(v).find("token_type has 21 entries, expected one per token (22)"), std::string::npos);

    v = tiny_gpt2("default");
    v.eos_id = 22;
    EXPECT_NE(load_error(v).find("eos_token_id is 22, outside the vocabulary"), std::string::npos);
    v.eos_id = -1;
    EXPECT_NE(load_error(v).find("eos_token_id is -1"), std::string::npos);

    v = tiny_gpt2("some-new-model");
    const std::string e = load_error(v);
    EXPECT_NE(e.find("unsupported tokenizer.ggml.pre \"some-new-model\""), std::string::npos) << e;
    EXPECT_NE(e.find("smollm"), std::string::npos) << e;
    EXPECT_NE(e.find("llama-bpe"), std::string::npos) << e;
    EXPECT_NE(e.find("qwen2"), std::string::npos) << e;

    v = tiny_gpt2("default");
    v.model = "bert";
    EXPECT_NE(load_error(v).find("tokenizer.ggml.model is \"bert\""), std::string::npos);

    v = tiny_gpt2("default");
    v.merges[2] = "hell";
    EXPECT_NE(load_error(v).find("merges[2] is \"hell\""), std::string::npos);
    v.merges[2] = "he zz";
    EXPECT_NE(load_error(v).find("not in the vocabulary"), std::string::npos);

    v = tiny_gpt2("default");
    v.token_types[3] = 9;
    EXPECT_NE(load_error(v).find("token_type 9"), std::string::npos);

    GgufVocab l = tiny_llama();
    l.scores.clear();
    EXPECT_NE(load_error(l).find("needs tokenizer.ggml.merges or tokenizer.ggml.scores"), std::string::npos);
    l = tiny_llama();
    l.scores.pop_back();
    EXPECT_NE(load_error(l).find("scores has"), std::string::npos);
    l = tiny_llama();
    l.token_types[260] = kByte;  // "h" marked as a byte token
    EXPECT_NE(load_error(l).find("token_type byte but is not named <0xXX>"), std::string::npos);

    GgufVocab empty;
    empty.model = "gpt2";
    EXPECT_NE(load_error(empty).find("tokens is missing or empty"), std::string::npos);
}

// ---- the same through GGUF bytes (io::GgufFile::parse) ----

// Minimal GGUF v3 writer: metadata only, no tensors.
class Bytes {
public:
    void u32(uint32_t v) { raw(&v, 4); }
    void u64(uint64_t v) { raw(&v, 8); }
    void str(const std::string& s) {
        u64(s.size());
        raw(s.data(), s.size());
    }
    void kv_str(const std::string& k, const std::string& v) { key(k, 8), str(v); }
    void kv_u32(const std::string& k, uint32_t v) { key(k, 4), u32(v); }
    void kv_bool(const std::string& k, bool v) {
        key(k, 7);
        const uint8_t b = v ? 1 : 0;
        raw(&b, 1);
    }
    void kv_strs(const std::string& k, const std::vector<std::string>& v) {
        key(k, 9), u32(8), u64(v.size());
        for (const auto& s : v) str(s);
    }
    void kv_i32s(const std::string& k, const std::vector<int32_t>& v) {
        key(k, 9), u32(5), u64(v.size());
        for (int32_t x : v) raw(&x, 4);
    }
    void kv_f32s(const std::string& k, const std::vector<float>& v) {
        key(k, 9), u32(6), u64(v.size());
        for (float x : v) raw(&x, 4);
    }
    std::vector<uint8_t> finish(uint64_t n_kv) const {
        std::vector<uint8_t> out;
        const auto put = [&](const void* p, size_t n) {
            out.insert(out.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
        };
        put("GGUF", 4);
        const uint32_t version = 3;
        const uint64_t n_tensors = 0;
        put(&version, 4);
        put(&n_tensors, 8);
        put(&n_kv, 8);
        out.insert(out.end(), b_.begin(), b_.end());
        while (out.size() % 32 != 0) out.push_back(0);
        return out;
    }

private:
    void key(const std::string& k, uint32_t type) { str(k), u32(type); }
    void raw(const void* p, size_t n) { b_.insert(b_.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n); }
    std::vector<uint8_t> b_;
};

std::vector<uint8_t> gguf_bytes(const GgufVocab& v, bool with_types = true) {
    Bytes b;
    uint64_t n = 0;
    b.kv_str("general.architecture", "llama"), ++n;
    b.kv_str("tokenizer.ggml.model", v.model), ++n;
    if (!v.pre.empty()) b.kv_str("tokenizer.ggml.pre", v.pre), ++n;
    b.kv_strs("tokenizer.ggml.tokens", v.tokens), ++n;
    if (with_types) b.kv_i32s("tokenizer.ggml.token_type", v.token_types), ++n;
    if (!v.scores.empty()) b.kv_f32s("tokenizer.ggml.scores", v.scores), ++n;
    if (!v.merges.empty()) b.kv_strs("tokenizer.ggml.merges", v.merges), ++n;
    if (v.bos_id) b.kv_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(*v.bos_id)), ++n;
    if (v.eos_id) b.kv_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(*v.eos_id)), ++n;
    if (v.unk_id) b.kv_u32("tokenizer.ggml.unknown_token_id", static_cast<uint32_t>(*v.unk_id)), ++n;
    if (v.add_bos) b.kv_bool("tokenizer.ggml.add_bos_token", *v.add_bos), ++n;
    if (!v.chat_template.empty()) b.kv_str("tokenizer.chat_template", v.chat_template), ++n;
    return b.finish(n);
}

TEST(GgufVocab, FromGgufBytes) {
    const auto gpt2 = gguf_bytes(tiny_gpt2("smollm"));
    auto f = hr::io::GgufFile::parse(gpt2, "tiny-gpt2.gguf");
    ASSERT_TRUE(f.ok()) << f.error().message;
    auto t = hr::tokenizer_from_gguf(**f);
    ASSERT_TRUE(t.ok()) << t.error().message;
    EXPECT_EQ(enc(**t, "hello world 12<|end|>"), (std::vector<int32_t>{14, 19, 5, 9, 10, 0}));

    const auto llama = gguf_bytes(tiny_llama());
    auto g = hr::io::GgufFile::parse(llama, "tiny-llama.gguf");
    ASSERT_TRUE(g.ok()) << g.error().message;
    auto u = hr::tokenizer_from_gguf(**g);
    ASSERT_TRUE(u.ok()) << u.error().message;
    EXPECT_EQ(enc(**u, "hi", true), (std::vector<int32_t>{1, 263}));
    EXPECT_EQ((*u)->chat_template(), tiny_llama().chat_template);

    // Without token types only the special ids (here EOS) are special.
    const auto untyped = gguf_bytes(tiny_gpt2("default"), false);
    auto h = hr::io::GgufFile::parse(untyped, "untyped.gguf");
    ASSERT_TRUE(h.ok()) << h.error().message;
    auto w = hr::tokenizer_from_gguf(**h);
    ASSERT_TRUE(w.ok()) << w.error().message;
    EXPECT_TRUE((*w)->is_special(0));
    EXPECT_EQ(enc(**w, "<think>"), (std::vector<int32_t>{1}));  // not user-defined now: only its "h" is a token

    // A key with the wrong type is an error naming it.
    Bytes b;
    b.kv_u32("tokenizer.ggml.model", 7);
    const auto bad = b.finish(1);
    auto k = hr::io::GgufFile::parse(bad, "bad.gguf");
    ASSERT_TRUE(k.ok()) << k.error().message;
    auto e = hr::tokenizer_from_gguf(**k);
    ASSERT_FALSE(e.ok());
    EXPECT_NE(e.error().message.find("tokenizer.ggml.model"), std::string::npos) << e.error().message;

    Bytes none;
    none.kv_str("general.architecture", "llama");
    const auto no_tok = none.finish(1);
    auto m = hr::io::GgufFile::parse(no_tok, "none.gguf");
    ASSERT_TRUE(m.ok()) << m.error().message;
    auto e2 = hr::tokenizer_from_gguf(**m);
    ASSERT_FALSE(e2.ok());
    EXPECT_NE(e2.error().message.find("no tokenizer.ggml.model"), std::string::npos) << e2.error().message;
}

}  // namespace
