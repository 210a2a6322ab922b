// The quantized KV cache formats (core/kv_quant.h): e4m3 conversions against the format's definition,
// and the per-row int8 / fp8 quantization's error bounds.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/kv_quant.h"

namespace hr {
namespace {

// e4m3 ("fn": bias 7, no infinities, S.1111.111 is NaN) by its definition.
double e4m3_value(uint8_t b) {
    const int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
    const double mag = e == 0 ? m * std::ldexp(1.0, -9) : (1.0 + m / 8.0) * std::ldexp(1.0, e - 7);
    return s ? -mag : mag;
}

TEST(KvQuant, E4m3DecodesEveryCodeExactly) {
    for (int b = 0; b < 256; ++b) {
        if ((b & 0x7f) == 0x7f) {
            EXPECT_TRUE(std::isnan(e4m3_to_f32(static_cast<uint8_t>(b)))) << b;
            continue;
        }
        EXPECT_EQ(static_cast<double>(e4m3_to_f32(static_cast<uint8_t>(b))), e4m3_value(static_cast<uint8_t>(b))) << b;
    }
}

TEST(KvQuant, E4m3EncodeRoundTripsEveryFiniteCode) {
    for (int b = 0; b < 256; ++b) {
        if ((b & 0x7f) == 0x7f) continue;
        EXPECT_EQ(f32_to_e4m3(e4m3_to_f32(static_cast<uint8_t>(b))), b) << b;
    }
}

TEST(KvQuant, E4m3EncodeIsNearestEvenAndSaturates) {
    // Against a brute-force nearest over all finite codes, on a sweep of values (ties to an even code).
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> exp_d(-12.0f, 9.5f);
    for (int i = 0; i < 20000; ++i) {
        const float x = std::exp2(exp_d(rng)) * (i % 2 ? -1.0f : 1.0f);
        const uint8_t got = f32_to_e4m3(x);
        if (std::fabs(x) >= 448.0f) {
            EXPECT_EQ(got & 0x7f, 0x7e) << x;
            continue;
        }
        double best = 1e30;
        int best_code = -1;
        for (int b = 0; b < 128; ++b) {
            if (b == 0x7f) continue;
            const int code = (x < 0 ? 0x80 : 0) | b;
            const double d = std::fabs(e4m3_value(static_cast<uint8_t>(code)) - x);
            if (d < best || (d == best && (code & 1) == 0)) {
                best = d;
                best_code = code;
            }
        }
        EXPECT_EQ(std::fabs(e4m3_value(got) - x), best) << x << " got " << int(got) << " want " << best_code;
    }
    // Ties: 1 + 1/16 lies between 1 (mantissa 000, even) and 1 + 1/8 (001): rounds to 1.
    EXPECT_EQ(f32_to_e4m3(1.0625f), 0x38);
    EXPECT_EQ(f32_to_e4m3(1.1875f), 0x3a);  // between 001 and 010: to 010
    EXPECT_EQ(f32_to_e4m3(1000.0f), 0x7e);
    EXPECT_EQ(f32_to_e4m3(-1e30f), 0xfe);
    EXPECT_EQ(f32_to_e4m3(std::ldexp(1.0f, -10)), 0x00);  // half the smallest subnormal: to even (0)
    EXPECT_EQ(f32_to_e4m3(std::ldexp(3.0f, -10)), 0x02);  // 1.5 subnormal steps: to 2
}

// Each row: the error of every element is at most half a step of the row's grid; an all-zero row stays 0.
TEST(KvQuant, RowErrorBounds) {
    std::mt19937 rng(11);
    std::normal_distribution<float> nd(0.0f, 3.0f);
    const int64_t n = 128;
    std::vector<float> x(n), back(n);
    std::vector<uint8_t> codes(n);
    for (int trial = 0; trial < 200; ++trial) {
        for (auto& v : x) v = nd(rng);
        if (trial == 0) {
            for (auto& v : x) v = 0.0f;
        }
        float amax = 0.0f;
        for (float v : x) amax = std::max(amax, std::fabs(v));
        for (DType dt : {DType::i8, DType::f8_e4m3}) {
            float scale = -1.0f;
            kv_quantize_row(x.data(), n, dt, codes.data(), &scale);
            kv_dequantize_row(codes.data(), scale, n, dt, back.data());
            EXPECT_FLOAT_EQ(scale, amax / kv_code_max(dt));
            for (int64_t i = 0; i < n; ++i) {
                // int8: a uniform grid of step scale; e4m3: 3 mantissa bits (relative half-step 2^-4), and
                // the subnormal step 2^-9 times the scale near zero.
                const double bound = dt == DType::i8 ? (0.5 + 1e-4) * scale
                                                     : std::max(std::fabs(x[i]) / 16.0, 0.5 * std::ldexp(1.0, -9) * scale) * (1 + 1e-6);
                EXPECT_LE(std::fabs(back[i] - x[i]), bound) << dtype_name(dt) << " trial " << trial << " i " << i;
            }
            if (trial == 0) {
                for (float v : back) EXPECT_EQ(v, 0.0f);
            }
            // The row's largest element is represented exactly up to rounding of the scale.
            if (amax > 0) {
                float got_max = 0.0f;
                for (float v : back) got_max = std::max(got_max, std::fabs(v));
                EXPECT_NEAR(got_max, amax, amax * 1e-6);
            }
        }
    }
}

}  // namespace
}  // namespace hr
