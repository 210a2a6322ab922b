// Random constrained outputs over the real Mistral vocabulary: every finished output parses and
// validates, no walk reaches a dead end, and the mask equals brute-force "does advance() accept it".
#include <gtest/gtest.h>

#include <thread>

#include "structured/constraint.h"
#include "unit/structured/structured_support.h"

using nlohmann::json;
namespace st = hr::structured_test;

namespace {

const hr::TokenVocab& vocab() {
    static auto v = st::vocab_from_tokenizer_json(st::mistral_tokenizer_path());
    if (!v.ok()) {
        ADD_FAILURE() << v.error().message;
        std::abort();
    }
    return v.value();
}

const char* kSchemas[] = {
    R"({"type":"object","properties":{"invoice_number":{"type":"string","pattern":"^INV-[0-9]{4,6}$"},
        "vendor":{"type":"string","minLength":1,"maxLength":40},"total":{"type":"number","minimum":0,"maximum":100000},
        "currency":{"enum":["EUR","USD","GBP"]},"paid":{"type":"boolean"},
        "lines":{"type":"array","minItems":1,"maxItems":3,"items":{"type":"object",
            "properties":{"description":{"type":"string","maxLength":30},"qty":{"type":"integer","minimum":1,"maximum":99},
                          "unit_price":{"type":"number"}},"required":["description","qty"],"additionalProperties":false}}},
        "required":["invoice_number","vendor","total","currency","lines"],"additionalProperties":false})",
    R"({"type":"array","items":{"anyOf":[{"type":"integer","minimum":-5,"maximum":5},{"type":"string","maxLength":3},{"type":"null"}]},"maxItems":5})",
    R"({"type":"object","properties":{"kind":{"const":"receipt"},"score":{"type":"number","minimum":0.5,"maximum":0.75},
        "tags":{"type":"array","items":{"type":"string","pattern":"[a-z]+(-[a-z]+)?","maxLength":8},"minItems":2,"maxItems":4}},
        "required":["kind","score","tags"]})",
    R"({"anyOf":[{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]},
                 {"type":"object","properties":{"a":{"type":"string","maxLength":4}},"required":["a"]}]})",
    R"({"type":["string","integer","null"],"maxLength":6,"minimum":100})",
    R"({"type":"object","properties":{"meta":{"type":"object","additionalProperties":{"type":"integer"}},
        "any":true,"name":{"type":"string","pattern":"\\w+ \\w+"}},"required":["meta","name"]})",
    R"({"type":"string","pattern":"(\\d{3}-)?\\d{4}|[A-F]{2}\\.[^x]"})",
    R"({"enum":[1,2.5,"x",[1,2],{"k":"v"},true]})",
};

TEST(StructuredSampling, VocabularyCoversAllBytes) {
    EXPECT_EQ(vocab().size(), 32000u);
    EXPECT_TRUE(vocab().covers_all_bytes());
    EXPECT_EQ(vocab().eos_id(), 2);
    EXPECT_GT(vocab().quote_trie().tokens.size(), 100u);
}

TEST(StructuredSampling, FinishedOutputsParseAndValidate) {
    std::mt19937_64 rng(1234);
    for (const char* text : kSchemas) {
        json schema = json::parse(text);
        auto c = hr::compile_json_schema(schema);
        ASSERT_TRUE(c.ok()) << c.error().message;
        int finished = 0;
        for (int i = 0; i < 12; ++i) {
            st::Sample s = st::sample_one(*c, vocab(), rng, 300);
            ASSERT_TRUE(s.error.empty()) << s.error << "\nschema: " << text << "\noutput: " << s.text;
            if (!s.finished) continue;
            ++finished;
            json v;
            ASSERT_NO_THROW(v = json::parse(s.text)) << s.text;
            auto ok = hr::validate_json(v, schema);
            EXPECT_TRUE(ok.ok()) << ok.error().message << "\nschema: " << text << "\noutput: " << s.text;
        }
        EXPECT_GT(finished, 0) << "no sample finished for " << text;
    }
}

TEST(StructuredSampling, JsonObjectAndChoice) {
    std::mt19937_64 rng(7);
    auto obj = hr::compile_json_object();
    for (int i = 0; i < 10; ++i) {
        st::Sample s = st::sample_one(obj, vocab(), rng, 300);
        ASSERT_TRUE(s.error.empty()) << s.error << " output: " << s.text;
        if (s.finished) {
            EXPECT_TRUE(json::parse(s.text).is_object()) << s.text;
        }
    }
    std::vector<std::string> labels = {"invoice", "receipt", "bank_statement", "contract", "other", "in"};
    auto ch = hr::compile_choice(labels);
    ASSERT_TRUE(ch.ok());
    for (int i = 0; i < 20; ++i) {
        st::Sample s = st::sample_one(*ch, vocab(), rng, 50);
        ASSERT_TRUE(s.error.empty() && s.finished) << s.error;
        EXPECT_NE(std::find(labels.begin(), labels.end(), s.text), labels.end()) << s.text;
    }
}

// The mask must be exactly the set of tokens that advance() accepts (plus EOS iff complete).
void expect_mask_is_exact(const hr::ConstraintState& state) {
    const hr::TokenVocab& v = vocab();
    std::vector<uint32_t> mask;
    state.allowed_tokens(v, mask);
    for (size_t id = 0; id < v.size(); ++id) {
        hr::ConstraintState copy = state;
        bool accepted = copy.advance(static_cast<int32_t>(id), v).ok();
        bool bit = (mask[id / 32] >> (id % 32)) & 1u;
        ASSERT_EQ(bit, accepted) << "token " << id << " \"" << v.token_bytes(static_cast<int32_t>(id))
                                 << "\" after \"" << state.text() << "\"";
    }
}

TEST(StructuredSampling, MaskEqualsBruteForce) {
    std::mt19937_64 rng(99);
    const char* picks[] = {kSchemas[0], kSchemas[2], kSchemas[3], kSchemas[6]};
    for (const char* text : picks) {
        auto c = hr::compile_json_schema(json::parse(text));
        ASSERT_TRUE(c.ok());
        st::Sample s = st::sample_one(*c, vocab(), rng, 300);
        ASSERT_TRUE(s.error.empty()) << s.error;
        // Replay the output byte by byte, checking the mask at up to 12 evenly spread prefixes.
        hr::ConstraintState state(*c);
        size_t stride = std::max<size_t>(1, s.text.size() / 12);
        for (size_t i = 0; i < s.text.size(); ++i) {
            if (i % stride == 0) expect_mask_is_exact(state);
            ASSERT_TRUE(state.advance_bytes(s.text.substr(i, 1)).ok());
        }
        expect_mask_is_exact(state);
    }
}

// One compiled constraint shared by threads (the mask cache fills concurrently): same seeds, same outputs.
TEST(StructuredSampling, SharedConstraintAcrossThreads) {
    auto c = hr::compile_json_schema(json::parse(kSchemas[2]));
    ASSERT_TRUE(c.ok());
    auto run = [&](uint64_t seed, std::vector<std::string>& out) {
        std::mt19937_64 rng(seed);
        for (int i = 0; i < 6; ++i) out.push_back(st::sample_one(*c, vocab(), rng, 200).text);
    };
    std::vector<std::string> a, b;
    std::thread ta(run, 5, std::ref(a)), tb(run, 6, std::ref(b));
    ta.join();
    tb.join();
    auto fresh = hr::compile_json_schema(json::parse(kSchemas[2]));
    ASSERT_TRUE(fresh.ok());
    c = fresh;  // a cold cache, single-threaded
    std::vector<std::string> a1, b1;
    run(5, a1);
    run(6, b1);
    EXPECT_EQ(a, a1);
    EXPECT_EQ(b, b1);
}

// Past the per-constraint cap on cached string masks, masks are computed without caching: still exact.
TEST(StructuredSampling, MaskStaysExactWhenTheCacheIsFull) {
    auto c = hr::compile_json_schema(json::parse(R"({"type":"string","pattern":"[a-c]*x?","maxLength":3000})"));
    ASSERT_TRUE(c.ok());
    hr::ConstraintState state(*c);
    ASSERT_TRUE(state.advance_bytes("\"").ok());
    std::vector<uint32_t> mask;
    for (int i = 0; i < 2100; ++i) {  // one new (state, length) key per character
        state.allowed_tokens(vocab(), mask);
        ASSERT_TRUE(state.advance_bytes(i % 2 ? "a" : "b").ok());
    }
    expect_mask_is_exact(state);
}

TEST(StructuredSampling, AdvanceRejectsDisallowedTokensAndLateEos) {
    const hr::TokenVocab& v = vocab();
    auto c = hr::compile_json_schema(json::parse(R"({"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]})"));
    ASSERT_TRUE(c.ok());
    hr::ConstraintState s(*c);
    EXPECT_FALSE(s.advance(v.eos_id(), v).ok());      // EOS before complete
    EXPECT_FALSE(s.advance(1, v).ok());               // <s>: special
    EXPECT_FALSE(s.advance(32000, v).ok());           // out of range
    EXPECT_FALSE(s.advance(-1, v).ok());
    ASSERT_TRUE(s.advance_bytes(R"({"a":7})").ok());
    EXPECT_TRUE(s.is_complete());
    EXPECT_FALSE(s.can_continue());
    std::vector<uint32_t> mask;
    s.allowed_tokens(v, mask);
    size_t set = 0;
    for (uint32_t w : mask) set += static_cast<size_t>(__builtin_popcount(w));
    EXPECT_EQ(set, 1u);  // only EOS
    EXPECT_TRUE(s.advance(v.eos_id(), v).ok());
    EXPECT_TRUE(s.finished());
    EXPECT_FALSE(s.advance(v.eos_id(), v).ok());
}

}  // namespace
