// Tests of model/quantize_weights.h: format metadata, quantize-on-load of fixture tensors, the
// pre-quantized checkpoint writer and the strict checks of reading it back.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include <unistd.h>

#include <gtest/gtest.h>

#include "core/half.h"
#include "io/safetensors_writer.h"
#include "io/tensor_store.h"
#include "memory/weight_format.h"
#include "model/config.h"
#include "model/quantize_weights.h"
#include "model/tensor_names.h"
#include "quant/formats.h"

namespace hr {
namespace {

namespace fs = std::filesystem;

const std::string kMixtral = std::string(HR_FIXTURES_DIR) + "/models/tiny-mixtral";

bool has_error(const Status& s, const std::string& needle) {
    return !s.ok() && s.error().message.find(needle) != std::string::npos;
}
template <class T>
bool has_error(const Result<T>& r, const std::string& needle) {
    return !r.ok() && r.error().message.find(needle) != std::string::npos;
}

TEST(PrequantizedFormat, ReadsFormatAndVersion) {
    auto none = prequantized_format({{"format", "pt"}}, "x");
    ASSERT_TRUE(none.ok());
    EXPECT_FALSE(none->has_value());
    auto q8 = prequantized_format({{kFormatKey, "int8"}, {kFormatVersionKey, "1"}}, "x");
    ASSERT_TRUE(q8.ok());
    EXPECT_EQ(**q8, DType::q8);
    auto q4 = prequantized_format({{kFormatKey, "int4"}, {kFormatVersionKey, "1"}}, "x");
    ASSERT_TRUE(q4.ok());
    EXPECT_EQ(**q4, DType::q4);
}

TEST(PrequantizedFormat, UnknownFormatOrVersionIsAClearError) {
    EXPECT_TRUE(has_error(prequantized_format({{kFormatKey, "int3"}, {kFormatVersionKey, "1"}}, "m"),
                          "unknown headroom.format 'int3' (expected int8 or int4)"));
    EXPECT_TRUE(has_error(prequantized_format({{kFormatKey, "int8"}, {kFormatVersionKey, "2"}}, "m"),
                          "unsupported headroom.format_version '2'"));
    EXPECT_TRUE(has_error(prequantized_format({{kFormatKey, "int8"}}, "m"), "no headroom.format_version"));
    EXPECT_TRUE(has_error(prequantized_format({{kFormatVersionKey, "1"}}, "m"), "no headroom.format"));
}

TEST(PrequantizedFormat, WeightsFlagMustMatchTheFile) {
    EXPECT_EQ(*weights_for_prequantized(std::nullopt, DType::q4, "m"), DType::q4);
    EXPECT_EQ(*weights_for_prequantized(DType::q8, DType::q8, "m"), DType::q8);
    EXPECT_TRUE(has_error(weights_for_prequantized(DType::q8, DType::q4, "m"), "pre-quantized to int4"));
    EXPECT_TRUE(has_error(weights_for_prequantized(DType::bf16, DType::q8, "m"), "--weights bf16"));
}

TEST(ConvertWeight, RejectsShapeMismatchNonFiniteAndOverflow) {
    TensorSpec spec{"w", {2, 3}, TensorRole::attention, 0, true};
    std::vector<uint16_t> bf = {f32_to_bf16(1), f32_to_bf16(2), f32_to_bf16(3),
                                f32_to_bf16(4), f32_to_bf16(5), f32_to_bf16(6)};
    io::TensorInfo t{"w", "BF16", {3, 2}, reinterpret_cast<const uint8_t*>(bf.data()), 12, "f.safetensors"};
    std::vector<uint8_t> data(6), scales(8);
    EXPECT_TRUE(has_error(convert_weight(t, spec, DType::q8, data.data(), scales.data()), "expected shape [2, 3]"));
    t.shape = {2, 3};
    ASSERT_TRUE(convert_weight(t, spec, DType::q8, data.data(), scales.data()).ok());
    bf[4] = f32_to_bf16(std::numeric_limits<float>::infinity());
    EXPECT_TRUE(has_error(convert_weight(t, spec, DType::q8, data.data(), scales.data()), "row 1: quantize"));
    EXPECT_TRUE(has_error(convert_weight(t, spec, DType::bf16, data.data(), nullptr), "row 1, column 1"));
    // bf16 -> f16 beyond 65504 would become inf: an error, not a silent cast.
    bf[4] = f32_to_bf16(1e6f);
    std::vector<uint16_t> f16(6);
    EXPECT_TRUE(has_error(convert_weight(t, spec, DType::f16, f16.data(), nullptr), "range of f16"));
    bf[4] = f32_to_bf16(0.5f);
    ASSERT_TRUE(convert_weight(t, spec, DType::f16, f16.data(), nullptr).ok());
    EXPECT_EQ(f16_to_f32(f16[4]), 0.5f);
    // A quantized vector (norm) is refused: only matrices are quantized.
    TensorSpec vec{"n", {6}, TensorRole::norm, 0, false};
    io::TensorInfo tv{"n", "BF16", {6}, reinterpret_cast<const uint8_t*>(bf.data()), 12, "f.safetensors"};
    EXPECT_TRUE(has_error(convert_weight(tv, vec, DType::q8, data.data(), scales.data()), "only matrices"));
}

class PrequantizedCheckpoint : public ::testing::TestWithParam<DType> {
protected:
    void SetUp() override {
        if (!fs::exists(kMixtral + "/model.safetensors")) GTEST_SKIP() << "fixture missing: " << kMixtral;
        auto cfg = load_model_config(kMixtral + "/config.json");
        ASSERT_TRUE(cfg.ok()) << cfg.error().message;
        cfg_ = *cfg;
        auto st = io::TensorStore::open(kMixtral);
        ASSERT_TRUE(st.ok()) << st.error().message;
        src_.emplace(std::move(*st));
        specs_ = expected_tensors(cfg_);
        auto ck = checkpoint_dtype(*src_);
        ASSERT_TRUE(ck.ok()) << ck.error().message;
        for (const auto& s : specs_) storage_.push_back(storage_dtype_for(s, GetParam(), *ck));
        dir_ = fs::path(::testing::TempDir()) / ("hr_quant_" + std::string(dtype_name(GetParam())) + "_" +
                                                 std::to_string(::getpid()));
        fs::create_directories(dir_);
        out_ = (dir_ / "model.safetensors").string();
    }
    void TearDown() override {
        std::error_code ec;
        if (!dir_.empty()) fs::remove_all(dir_, ec);
    }

    ModelConfig cfg_;
    std::optional<io::TensorStore> src_;
    std::vector<TensorSpec> specs_;
    std::vector<DType> storage_;
    fs::path dir_;
    std::string out_;
};

TEST_P(PrequantizedCheckpoint, WritesAndReadsBackWithoutRequantizing) {
    const DType fmt = GetParam();
    auto stats = write_quantized_checkpoint(*src_, specs_, storage_, fmt, out_);
    ASSERT_TRUE(stats.ok()) << stats.error().message;
    EXPECT_GT(stats->n_quantized, 0);
    EXPECT_GT(stats->n_kept, 0);
    EXPECT_LT(stats->bytes_out, stats->bytes_in);
    EXPECT_FALSE(fs::exists(out_ + ".tmp." + std::to_string(::getpid())));

    auto back = io::TensorStore::open(dir_.string());
    ASSERT_TRUE(back.ok()) << back.error().message;
    auto f = prequantized_format(back->metadata(), out_);
    ASSERT_TRUE(f.ok() && f->has_value()) << (f.ok() ? "no format" : f.error().message);
    EXPECT_EQ(**f, fmt);
    ASSERT_TRUE(check_stored_names(*back, specs_, storage_).ok());
    int n_q8 = 0, n_q4 = 0;
    for (size_t i = 0; i < specs_.size(); ++i) {
        auto w = stored_weight(*back, specs_[i], storage_[i]);
        ASSERT_TRUE(w.ok()) << w.error().message;
        // The stored bytes are exactly what quantize-on-load produces from the original.
        std::vector<uint8_t> data(w->data_bytes), scales(w->scale_bytes);
        ASSERT_TRUE(convert_weight(*src_->find(specs_[i].hf_name), specs_[i], storage_[i], data.data(),
                                   scales.empty() ? nullptr : scales.data())
                        .ok());
        EXPECT_EQ(std::memcmp(data.data(), w->data, data.size()), 0) << specs_[i].hf_name;
        if (w->scales != nullptr) {
            EXPECT_EQ(std::memcmp(scales.data(), w->scales, scales.size()), 0) << specs_[i].hf_name;
            const size_t elem = storage_[i] == DType::q8 ? 4 : 2;
            EXPECT_EQ(reinterpret_cast<uintptr_t>(w->scales) % elem, 0u) << "scales aligned: " << specs_[i].hf_name;
        } else {
            EXPECT_EQ(reinterpret_cast<uintptr_t>(w->data) % dtype_size(storage_[i]), 0u) << specs_[i].hf_name;
        }
        n_q8 += storage_[i] == DType::q8;
        n_q4 += storage_[i] == DType::q4;
    }
    if (fmt == DType::q4) {
        EXPECT_EQ(n_q8, 1) << "the untied head is int8 under int4 weights";
        EXPECT_GT(n_q4, 0);
    } else {
        EXPECT_EQ(n_q4, 0);
    }
    // Read back under the other format, the stored dtypes do not match: an error naming the tensor.
    std::vector<DType> other;
    for (const auto& s : specs_) other.push_back(storage_dtype_for(s, fmt == DType::q8 ? DType::q4 : DType::q8, DType::bf16));
    bool mismatch = false;
    for (size_t i = 0; i < specs_.size() && !mismatch; ++i) {
        if (other[i] != storage_[i]) {
            auto w = stored_weight(*back, specs_[i], other[i]);
            ASSERT_FALSE(w.ok());
            EXPECT_NE(w.error().message.find(specs_[i].hf_name), std::string::npos);
            mismatch = true;
        }
    }
    EXPECT_TRUE(mismatch);
}

// Rewrites the pre-quantized file with one change and expects the load checks to name it.
TEST_P(PrequantizedCheckpoint, StrictChecksNameTheBadTensor) {
    const DType fmt = GetParam();
    ASSERT_TRUE(write_quantized_checkpoint(*src_, specs_, storage_, fmt, out_).ok());
    auto good = io::TensorStore::open(out_);
    ASSERT_TRUE(good.ok());
    size_t qi = 0;
    while (storage_[qi] != fmt) ++qi;  // first tensor in the chosen format
    const std::string qname = specs_[qi].hf_name;

    enum class Edit { drop_scales, nan_scale, extra_tensor, scales_on_norm };
    for (Edit e : {Edit::drop_scales, Edit::nan_scale, Edit::extra_tensor, Edit::scales_on_norm}) {
        std::vector<io::TensorToWrite> ts;
        std::vector<std::vector<uint8_t>> keep;
        for (const auto& t : good->tensors()) {
            if (e == Edit::drop_scales && t.name == qname + ".scales") continue;
            keep.emplace_back(t.data, t.data + t.nbytes);
            if (e == Edit::nan_scale && t.name == qname + ".scales") {
                if (fmt == DType::q8) {
                    const float nan = std::numeric_limits<float>::quiet_NaN();
                    std::memcpy(keep.back().data(), &nan, 4);
                } else {
                    keep.back()[1] = 0xbc;  // f16 -1.0: a negative scale
                    keep.back()[0] = 0x00;
                }
            }
            ts.push_back({t.name, t.dtype, t.shape, keep.back().data(), t.nbytes});
        }
        static const float extra[2] = {1, 2};
        if (e == Edit::extra_tensor) ts.push_back({"model.layers.0.bogus.weight", "F32", {2}, extra, 8});
        if (e == Edit::scales_on_norm) ts.push_back({"model.norm.weight.scales", "F32", {2}, extra, 8});
        const std::string bad = (dir_ / "bad.safetensors").string();
        ASSERT_TRUE(io::write_safetensors(bad, ts, good->metadata()).ok());
        auto st = io::TensorStore::open(bad);
        ASSERT_TRUE(st.ok()) << st.error().message;
        switch (e) {
            case Edit::drop_scales: {
                auto w = stored_weight(*st, specs_[qi], storage_[qi]);
                EXPECT_TRUE(has_error(w, "missing tensor '" + qname + ".scales'"));
                break;
            }
            case Edit::nan_scale: {
                auto w = stored_weight(*st, specs_[qi], storage_[qi]);
                EXPECT_TRUE(has_error(w, "expected finite non-negative scales")) << (w.ok() ? "" : w.error().message);
                break;
            }
            case Edit::extra_tensor:
                EXPECT_TRUE(has_error(check_stored_names(*st, specs_, storage_), "model.layers.0.bogus.weight"));
                break;
            case Edit::scales_on_norm: {
                size_t ni = 0;
                while (specs_[ni].hf_name != "model.norm.weight") ++ni;
                EXPECT_TRUE(has_error(stored_weight(*st, specs_[ni], storage_[ni]), "scales belong to int8/int4"));
                EXPECT_TRUE(has_error(check_stored_names(*st, specs_, storage_), "model.norm.weight.scales"));
                break;
            }
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Formats, PrequantizedCheckpoint, ::testing::Values(DType::q8, DType::q4),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace hr
