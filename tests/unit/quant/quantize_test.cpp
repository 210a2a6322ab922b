// Tests of the scalar reference quantize/dequantize (quant/quantize.h): exact encodings, rounding,
// error bounds over odd sizes, zero rows and groups, f16 scale rounding, bad input.
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "core/half.h"
#include "quant/formats.h"
#include "quant/quantize.h"
#include "unit/quant/quant_tolerances.h"

namespace hr::quant {
namespace {

using test::kRoundTripSlackRel;

std::vector<float> random_row(int64_t cols, uint32_t seed, float sigma = 0.02f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, sigma);
    std::vector<float> w(static_cast<size_t>(cols));
    for (auto& v : w) v = nd(rng);
    // note: one outlier per row, as real weights have, so scales are not all alike.
    if (cols > 3) w[static_cast<size_t>(cols / 3)] = 8.0f * sigma;
    return w;
}

float absmax(const float* w, int64_t n) {
    float m = 0.0f;
    for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(w[i]));
    return m;
}

int q4_value(const std::vector<uint8_t>& q, int64_t c) {
    const uint8_t b = q[static_cast<size_t>(c / 2)];
    return ((c & 1) ? (b >> 4) : (b & 0x0f)) - 8;
}

TEST(QuantizeQ8, ExactValuesRoundHalfAwayFromZero) {
    // absmax 127 gives scale 1, so w / scale is w itself.
    const std::vector<float> w = {-127.0f, 63.5f, -63.5f, 0.5f, -0.5f, 0.49f, 0.0f, 2.5f};
    std::vector<int8_t> q(w.size());
    float scale = -1.0f;
    ASSERT_TRUE(quantize_row_q8(w.data(), static_cast<int64_t>(w.size()), q.data(), &scale).ok());
    EXPECT_EQ(scale, 1.0f);
    const std::vector<int8_t> expected = {-127, 64, -64, 1, -1, 0, 0, 3};
    EXPECT_EQ(q, expected);
}

TEST(QuantizeQ4, ExactValuesAndNibblePacking) {
    // absmax 7 gives scale 1 (exact in f16). Columns 2j in the low nibble, 2j+1 in the high one.
    const std::vector<float> w = {7.0f, 3.5f, -3.5f, -7.0f, 0.5f};
    std::vector<uint8_t> q(static_cast<size_t>(q4_row_bytes(5)), 0xff);
    uint16_t s16 = 0;
    ASSERT_TRUE(quantize_row_q4(w.data(), 5, q.data(), &s16).ok());
    EXPECT_EQ(f16_to_f32(s16), 1.0f);
    ASSERT_EQ(q.size(), 3u);
    EXPECT_EQ(q[0], 0xCF);  // q = 7 -> 15 (low), q = 4 -> 12 (high)
    EXPECT_EQ(q[1], 0x14);  // q = -4 -> 4 (low), q = -7 -> 1 (high)
    EXPECT_EQ(q[2], 0x09);  // q = 1 -> 9 (low); the unused high nibble stays 0
    std::vector<float> out(5);
    dequantize_row_q4(q.data(), &s16, 5, out.data());
    EXPECT_EQ(out, (std::vector<float>{7.0f, 4.0f, -4.0f, -7.0f, 1.0f}));
}

class QuantRoundTrip : public ::testing::TestWithParam<int64_t> {};

TEST_P(QuantRoundTrip, Q8ErrorWithinHalfScale) {
    const int64_t cols = GetParam();
    for (uint32_t seed = 1; seed <= 4; ++seed) {
        const auto w = random_row(cols, seed, seed == 4 ? 3.0f : 0.02f);
        std::vector<int8_t> q(static_cast<size_t>(cols));
        float scale = 0.0f;
        ASSERT_TRUE(quantize_row_q8(w.data(), cols, q.data(), &scale).ok());
        const float amax = absmax(w.data(), cols);
        EXPECT_GE(static_cast<double>(scale) * 127.0, static_cast<double>(amax));
        EXPECT_LE(scale, amax / 127.0f * (1.0f + 2.0f * FLT_EPSILON));
        std::vector<float> out(static_cast<size_t>(cols));
        dequantize_row_q8(q.data(), scale, cols, out.data());
        for (int64_t c = 0; c < cols; ++c) {
            ASSERT_GE(q[c], -127) << "column " << c;
            ASSERT_LE(std::fabs(w[c] - out[c]), scale / 2 + kRoundTripSlackRel * amax) << "column " << c;
        }
    }
}

TEST_P(QuantRoundTrip, Q4ErrorWithinHalfGroupScale) {
    const int64_t cols = GetParam();
    for (uint32_t seed = 1; seed <= 4; ++seed) {
        const auto w = random_row(cols, seed, seed == 4 ? 3.0f : 0.02f);
        std::vector<uint8_t> q(static_cast<size_t>(q4_row_bytes(cols)));
        std::vector<uint16_t> s(static_cast<size_t>(q4_groups(cols)));
        ASSERT_TRUE(quantize_row_q4(w.data(), cols, q.data(), s.data()).ok());
        std::vector<float> out(static_cast<size_t>(cols));
        dequantize_row_q4(q.data(), s.data(), cols, out.data());
        for (int64_t g = 0; g < q4_groups(cols); ++g) {
            const int64_t c0 = g * kQ4Group;
            const int64_t len = std::min<int64_t>(kQ4Group, cols - c0);  // the last group may be shorter
            const float amax = absmax(w.data() + c0, len);
            const float sc = f16_to_f32(s[static_cast<size_t>(g)]);
            // The stored scale is the smallest f16 covering absmax / 7.
            EXPECT_GE(static_cast<double>(sc) * 7.0, static_cast<double>(amax)) << "group " << g;
            if (s[static_cast<size_t>(g)] > 0) {
                const float below = f16_to_f32(static_cast<uint16_t>(s[static_cast<size_t>(g)] - 1));
                EXPECT_LT(static_cast<double>(below) * 7.0, static_cast<double>(amax)) << "group " << g;
            }
            for (int64_t c = c0; c < c0 + len; ++c) {
                ASSERT_GE(q4_value(q, c), -7) << "column " << c;
                ASSERT_LE(q4_value(q, c), 7) << "column " << c;
                ASSERT_LE(std::fabs(w[c] - out[c]), sc / 2 + kRoundTripSlackRel * amax) << "column " << c;
            }
        }
        if (cols % 2 == 1) {
            EXPECT_EQ(q.back() >> 4, 0) << "the padding nibble of an odd row is 0";
        }
    }
}

INSTANTIATE_TEST_SUITE_P(OddSizes, QuantRoundTrip, ::testing::Values(1, 2, 7, 127, 128, 129, 255, 300, 4096 + 64));

TEST(QuantizeQ4, ShorterLastGroupHasItsOwnScale) {
    // 300 columns = groups of 128, 128, 44; the last group is 16x smaller than the others. All values
    // are integer multiples of their group's scale (1 and 1/16, exact in f16), so the round trip is exact.
    std::vector<float> w(300);
    for (size_t c = 0; c < w.size(); ++c) w[c] = (c < 256 ? 1.0f : 0.0625f) * static_cast<float>(static_cast<int>(c % 15) - 7);
    std::vector<uint8_t> q(static_cast<size_t>(q4_row_bytes(300)));
    std::vector<uint16_t> s(3);
    ASSERT_TRUE(quantize_row_q4(w.data(), 300, q.data(), s.data()).ok());
    EXPECT_EQ(f16_to_f32(s[0]), 1.0f);
    EXPECT_EQ(f16_to_f32(s[1]), 1.0f);
    EXPECT_EQ(f16_to_f32(s[2]), 0.0625f);
    std::vector<float> out(300);
    dequantize_row_q4(q.data(), s.data(), 300, out.data());
    EXPECT_EQ(out, w);
}

TEST(QuantizeQ4, F16ScaleRoundingQuantizesWithStoredScale) {
    // absmax / 7 for these values is not an f16; rounding to nearest would go below for some of
    // them, and quantizing with the unrounded scale would then disagree with dequantize.
    for (float amax : {1.0f, 0.1f, 0.3f, 5.55f, 1234.5f, 4.7e-5f, 1e-7f}) {
        std::vector<float> w(128);
        for (size_t c = 0; c < w.size(); ++c) w[c] = amax * (static_cast<float>(c) / 127.0f) * ((c & 1) ? -1.0f : 1.0f);
        std::vector<uint8_t> q(64);
        uint16_t s16 = 0;
        ASSERT_TRUE(quantize_row_q4(w.data(), 128, q.data(), &s16).ok());
        const float s = f16_to_f32(s16);
        EXPECT_GE(static_cast<double>(s) * 7.0, static_cast<double>(amax)) << amax;
        std::vector<float> out(128);
        dequantize_row_q4(q.data(), &s16, 128, out.data());
        for (size_t c = 0; c < w.size(); ++c) {
            ASSERT_LE(std::fabs(out[c] - w[c]), s / 2 + kRoundTripSlackRel * amax) << amax << " column " << c;
            ASSERT_EQ(q4_value(q, static_cast<int64_t>(c)), static_cast<int>(std::round(w[c] / s))) << amax;
        }
    }
}

TEST(QuantizeQ8, TinyAndSubnormalWeightsKeepTheBound) {
    for (float amax : {1e-30f, 1e-40f, std::numeric_limits<float>::denorm_min()}) {
        std::vector<float> w = {amax, -amax / 2, 0.0f};
        std::vector<int8_t> q(3);
        float scale = 0.0f;
        ASSERT_TRUE(quantize_row_q8(w.data(), 3, q.data(), &scale).ok());
        EXPECT_GT(scale, 0.0f) << amax;
        EXPECT_GE(static_cast<double>(scale) * 127.0, static_cast<double>(amax)) << amax;
        std::vector<float> out(3);
        dequantize_row_q8(q.data(), scale, 3, out.data());
        for (size_t c = 0; c < 3; ++c) EXPECT_LE(std::fabs(out[c] - w[c]), scale / 2 + kRoundTripSlackRel * amax);
    }
}

TEST(QuantizeZero, AllZeroRowAndGroupGiveZeroScale) {
    std::vector<float> w(300, 0.0f);
    std::vector<int8_t> q8(300, 5);
    float s8 = 1.0f;
    ASSERT_TRUE(quantize_row_q8(w.data(), 300, q8.data(), &s8).ok());
    EXPECT_EQ(s8, 0.0f);
    for (int8_t v : q8) EXPECT_EQ(v, 0);

    for (size_t c = 128; c < 256; ++c) w[c] = 0.25f;  // group 1 non-zero, groups 0 and 2 zero
    std::vector<uint8_t> q4(150, 0xAB);
    std::vector<uint16_t> s4(3, 0x1234);
    ASSERT_TRUE(quantize_row_q4(w.data(), 300, q4.data(), s4.data()).ok());
    EXPECT_EQ(s4[0], 0);
    EXPECT_EQ(s4[2], 0);
    EXPECT_GT(f16_to_f32(s4[1]), 0.0f);
    for (int64_t c = 0; c < 128; ++c) EXPECT_EQ(q4_value(q4, c), 0) << "zero group: nibble 8";
    for (int64_t c = 256; c < 300; ++c) EXPECT_EQ(q4_value(q4, c), 0) << "zero group: nibble 8";
    EXPECT_EQ(q4[0], 0x88);
}

TEST(QuantizeErrors, NonFiniteIsAnErrorNamingTheColumn) {
    for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                      -std::numeric_limits<float>::infinity()}) {
        std::vector<float> w(200, 0.5f);
        w[150] = bad;
        std::vector<int8_t> q8(200);
        float s8 = 0;
        Status st = quantize_row_q8(w.data(), 200, q8.data(), &s8);
        ASSERT_FALSE(st.ok());
        EXPECT_NE(st.error().message.find("column 150"), std::string::npos) << st.error().message;
        std::vector<uint8_t> q4(100);
        std::vector<uint16_t> s4(2);
        st = quantize_row_q4(w.data(), 200, q4.data(), s4.data());
        ASSERT_FALSE(st.ok());
        EXPECT_NE(st.error().message.find("column 150"), std::string::npos) << st.error().message;
    }
}

TEST(QuantizeErrors, Int4ScaleBeyondF16RangeIsAnError) {
    std::vector<float> w(10, 1.0f);
    w[3] = 1e6f;  // absmax / 7 > 65504
    std::vector<uint8_t> q(5);
    uint16_t s = 0;
    Status st = quantize_row_q4(w.data(), 10, q.data(), &s);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().message.find("f16"), std::string::npos) << st.error().message;
    // int8 has an f32 scale and takes it.
    std::vector<int8_t> q8(10);
    float s8 = 0;
    EXPECT_TRUE(quantize_row_q8(w.data(), 10, q8.data(), &s8).ok());
}

TEST(QuantizeMatrix, RejectsBadDtypesAndShapes) {
    float src[4] = {1, 2, 3, 4};
    int8_t q[4];
    float s[2];
    EXPECT_FALSE(quantize_matrix(DType::f16, src, DType::f32, 2, 2, q, s).ok());
    EXPECT_FALSE(quantize_matrix(DType::q8, src, DType::i32, 2, 2, q, s).ok());
    EXPECT_FALSE(quantize_matrix(DType::q8, src, DType::q4, 2, 2, q, s).ok());
    EXPECT_FALSE(quantize_matrix(DType::q8, src, DType::f32, -1, 2, q, s).ok());
    EXPECT_TRUE(quantize_matrix(DType::q8, src, DType::f32, 0, 2, q, s).ok());
    float out[4];
    EXPECT_FALSE(dequantize_matrix(DType::bf16, q, s, 2, 2, out).ok());
}

// A matrix from f16/bf16 quantizes like the same values given as f32, on one thread or many.
TEST(QuantizeMatrix, MatchesRowReferenceForAllSourceDtypesAndThreads) {
    for (int64_t rows : {3, 512}) {  // 512 x 4160 is past the threading threshold
        const int64_t cols = 4160;
        std::vector<uint16_t> bf(static_cast<size_t>(rows * cols)), hf(bf.size());
        std::vector<float> f32(bf.size());
        std::mt19937 rng(7);
        std::normal_distribution<float> nd(0.0f, 0.05f);
        for (size_t i = 0; i < bf.size(); ++i) {
            const float v = nd(rng);
            bf[i] = f32_to_bf16(v);
            hf[i] = f32_to_f16(v);
            f32[i] = v;
        }
        for (DType target : {DType::q8, DType::q4}) {
            const auto data_bytes = static_cast<size_t>(weight_data_bytes(target, rows, cols));
            const auto scale_bytes = static_cast<size_t>(weight_scale_bytes(target, rows, cols));
            for (DType src_dt : {DType::f32, DType::f16, DType::bf16}) {
                const void* src = src_dt == DType::f32 ? static_cast<const void*>(f32.data())
                                  : src_dt == DType::f16 ? static_cast<const void*>(hf.data())
                                                         : static_cast<const void*>(bf.data());
                std::vector<uint8_t> data(data_bytes), scales(scale_bytes);
                ASSERT_TRUE(quantize_matrix(target, src, src_dt, rows, cols, data.data(), scales.data()).ok());
                // Row-by-row reference on the f32 values of the source.
                std::vector<uint8_t> rdata(data_bytes), rscales(scale_bytes);
                std::vector<float> row(static_cast<size_t>(cols));
                for (int64_t r = 0; r < rows; ++r) {
                    for (int64_t c = 0; c < cols; ++c) {
                        const size_t i = static_cast<size_t>(r * cols + c);
                        row[static_cast<size_t>(c)] = src_dt == DType::f32   ? f32[i]
                                                      : src_dt == DType::f16 ? f16_to_f32(hf[i])
                                                                             : bf16_to_f32(bf[i]);
                    }
                    if (target == DType::q8) {
                        ASSERT_TRUE(quantize_row_q8(row.data(), cols,
                                                    reinterpret_cast<int8_t*>(rdata.data()) + r * cols,
                                                    reinterpret_cast<float*>(rscales.data()) + r)
                                        .ok());
                    } else {
                        ASSERT_TRUE(quantize_row_q4(row.data(), cols, rdata.data() + r * q4_row_bytes(cols),
                                                    reinterpret_cast<uint16_t*>(rscales.data()) + r * q4_groups(cols))
                                        .ok());
                    }
                }
                EXPECT_EQ(data, rdata) << dtype_name(target) << " from " << dtype_name(src_dt) << ", rows " << rows;
                EXPECT_EQ(scales, rscales) << dtype_name(target) << " from " << dtype_name(src_dt);
            }
        }
    }
}

TEST(QuantizeMatrix, NonFiniteErrorNamesRowAndColumn) {
    const int64_t rows = 600, cols = 4096;  // threaded
    std::vector<float> w(static_cast<size_t>(rows * cols), 0.1f);
    w[static_cast<size_t>(437 * cols + 1000)] = std::numeric_limits<float>::quiet_NaN();
    std::vector<uint8_t> data(static_cast<size_t>(weight_data_bytes(DType::q4, rows, cols)));
    std::vector<uint8_t> scales(static_cast<size_t>(weight_scale_bytes(DType::q4, rows, cols)));
    Status st = quantize_matrix(DType::q4, w.data(), DType::f32, rows, cols, data.data(), scales.data());
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().message.find("row 437"), std::string::npos) << st.error().message;
    EXPECT_NE(st.error().message.find("column 1000"), std::string::npos) << st.error().message;
}

}  // namespace
}  // namespace hr::quant
