// unpermute_qk_rows against llama.cpp's convert_hf_to_gguf Q/K permutation, computed in numpy by
// `python3 tools/gguf_reference.py blocks` (tests/fixtures/gguf/blocks.safetensors, "permute.h<n>.*"):
// un-permuting the GGUF order must give back the Hugging Face rows exactly, for 9, 3, 2 and 1 heads
// (SmolLM2: 9 query heads, 3 kv heads, head_dim 64).
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "io/gguf.h"
#include "io/safetensors.h"

namespace hr::io {
namespace {

std::shared_ptr<SafetensorsFile> fixture() {
    auto r = SafetensorsFile::open(std::string(HR_FIXTURES_DIR) + "/gguf/blocks.safetensors");
    EXPECT_TRUE(r.ok()) << r.error().message;
    return r.ok() ? *r : nullptr;
}

TEST(GgufPermute, RestoresHuggingFaceRowOrder) {
    auto f = fixture();
    ASSERT_TRUE(f);
    for (int n_head : {9, 3, 2, 1}) {
        SCOPED_TRACE(n_head);
        const auto* hf = f->find("permute.h" + std::to_string(n_head) + ".hf");
        const auto* gg = f->find("permute.h" + std::to_string(n_head) + ".gguf");
        ASSERT_TRUE(hf && gg);
        const int64_t rows = hf->shape[0], cols = hf->shape[1];
        ASSERT_EQ(gg->shape, hf->shape);
        // The fixture is a real permutation (not the identity) whenever head_dim > 2.
        if (rows / n_head > 2) {
            EXPECT_NE(std::memcmp(hf->data, gg->data, hf->nbytes), 0);
        }
        std::vector<float> w(static_cast<size_t>(rows * cols));
        std::memcpy(w.data(), gg->data, gg->nbytes);
        ASSERT_TRUE(unpermute_qk_rows(w.data(), rows, cols, n_head).ok());
        EXPECT_EQ(std::memcmp(w.data(), hf->data, hf->nbytes), 0);
        // The byte version on the same rows (as for the rows of a block-quantized weight).
        std::vector<uint8_t> b(gg->data, gg->data + gg->nbytes);
        ASSERT_TRUE(unpermute_qk_row_bytes(b.data(), rows, cols * 4, n_head).ok());
        EXPECT_EQ(std::memcmp(b.data(), hf->data, hf->nbytes), 0);
    }
}

TEST(GgufPermute, RejectsRowsThatDoNotSplitIntoHeads) {
    std::vector<float> w(30, 1.0f);
    auto s = unpermute_qk_rows(w.data(), 10, 3, 3);  // 10 rows, 3 heads
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message.find("n_head = 3"), std::string::npos);
    EXPECT_FALSE(unpermute_qk_rows(w.data(), 10, 3, 0).ok());
    EXPECT_FALSE(unpermute_qk_rows(w.data(), 6, 3, 6).ok());  // head_dim 1 has no pairs
    EXPECT_FALSE(unpermute_qk_rows(w.data(), 0, 3, 1).ok());
    for (float x : w) EXPECT_EQ(x, 1.0f);
}

}  // namespace
}  // namespace hr::io
