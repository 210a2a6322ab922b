// ggml block dequantizer against the `gguf` PyPI package: tests/fixtures/gguf/blocks.safetensors was made by
// `python3 tools/gguf_reference.py blocks` (random blocks with finite f16 scales of varied magnitude,
// dequantized by gguf.quants.dequantize). Every value must match bit for bit (memcmp of the floats).
#include "quant/ggml_blocks.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "io/gguf.h"
#include "io/safetensors.h"

namespace hr::quant {
namespace {

std::shared_ptr<io::SafetensorsFile> fixture() {
    static auto f = [] {
        auto r = io::SafetensorsFile::open(std::string(HR_FIXTURES_DIR) + "/gguf/blocks.safetensors");
        EXPECT_TRUE(r.ok()) << r.error().message;
        return r.ok() ? *r : nullptr;
    }();
    return f;
}

struct Case {
    const char* name;  // ggml type name, as the fixture's tensors are named
    DType dtype;
};

class GgmlBlocksTest : public ::testing::TestWithParam<Case> {};

TEST_P(GgmlBlocksTest, BitExactWithGgufPackage) {
    const Case c = GetParam();
    auto f = fixture();
    ASSERT_TRUE(f);
    const auto* raw = f->find(std::string(c.name) + ".raw");
    const auto* expected = f->find(std::string(c.name) + ".expected");
    ASSERT_TRUE(raw && expected) << c.name;
    ASSERT_EQ(raw->shape.size(), 2u);
    ASSERT_EQ(expected->shape.size(), 2u);
    const int64_t rows = expected->shape[0];
    const int64_t cols = expected->shape[1];
    ASSERT_EQ(raw->shape[0], rows);
    if (is_ggml_block_dtype(c.dtype)) {
        ASSERT_TRUE(check_ggml_cols(c.dtype, cols, c.name).ok());
        ASSERT_EQ(raw->shape[1], ggml_row_bytes(c.dtype, cols)) << c.name;
    } else {
        ASSERT_EQ(raw->shape[1], cols * static_cast<int64_t>(dtype_size(c.dtype)));
    }
    // Row by row, as a loader dequantizes one row of a weight at a time.
    std::vector<float> got(static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; ++r) {
        ggml_dequantize(c.dtype, raw->data + r * raw->shape[1], got.data() + r * cols, cols);
    }
    const auto* want = reinterpret_cast<const float*>(expected->data);
    int mismatches = 0;
    for (int64_t i = 0; i < rows * cols; ++i) {
        if (std::memcmp(&got[i], &want[i], 4) != 0 && ++mismatches <= 5) {
            ADD_FAILURE() << c.name << " element " << i << " (row " << i / cols << ", col " << i % cols
                          << "): headroom " << got[i] << ", gguf package " << want[i];
        }
    }
    EXPECT_EQ(mismatches, 0) << c.name;
    // The whole buffer at once (several rows in one call) gives the same bits.
    std::vector<float> all(got.size());
    ggml_dequantize(c.dtype, raw->data, all.data(), rows * cols);
    EXPECT_EQ(std::memcmp(all.data(), got.data(), got.size() * 4), 0) << c.name;
}

INSTANTIATE_TEST_SUITE_P(AllTypes, GgmlBlocksTest,
                         ::testing::Values(Case{"F32", DType::f32}, Case{"F16", DType::f16}, Case{"BF16", DType::bf16},
                                           Case{"Q8_0", DType::gg_q8_0}, Case{"Q4_0", DType::gg_q4_0},
                                           Case{"Q4_1", DType::gg_q4_1}, Case{"Q5_0", DType::gg_q5_0},
                                           Case{"Q5_1", DType::gg_q5_1}, Case{"Q4_K", DType::gg_q4_k},
                                           Case{"Q5_K", DType::gg_q5_k}, Case{"Q6_K", DType::gg_q6_k}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(GgmlBlocks, SizesMatchTheGgmlTypeTable) {
    for (DType t : {DType::gg_q8_0, DType::gg_q4_0, DType::gg_q4_1, DType::gg_q5_0, DType::gg_q5_1, DType::gg_q4_k,
                    DType::gg_q5_k, DType::gg_q6_k}) {
        bool found = false;
        for (uint32_t id = 0; id < 64; ++id) {
            auto dt = io::dtype_for_ggml(id, "t");
            if (!dt.ok() || *dt != t) continue;
            found = true;
            auto sz = io::ggml_type_size(id);
            ASSERT_TRUE(sz.has_value());
            EXPECT_EQ(sz->block_elems, ggml_block_elems(t)) << dtype_name(t);
            EXPECT_EQ(sz->block_bytes, ggml_block_bytes(t)) << dtype_name(t);
            EXPECT_EQ(io::ggml_type_name(id), dtype_name(t));
        }
        EXPECT_TRUE(found) << dtype_name(t);
    }
}

TEST(GgmlBlocks, CheckColsRejectsPartialBlocks) {
    EXPECT_TRUE(check_ggml_cols(DType::gg_q4_k, 512, "w").ok());
    auto s = check_ggml_cols(DType::gg_q4_k, 576, "blk.0.attn_q.weight");
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message.find("blk.0.attn_q.weight"), std::string::npos);
    EXPECT_NE(s.error().message.find("576"), std::string::npos);
    EXPECT_FALSE(check_ggml_cols(DType::gg_q8_0, 0, "w").ok());
    EXPECT_FALSE(check_ggml_cols(DType::gg_q8_0, -32, "w").ok());
    EXPECT_FALSE(check_ggml_cols(DType::f32, 32, "w").ok());
}

}  // namespace
}  // namespace hr::quant
