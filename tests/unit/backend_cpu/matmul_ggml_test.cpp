// The tiled CPU matmul (backend/cpu/matmul_ggml.h) for every weight dtype and every instruction-set path
// (scalar, AVX2, AVX-512; each forced), against "decode the weight with the exact scalar decoder, then
// multiply in double", over random blocks and input counts of the decode (1-4) and prefill shapes.
// Tolerance: |out - ref| <= kRel * sum_c |w_c x_c| + kAbs; only f32 summation order differs, plus at most
// one rounding per weight where the SIMD decoder fuses ggml's d * q + m (measured worst: see kRel).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/matmul_ggml.h"
#include "core/half.h"
#include "quant/formats.h"
#include "io/gguf.h"
#include "quant/ggml_blocks.h"

namespace hr::cpu {
namespace {

// f32 sums of up to 1536 products in blocked order: measured at most ~3e-7 relative; 4e-6 leaves ~10x.
constexpr double kRel = 4e-6;
constexpr double kAbs = 1e-6;

struct TestWeight {
    std::vector<uint8_t> data, scales;
    Weight view;
};

void put_f16(uint8_t* p, float v) {
    const uint16_t h = f32_to_f16(v);
    std::memcpy(p, &h, 2);
}

// Random blocks with finite, modest f16 scales (d, m, dmin) at the offsets of quant/ggml_blocks.h.
TestWeight make_weight(DType dt, int64_t rows, int64_t cols, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> byte(0, 255);
    std::normal_distribution<float> nd(0.0f, 0.02f);
    TestWeight w;
    w.data.resize(static_cast<size_t>(quant::weight_data_bytes(dt, rows, cols)));
    w.scales.resize(static_cast<size_t>(quant::weight_scale_bytes(dt, rows, cols)));
    if (dt == DType::f32) {
        for (size_t i = 0; i < w.data.size() / 4; ++i) {
            const float v = nd(rng);
            std::memcpy(w.data.data() + 4 * i, &v, 4);
        }
    } else if (dt == DType::f16 || dt == DType::bf16) {
        for (size_t i = 0; i < w.data.size() / 2; ++i) {
            const float v = nd(rng);
            const uint16_t h = dt == DType::f16 ? f32_to_f16(v) : f32_to_bf16(v);
            std::memcpy(w.data.data() + 2 * i, &h, 2);
        }
    } else {
        for (auto& b : w.data) b = static_cast<uint8_t>(byte(rng));
        if (dt == DType::q8) {
            for (size_t i = 0; i < w.scales.size() / 4; ++i) {
                const float v = std::abs(nd(rng)) / 127.0f;
                std::memcpy(w.scales.data() + 4 * i, &v, 4);
            }
        } else if (dt == DType::q4) {
            for (size_t i = 0; i < w.scales.size() / 2; ++i) put_f16(w.scales.data() + 2 * i, std::abs(nd(rng)) / 7.0f);
        } else {
            const int64_t bb = quant::ggml_block_bytes(dt);
            for (size_t off = 0; off < w.data.size(); off += static_cast<size_t>(bb)) {
                uint8_t* b = w.data.data() + off;
                switch (dt) {
                    case DType::gg_q6_k: put_f16(b + 208, nd(rng) / 32.0f); break;
                    case DType::gg_q4_1:
                    case DType::gg_q5_1:
                    case DType::gg_q4_k:
                    case DType::gg_q5_k:
                        put_f16(b, nd(rng) / 8.0f);
                        put_f16(b + 2, nd(rng) / 8.0f);
                        break;
                    default: put_f16(b, nd(rng) / 8.0f); break;
                }
            }
        }
    }
    w.view = Weight{.dtype = dt, .rows = rows, .cols = cols, .data = w.data.data(),
                    .scales = w.scales.empty() ? nullptr : w.scales.data()};
    return w;
}

// (dtype, isa, rows, cols, n)
using Case = std::tuple<DType, CpuIsa, int64_t, int64_t, int64_t>;

class MatmulTiled : public ::testing::TestWithParam<Case> {};

TEST_P(MatmulTiled, MatchesExactDecodeThenDoubleDot) {
    const auto [dt, isa, rows, cols, n] = GetParam();
    if (!cpu_isa_supported(isa)) GTEST_SKIP() << cpu_isa_name(isa) << " not supported by this CPU";
    const TestWeight w = make_weight(dt, rows, cols, static_cast<uint32_t>(rows * 131 + cols * 7 + static_cast<int>(dt)));
    std::vector<float> deq(static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; ++r) decode_row_exact(w.view, r, deq.data() + r * cols);
    for (float v : deq) ASSERT_TRUE(std::isfinite(v));

    std::mt19937 rng(static_cast<uint32_t>(n * 17 + 3));
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> in(static_cast<size_t>(n * cols));
    for (auto& v : in) v = nd(rng);
    std::vector<float> out(static_cast<size_t>(n * rows), NAN);
    matmul_tiled_isa(isa, out.data(), in.data(), n, w.view);

    double worst = 0.0;
    for (int64_t t = 0; t < n; ++t) {
        for (int64_t r = 0; r < rows; ++r) {
            double ref = 0.0, mag = 0.0;
            for (int64_t c = 0; c < cols; ++c) {
                const double p = static_cast<double>(deq[static_cast<size_t>(r * cols + c)]) * in[static_cast<size_t>(t * cols + c)];
                ref += p;
                mag += std::abs(p);
            }
            const double got = out[static_cast<size_t>(t * rows + r)];
            const double err = std::abs(got - ref);
            ASSERT_LE(err, kRel * mag + kAbs) << "t " << t << " r " << r << " got " << got << " ref " << ref;
            if (mag > 0) worst = std::max(worst, err / mag);
        }
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3g", worst);
    RecordProperty("worst_rel", buf);
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
    const auto [dt, isa, rows, cols, n] = info.param;
    return std::string(dtype_name(dt)) + "_" + cpu_isa_name(isa) + "_r" + std::to_string(rows) + "_c" +
           std::to_string(cols) + "_n" + std::to_string(n);
}

const auto kIsas = ::testing::Values(CpuIsa::scalar, CpuIsa::avx2, CpuIsa::avx512);

// 32-element blocks (and the plain / int8 / int4 dtypes, whose columns need not be a multiple of 32).
INSTANTIATE_TEST_SUITE_P(
    Block32, MatmulTiled,
    ::testing::Combine(::testing::Values(DType::gg_q8_0, DType::gg_q4_0, DType::gg_q4_1, DType::gg_q5_0,
                                         DType::gg_q5_1, DType::f32, DType::f16, DType::bf16, DType::q8, DType::q4),
                       kIsas, ::testing::Values(int64_t{13}), ::testing::Values(int64_t{32}, int64_t{576}),
                       ::testing::Values(int64_t{1}, int64_t{3}, int64_t{7}, int64_t{64})),
    case_name);

// 256-element super-blocks.
INSTANTIATE_TEST_SUITE_P(
    Block256, MatmulTiled,
    ::testing::Combine(::testing::Values(DType::gg_q4_k, DType::gg_q5_k, DType::gg_q6_k), kIsas,
                       ::testing::Values(int64_t{13}), ::testing::Values(int64_t{256}, int64_t{1536}),
                       ::testing::Values(int64_t{1}, int64_t{3}, int64_t{7}, int64_t{64})),
    case_name);

// Shapes of the real model (SmolLM2-135M) and 250 inputs (a classification prompt), tails of every kind.
INSTANTIATE_TEST_SUITE_P(
    Shapes, MatmulTiled,
    ::testing::Values(Case{DType::gg_q4_1, CpuIsa::avx512, 64, 576, 250}, Case{DType::gg_q4_1, CpuIsa::avx2, 37, 1536, 250},
                      Case{DType::gg_q8_0, CpuIsa::avx512, 97, 576, 250}, Case{DType::gg_q6_k, CpuIsa::avx512, 25, 512, 33},
                      Case{DType::gg_q4_k, CpuIsa::avx2, 25, 512, 17}, Case{DType::q4, CpuIsa::avx512, 29, 100, 250},
                      Case{DType::q8, CpuIsa::avx512, 29, 101, 250}, Case{DType::f32, CpuIsa::avx512, 24, 77, 250},
                      Case{DType::bf16, CpuIsa::avx2, 7, 45, 20}, Case{DType::gg_q4_0, CpuIsa::scalar, 5, 64, 250},
                      Case{DType::gg_q4_1, CpuIsa::avx512, 1, 32, 5}, Case{DType::f16, CpuIsa::avx512, 3, 17, 2}),
    case_name);

TEST(MatmulTiled, BestPathAgreesWithForcedScalar) {
    const TestWeight w = make_weight(DType::gg_q4_1, 40, 576, 9);
    std::vector<float> in(static_cast<size_t>(2 * 576), 0.5f);
    std::vector<float> a(80), b(80);
    matmul_tiled(a.data(), in.data(), 2, w.view);
    matmul_tiled_isa(CpuIsa::scalar, b.data(), in.data(), 2, w.view);
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-4 * (1.0 + std::abs(b[i])));
}

// The backend's scalar decoder (used by embed and weight_row_f32) equals quant::ggml_dequantize bit for bit.
TEST(CpuBackendGgml, ExactDecoderEqualsGgmlDequantize) {
    for (DType dt : {DType::gg_q8_0, DType::gg_q4_0, DType::gg_q4_1, DType::gg_q5_0, DType::gg_q5_1, DType::gg_q4_k,
                     DType::gg_q5_k, DType::gg_q6_k}) {
        const int64_t rows = 5, cols = 512;
        const TestWeight w = make_weight(dt, rows, cols, 77);
        std::vector<float> ref(static_cast<size_t>(rows * cols)), got(ref.size());
        quant::ggml_dequantize(dt, w.data.data(), ref.data(), rows * cols);
        for (int64_t r = 0; r < rows; ++r) decode_row_exact(w.view, r, got.data() + r * cols);
        EXPECT_EQ(0, std::memcmp(ref.data(), got.data(), ref.size() * 4)) << dtype_name(dt);
    }
}

// The real model's tensors (SmolLM2-135M Q4_1 matrices, Q8_0 embedding) through the best path, for a few
// rows: equal to ggml_dequantize then a double dot within kRel.
TEST(CpuBackendGgml, RealModelTensors) {
    const char* home = std::getenv("HOME");
    const std::string path = std::string(home ? home : "") + "/.cache/headroom/SmolLM2-135M-Instruct.Q4_1.gguf";
    if (!std::filesystem::exists(path)) GTEST_SKIP() << "model absent: " << path << " (scripts/fetch-model.sh)";
    auto file = io::GgufFile::open(path);
    ASSERT_TRUE(file.ok()) << file.error().message;
    int checked = 0;
    for (const char* name : {"blk.0.ffn_down.weight", "blk.7.attn_q.weight", "token_embd.weight"}) {
        const io::GgufTensor* t = (*file)->find(name);
        ASSERT_NE(t, nullptr) << name;
        ASSERT_TRUE(t->supported && t->shape.size() == 2) << name;
        const int64_t rows = std::min<int64_t>(t->shape[0], 40), cols = t->shape[1];
        const Weight w{.dtype = t->dtype, .rows = rows, .cols = cols, .data = t->data, .scales = nullptr};
        std::vector<float> deq(static_cast<size_t>(rows * cols));
        quant::ggml_dequantize(t->dtype, t->data, deq.data(), rows * cols);
        for (int64_t n : {1, 7, 64}) {
            std::mt19937 rng(static_cast<uint32_t>(n));
            std::normal_distribution<float> nd(0.0f, 1.0f);
            std::vector<float> in(static_cast<size_t>(n * cols)), out(static_cast<size_t>(n * rows));
            for (auto& v : in) v = nd(rng);
            matmul_tiled(out.data(), in.data(), n, w);
            for (int64_t tk = 0; tk < n; ++tk) {
                for (int64_t r = 0; r < rows; ++r) {
                    double ref = 0.0, mag = 0.0;
                    for (int64_t c = 0; c < cols; ++c) {
                        const double p = static_cast<double>(deq[static_cast<size_t>(r * cols + c)]) * in[static_cast<size_t>(tk * cols + c)];
                        ref += p;
                        mag += std::abs(p);
                    }
                    ASSERT_LE(std::abs(out[static_cast<size_t>(tk * rows + r)] - ref), kRel * mag + kAbs) << name;
                }
            }
        }
        ++checked;
    }
    EXPECT_EQ(checked, 3);
}

TEST(CpuBackendGgml, EmbedDecodesTheTableRowsExactly) {
    const TestWeight table = make_weight(DType::gg_q8_0, 50, 64, 4);
    CpuBackend be;
    std::vector<int32_t> ids = {3, 0, 49, 3};
    std::vector<float> out(4 * 64, NAN);
    be.embed(Tensor::make(DType::f32, out.data(), {4, 64}), Tensor::make(DType::i32, ids.data(), {4}), table.view);
    std::vector<float> row(64);
    for (size_t t = 0; t < ids.size(); ++t) {
        decode_row_exact(table.view, ids[t], row.data());
        for (int c = 0; c < 64; ++c) EXPECT_EQ(out[t * 64 + static_cast<size_t>(c)], row[static_cast<size_t>(c)]);
    }
}

}  // namespace
}  // namespace hr::cpu
