// CPU quantized matmuls (backend/cpu/matmul_quant.h), scalar and AVX2 paths each forced, against
// "dequantize with the reference, then multiply in double", over odd shapes and input counts.
#include <cmath>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "backend/cpu/matmul_quant.h"
#include "quant/formats.h"
#include "quant/quantize.h"
#include "unit/quant/quant_tolerances.h"

namespace hr::cpu {
namespace {

using quant::test::kKernelAbs;
using quant::test::kKernelRel;

struct QuantWeight {
    std::vector<uint8_t> data, scales;
    std::vector<float> deq;  // [rows, cols] the reference dequantization
    Weight view;
};

QuantWeight make_weight(DType dt, int64_t rows, int64_t cols, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, 0.05f);
    std::vector<float> w(static_cast<size_t>(rows * cols));
    for (auto& v : w) v = nd(rng);
    if (rows > 2)
        for (int64_t c = 0; c < cols; ++c) w[static_cast<size_t>(1 * cols + c)] = 0.0f;  // an all-zero row
    QuantWeight q;
    q.data.resize(static_cast<size_t>(quant::weight_data_bytes(dt, rows, cols)));
    q.scales.resize(static_cast<size_t>(quant::weight_scale_bytes(dt, rows, cols)));
    Status st = quant::quantize_matrix(dt, w.data(), DType::f32, rows, cols, q.data.data(), q.scales.data());
    EXPECT_TRUE(st.ok());
    q.deq.resize(w.size());
    st = quant::dequantize_matrix(dt, q.data.data(), q.scales.data(), rows, cols, q.deq.data());
    EXPECT_TRUE(st.ok());
    q.view = Weight{.dtype = dt, .rows = rows, .cols = cols, .data = q.data.data(), .scales = q.scales.data()};
    return q;
}

// (dtype, isa, rows, cols, n)
using Case = std::tuple<DType, QuantIsa, int64_t, int64_t, int64_t>;

class MatmulQuant : public ::testing::TestWithParam<Case> {};

TEST_P(MatmulQuant, MatchesDequantizedReference) {
    const auto [dt, isa, rows, cols, n] = GetParam();
    if (!quant_isa_supported(isa)) GTEST_SKIP() << quant_isa_name(isa) << " not supported by this CPU";
    const QuantWeight w = make_weight(dt, rows, cols, static_cast<uint32_t>(rows * 31 + cols));
    std::mt19937 rng(static_cast<uint32_t>(n + 5));
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> in(static_cast<size_t>(n * cols));
    for (auto& v : in) v = nd(rng);
    std::vector<float> out(static_cast<size_t>(n * rows), NAN);
    if (dt == DType::q8)
        matmul_q8_isa(isa, out.data(), in.data(), n, w.view);
    else
        matmul_q4_isa(isa, out.data(), in.data(), n, w.view);
    for (int64_t t = 0; t < n; ++t) {
        for (int64_t r = 0; r < rows; ++r) {
            double ref = 0.0, mag = 0.0;
            for (int64_t c = 0; c < cols; ++c) {
                const double p = static_cast<double>(w.deq[static_cast<size_t>(r * cols + c)]) *
                                 static_cast<double>(in[static_cast<size_t>(t * cols + c)]);
                ref += p;
                mag += std::fabs(p);
            }
            const double got = out[static_cast<size_t>(t * rows + r)];
            ASSERT_LE(std::fabs(got - ref), kKernelRel * mag + kKernelAbs)
                << "input " << t << " row " << r << ": got " << got << ", expected " << ref;
        }
    }
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
    const auto [dt, isa, rows, cols, n] = info.param;
    return std::string(dt == DType::q8 ? "q8" : "q4") + "_" + (isa == QuantIsa::scalar ? "scalar" : "avx2") + "_r" +
           std::to_string(rows) + "_c" + std::to_string(cols) + "_n" + std::to_string(n);
}

// Odd column counts hit every tail (8/16/32-wide chunks, shorter last group, odd packed byte);
// n crosses the input block (4) and the input chunk (64); 256 x 4160 takes the threaded path.
INSTANTIATE_TEST_SUITE_P(
    Shapes, MatmulQuant,
    ::testing::Combine(::testing::Values(DType::q8, DType::q4), ::testing::Values(QuantIsa::scalar, QuantIsa::avx2_fma),
                       ::testing::Values<int64_t>(1, 37),
                       ::testing::Values<int64_t>(1, 8, 15, 127, 129, 300, 2049, 4160),
                       ::testing::Values<int64_t>(1, 3, 4, 9)),
    case_name);

INSTANTIATE_TEST_SUITE_P(
    Large, MatmulQuant,
    ::testing::Combine(::testing::Values(DType::q8, DType::q4), ::testing::Values(QuantIsa::scalar, QuantIsa::avx2_fma),
                       ::testing::Values<int64_t>(256), ::testing::Values<int64_t>(4160),
                       ::testing::Values<int64_t>(1, 70)),
    case_name);

// The automatic choice gives the same numbers as the path it names.
TEST(MatmulQuantDispatch, DefaultUsesBestPath) {
    for (DType dt : {DType::q8, DType::q4}) {
        const QuantWeight w = make_weight(dt, 17, 300, 3);
        std::vector<float> in(2 * 300, 0.5f), a(2 * 17), b(2 * 17);
        for (size_t i = 0; i < in.size(); ++i) in[i] = std::sin(static_cast<float>(i));
        if (dt == DType::q8) {
            matmul_q8(a.data(), in.data(), 2, w.view);
            matmul_q8_isa(best_quant_isa(), b.data(), in.data(), 2, w.view);
        } else {
            matmul_q4(a.data(), in.data(), 2, w.view);
            matmul_q4_isa(best_quant_isa(), b.data(), in.data(), 2, w.view);
        }
        EXPECT_EQ(a, b);
    }
}

TEST(MatmulQuantDispatch, EmptyShapesAreNoOps) {
    const QuantWeight w = make_weight(DType::q4, 5, 10, 1);
    std::vector<float> out(5, 42.0f);
    matmul_q4(out.data(), nullptr, 0, w.view);
    EXPECT_EQ(out[0], 42.0f);
}

}  // namespace
}  // namespace hr::cpu
