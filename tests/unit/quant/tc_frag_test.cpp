// The tensor-core GEMV fragments (src/backend/cuda/tc_frag.h) on the host: the int4 / int8 to f16 bit
// tricks decode every value exactly, and one warp step assembled from the 32 lanes' fragments by the
// PTX m16n8k16 layout multiplies the right weights by the right activations (the k permutation is the
// same for A and B). The CUDA kernels (gemv_tc.cu) call these same functions.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "backend/cuda/tc_frag.h"
#include "core/half.h"

namespace hr {
namespace {

float lo_f(uint32_t v) { return f16_to_f32(tcfrag::lo_h(v)); }
float hi_f(uint32_t v) { return f16_to_f32(tcfrag::hi_h(v)); }

TEST(TcFrag, Q4WordDecodesEveryNibbleExactly) {
    std::mt19937 gen(7);
    std::vector<uint32_t> words;
    for (uint32_t v = 0; v < 16; ++v) words.push_back(v * 0x11111111u);  // every nibble value in every position
    for (int i = 0; i < 2000; ++i) words.push_back(static_cast<uint32_t>(gen()));
    for (uint32_t w : words) {
        uint32_t out[4];
        tcfrag::q4_word_to_h2(w, out);
        for (int j = 0; j < 4; ++j) {
            const int q_lo = static_cast<int>((w >> (4 * j)) & 15u) - 8;
            const int q_hi = static_cast<int>((w >> (4 * (j + 4))) & 15u) - 8;
            EXPECT_EQ(lo_f(out[j]), static_cast<float>(q_lo)) << std::hex << w << " pair " << j;
            EXPECT_EQ(hi_f(out[j]), static_cast<float>(q_hi)) << std::hex << w << " pair " << j;
        }
    }
}

TEST(TcFrag, Q8PairDecodesEveryByteExactly) {
    for (int b = 0; b < 256; ++b) {
        const uint32_t w = static_cast<uint32_t>(b) * 0x01010101u ^ 0x00ff0000u;  // byte b, b, b ^ 0xff, b
        for (int h = 0; h < 2; ++h) {
            const uint32_t v = tcfrag::q8_pair_to_h2(w, h);
            const auto q = [&](int byte) { return static_cast<float>(static_cast<int8_t>((w >> (8 * byte)) & 0xffu)); };
            EXPECT_EQ(lo_f(v), q(2 * h)) << b << " h " << h;
            EXPECT_EQ(hi_f(v), q(2 * h + 1)) << b << " h " << h;
        }
    }
}

TEST(TcFrag, ByteLayoutIsThePtxPrmt) {
    // Selector 0x5140 interleaves bytes 0, 1 of a with bytes 0, 1 of b.
    EXPECT_EQ(tcfrag::byte_perm(0x44332211u, 0x88776655u, 0x5140u), 0x66225511u);
    EXPECT_EQ(tcfrag::byte_perm(0x44332211u, 0x88776655u, 0x7362u), 0x88447733u);
}

// One warp step of a 16-row tile: weights w[16][step] (q values), activations x[8 tokens][step]. Builds
// every lane's A and B fragments the way the kernel does, places them with the PTX layout and checks
// that the 16 x 8 product equals sum_col w[r][col] * f16(x[n][col]) for every row and token.
void check_warp_step(bool q4) {
    const int step = q4 ? tcfrag::kQ4StepCols : tcfrag::kQ8StepCols;
    const int lane_cols = q4 ? tcfrag::kQ4LaneCols : tcfrag::kQ8LaneCols;
    const int tiles = q4 ? tcfrag::kQ4Tiles : tcfrag::kQ8Tiles;
    std::mt19937 gen(q4 ? 11 : 12);
    std::uniform_int_distribution<int> qd(q4 ? -8 : -127, q4 ? 7 : 127);
    std::normal_distribution<float> xd(0.0f, 2.0f);
    std::vector<std::vector<int>> w(16, std::vector<int>(static_cast<size_t>(step)));
    std::vector<std::vector<float>> x(8, std::vector<float>(static_cast<size_t>(step)));
    for (auto& r : w)
        for (int& v : r) v = qd(gen);
    for (auto& r : x)
        for (float& v : r) v = xd(gen);
    // Row bytes in the stored format: int4 nibble q + 8, column 2j low, 2j + 1 high; int8 two's complement.
    auto row_bytes = [&](int r) {
        std::vector<uint8_t> b(64, 0);
        for (int col = 0; col < step; ++col) {
            if (q4) b[static_cast<size_t>(col / 2)] |= static_cast<uint8_t>((w[r][col] + 8) << (4 * (col % 2)));
            else b[static_cast<size_t>(col)] = static_cast<uint8_t>(static_cast<int8_t>(w[r][col]));
        }
        return b;
    };
    auto word = [&](const std::vector<uint8_t>& b, int c, int i) {
        uint32_t v;
        std::memcpy(&v, b.data() + 16 * c + 4 * i, 4);
        return v;
    };
    std::vector<double> D(16 * 8, 0.0);
    for (int t = 0; t < tiles; ++t) {
        double A[16][16], B[16][8];
        int a_set[16][16] = {}, b_set[16][8] = {};
        for (int lane = 0; lane < 32; ++lane) {
            const int g = lane / 4, c = lane % 4;
            const auto bg = row_bytes(g), bg8 = row_bytes(g + 8);
            uint32_t af[4];
            if (q4) {
                uint32_t both[2][4];
                tcfrag::q4_a_frags(word(bg, c, t / 2), word(bg8, c, t / 2), both);
                std::memcpy(af, both[t % 2], sizeof af);
            } else {
                tcfrag::q8_a_frag(word(bg, c, t), word(bg8, c, t), af);
            }
            // Token g's activations of the lane's columns, as the kernel loads them.
            std::vector<float> xs(x[static_cast<size_t>(g)].begin() + lane_cols * c,
                                  x[static_cast<size_t>(g)].begin() + lane_cols * (c + 1));
            uint32_t bf[8][2];
            if (q4) tcfrag::q4_b_frags(xs.data(), bf);
            else tcfrag::q8_b_frags(xs.data(), bf);
            const int k0 = 2 * c, k1 = 2 * c + 8;
            auto setA = [&](int r, int k, float v) {
                A[r][k] = v;
                ++a_set[r][k];
            };
            setA(g, k0, lo_f(af[0]));
            setA(g, k0 + 1, hi_f(af[0]));
            setA(g + 8, k0, lo_f(af[1]));
            setA(g + 8, k0 + 1, hi_f(af[1]));
            setA(g, k1, lo_f(af[2]));
            setA(g, k1 + 1, hi_f(af[2]));
            setA(g + 8, k1, lo_f(af[3]));
            setA(g + 8, k1 + 1, hi_f(af[3]));
            auto setB = [&](int k, float v) {
                B[k][g] = v;
                ++b_set[k][g];
            };
            setB(k0, lo_f(bf[t][0]));
            setB(k0 + 1, hi_f(bf[t][0]));
            setB(k1, lo_f(bf[t][1]));
            setB(k1 + 1, hi_f(bf[t][1]));
        }
        for (int r = 0; r < 16; ++r)
            for (int k = 0; k < 16; ++k) ASSERT_EQ(a_set[r][k], 1) << "A element set " << a_set[r][k] << " times";
        for (int k = 0; k < 16; ++k)
            for (int n = 0; n < 8; ++n) ASSERT_EQ(b_set[k][n], 1) << "B element set " << b_set[k][n] << " times";
        for (int r = 0; r < 16; ++r)
            for (int n = 0; n < 8; ++n)
                for (int k = 0; k < 16; ++k) D[static_cast<size_t>(r * 8 + n)] += A[r][k] * B[k][n];
    }
    for (int r = 0; r < 16; ++r)
        for (int n = 0; n < 8; ++n) {
            double ref = 0.0;
            for (int col = 0; col < step; ++col)
                ref += w[r][col] * static_cast<double>(f16_to_f32(f32_to_f16(x[n][col])));
            EXPECT_NEAR(D[static_cast<size_t>(r * 8 + n)], ref, 1e-9 * (1.0 + std::abs(ref))) << "row " << r << " token " << n;
        }
}

TEST(TcFrag, Q4WarpStepMultipliesMatchingColumns) { check_warp_step(true); }
TEST(TcFrag, Q8WarpStepMultipliesMatchingColumns) { check_warp_step(false); }

}  // namespace
}  // namespace hr
