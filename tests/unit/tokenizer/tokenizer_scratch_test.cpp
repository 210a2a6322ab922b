// Issue 17 row 4: per-thread tokenizer scratch must not keep the high-water mark of one huge input.
// Measured with mallinfo2 (bytes allocated and not freed in the main arena, where this thread allocates).
#include <malloc.h>

#include <string>

#include <gtest/gtest.h>

#include "tokenizer/tokenizer.h"

namespace {

size_t heap_in_use() { return mallinfo2().uordblks; }

void check_returns_scratch(const std::string& tokenizer_json, const std::string& big) {
    auto tok = hr::Tokenizer::from_file(std::string(HR_FIXTURES_DIR) + tokenizer_json);
    ASSERT_TRUE(tok.ok()) << tok.error().message;
    ASSERT_TRUE((*tok)->encode("warm up the scratch buffers", true).ok());
    const size_t before = heap_in_use();
    {
        auto ids = (*tok)->encode(big, true);
        ASSERT_TRUE(ids.ok()) << ids.error().message;
        EXPECT_GT(ids->size(), 10u);
    }
    const size_t after = heap_in_use();
    // unfixed: 16 bytes per symbol of the largest word (16 MB for 1 MB) or 40 bytes per piece stay allocated
    EXPECT_LT(after, before + (2u << 20)) << "scratch kept " << (after - before) << " bytes after one large input";
}

TEST(TokenizerScratch, OneHugeWordIsNotRetained) {
    check_returns_scratch("/tokenizers/llama2/tokenizer.json", std::string(1 << 20, 'a'));
}

TEST(TokenizerScratch, ManyPiecesAreNotRetained) {
    std::string words;
    while (words.size() < (1u << 20)) words += "ab ";
    check_returns_scratch("/tokenizers/deepseek/tokenizer.json"  /* byte-level pre-tokenizer: one piece per word */, words);
}

}  // namespace
