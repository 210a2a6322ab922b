// The real SmolLM2-135M-Instruct Q4_1 GGUF (skipped when ~/.cache/headroom has no copy: fetch it with
// scripts/fetch-model.sh): counts, metadata, and dequantized token_embd (Q8_0) and blk.0.attn_q (Q4_1)
// against the gguf package's values in tests/fixtures/gguf/smollm2_rows.safetensors, made by
// `python3 tools/gguf_reference.py smollm2` (a few rows bit for bit, and a checksum of every value).
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "io/gguf.h"
#include "io/safetensors.h"
#include "quant/ggml_blocks.h"

namespace hr::io {
namespace {

std::string model_path() {
    if (const char* p = std::getenv("HEADROOM_SMOLLM2_GGUF")) return p;
    const char* home = std::getenv("HOME");
    return std::string(home ? home : "/root") + "/.cache/headroom/SmolLM2-135M-Instruct.Q4_1.gguf";
}

// The same position-weighted checksum as tools/gguf_reference.py checksum64.
uint64_t checksum64(const std::vector<float>& v) {
    uint64_t s = 0;
    for (size_t i = 0; i < v.size(); ++i) {
        uint32_t bits;
        std::memcpy(&bits, &v[i], 4);
        s += static_cast<uint64_t>(bits) * (2 * static_cast<uint64_t>(i) + 1);
    }
    return s;
}

class SmolLM2Gguf : public ::testing::Test {
protected:
    void SetUp() override {
        if (!std::filesystem::exists(model_path())) {
            GTEST_SKIP() << model_path() << " is absent (run scripts/fetch-model.sh); skipping the real-file test";
        }
        auto r = GgufFile::open(model_path());
        ASSERT_TRUE(r.ok()) << r.error().message;
        file_ = *r;
    }
    std::shared_ptr<GgufFile> file_;
};

TEST_F(SmolLM2Gguf, CountsAndMetadata) {
    const GgufFile& f = *file_;
    EXPECT_EQ(f.version(), 3u);
    EXPECT_EQ(f.tensors().size(), 272u);
    EXPECT_EQ(f.metadata().size(), 33u);
    EXPECT_EQ(f.get_string("general.architecture")->value(), "llama");
    EXPECT_EQ(f.get_int("llama.block_count")->value(), 30);
    EXPECT_EQ(f.get_int("llama.embedding_length")->value(), 576);
    EXPECT_EQ(f.get_int("llama.attention.head_count")->value(), 9);
    EXPECT_EQ(f.get_int("llama.attention.head_count_kv")->value(), 3);
    EXPECT_EQ(f.get_float("llama.rope.freq_base")->value(), 100000.0);
    EXPECT_EQ(static_cast<float>(f.get_float("llama.attention.layer_norm_rms_epsilon")->value()), 1e-5f);
    EXPECT_EQ(f.get_bool("tokenizer.ggml.add_bos_token")->value(), false);
    EXPECT_EQ(f.get_string("tokenizer.ggml.pre")->value(), "smollm");
    EXPECT_EQ(f.get_int("tokenizer.ggml.eos_token_id")->value(), 2);
    const GgufArray* tokens = f.get_array("tokenizer.ggml.tokens");
    ASSERT_NE(tokens, nullptr);
    EXPECT_EQ(tokens->size(), 49152u);
    EXPECT_EQ(std::get<std::vector<std::string>>(tokens->values)[1], "<|im_start|>");
    ASSERT_NE(f.get_array("tokenizer.ggml.merges"), nullptr);
    EXPECT_EQ(f.get_array("tokenizer.ggml.merges")->size(), 48900u);
    EXPECT_EQ(f.get_array("tokenizer.ggml.token_type")->elem_type, uint32_t(GgufType::I32));
    auto tmpl = f.get_string("tokenizer.chat_template");
    ASSERT_TRUE(tmpl.ok() && tmpl->has_value());
    EXPECT_NE((*tmpl)->find("<|im_start|>"), std::string::npos);

    std::map<uint32_t, int> by_type;
    for (const auto& t : f.tensors()) {
        by_type[t.ggml_type]++;
        EXPECT_TRUE(t.supported) << t.name;
        EXPECT_EQ(t.offset % f.alignment(), 0u) << t.name;
    }
    EXPECT_EQ(by_type[uint32_t(GgmlType::Q4_1)], 210);
    EXPECT_EQ(by_type[uint32_t(GgmlType::F32)], 61);
    EXPECT_EQ(by_type[uint32_t(GgmlType::Q8_0)], 1);
    const GgufTensor* emb = f.find("token_embd.weight");
    ASSERT_NE(emb, nullptr);
    EXPECT_EQ(emb->shape, (std::vector<int64_t>{49152, 576}));
    EXPECT_EQ(emb->dtype, DType::gg_q8_0);
    const GgufTensor* q = f.find("blk.0.attn_q.weight");
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(q->shape, (std::vector<int64_t>{576, 576}));
    EXPECT_EQ(q->dtype, DType::gg_q4_1);
    EXPECT_EQ(f.find("blk.0.attn_k.weight")->shape, (std::vector<int64_t>{192, 576}));
    EXPECT_EQ(f.find("blk.0.ffn_down.weight")->shape, (std::vector<int64_t>{576, 1536}));
    EXPECT_EQ(f.find("output_norm.weight")->dtype, DType::f32);
}

TEST_F(SmolLM2Gguf, DequantizedValuesEqualTheGgufPackage) {
    auto ref = SafetensorsFile::open(std::string(HR_FIXTURES_DIR) + "/gguf/smollm2_rows.safetensors");
    ASSERT_TRUE(ref.ok()) << ref.error().message;
    const auto& meta = (*ref)->metadata();
    for (const std::string name : {"token_embd.weight", "blk.0.attn_q.weight"}) {
        SCOPED_TRACE(name);
        const GgufTensor* t = file_->find(name);
        ASSERT_NE(t, nullptr);
        const int64_t rows = t->shape[0], cols = t->shape[1];
        ASSERT_TRUE(quant::check_ggml_cols(t->dtype, cols, name).ok());
        const int64_t row_bytes = quant::ggml_row_bytes(t->dtype, cols);
        ASSERT_EQ(static_cast<uint64_t>(rows * row_bytes), t->nbytes);
        std::vector<float> all(static_cast<size_t>(rows * cols));
        for (int64_t r = 0; r < rows; ++r) {
            quant::ggml_dequantize(t->dtype, t->data + r * row_bytes, all.data() + r * cols, cols);
        }
        // Whole tensor: the checksum of the gguf package's values.
        std::ostringstream hex;
        hex << std::hex;
        hex.width(16);
        hex.fill('0');
        hex << checksum64(all);
        EXPECT_EQ(hex.str(), meta.at(name + ".checksum64"));
        // Selected rows, bit for bit.
        const auto* want = (*ref)->find(name + ".rows");
        ASSERT_NE(want, nullptr);
        std::stringstream ids(meta.at(name + ".row_ids"));
        std::string id;
        int k = 0;
        while (std::getline(ids, id, ',')) {
            const int64_t r = std::stoll(id);
            EXPECT_EQ(std::memcmp(all.data() + r * cols, want->data + k * cols * 4, static_cast<size_t>(cols) * 4), 0)
                << "row " << r;
            ++k;
        }
        EXPECT_EQ(k, want->shape[0]);
    }
}

}  // namespace
}  // namespace hr::io
