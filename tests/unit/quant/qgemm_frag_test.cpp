// The quantized tensor-core GEMM's index math (src/backend/cuda/qgemm_frag.h) on the host: a block's
// shared-memory stages rebuilt by the loader's mapping, every warp's and lane's fragments assembled by
// the PTX m16n8k16 layout from them exactly as qgemm.cu reads them, and the products compared with plain
// dot products (int8 and int4, pair mode and not, two stages); each quarter-warp's 16-byte shared reads
// and cp.async writes in eight distinct bank groups; and the tile schedule covering every (expert, row
// tile, token) once for uneven expert loads (0, 1, 17, 300 tokens, ...).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <tuple>
#include <vector>

#include "backend/cuda/qgemm_frag.h"
#include "core/half.h"

namespace hr {
namespace {

using namespace hr::qgemm;

float lo_f(uint32_t v) { return f16_to_f32(tcfrag::lo_h(v)); }
float hi_f(uint32_t v) { return f16_to_f32(tcfrag::hi_h(v)); }
float f16r(float x) { return f16_to_f32(f32_to_f16(x)); }

// One block tile's operands: matrices (1, or 2 in pair mode) of kBM / n_mat rows x cols q values with
// scales, and kBN tokens x cols activations.
struct Block {
    bool q4 = false, pair = false;
    int cols = 0;
    std::vector<std::vector<std::vector<int>>> q;       // [m][row][col]
    std::vector<std::vector<std::vector<float>>> scale;  // [m][row][group] (int4: f16-exact; int8: one group)
    std::vector<std::vector<float>> x;                   // [token][col]

    int rows() const { return qg_out_rows(pair); }
    // The stored bytes of one matrix row: int4 nibbles q + 8 (column 2j low), int8 two's complement.
    std::vector<uint8_t> row_bytes(int m, int r) const {
        std::vector<uint8_t> b(static_cast<size_t>(q4 ? cols / 2 : cols), 0);
        for (int col = 0; col < cols; ++col) {
            const int v = q[m][r][col];
            if (q4) b[static_cast<size_t>(col / 2)] |= static_cast<uint8_t>((v + 8) << (4 * (col % 2)));
            else b[static_cast<size_t>(col)] = static_cast<uint8_t>(static_cast<int8_t>(v));
        }
        return b;
    }
};

Block make_block(bool q4, bool pair, int stages, uint32_t seed) {
    Block b;
    b.q4 = q4;
    b.pair = pair;
    b.cols = qg_bk(q4) * stages;
    std::mt19937 gen(seed);
    std::uniform_int_distribution<int> qd(q4 ? -8 : -127, q4 ? 7 : 127);
    std::uniform_real_distribution<float> sd(0.002f, 0.05f);
    std::normal_distribution<float> xd(0.0f, 2.0f);
    const int n_mat = pair ? 2 : 1;
    const int groups = q4 ? b.cols / 128 : 1;
    b.q.assign(static_cast<size_t>(n_mat), {});
    b.scale.assign(static_cast<size_t>(n_mat), {});
    for (int m = 0; m < n_mat; ++m)
        for (int r = 0; r < b.rows(); ++r) {
            std::vector<int> row(static_cast<size_t>(b.cols));
            for (int& v : row) v = qd(gen);
            b.q[m].push_back(row);
            std::vector<float> s(static_cast<size_t>(groups));
            for (float& v : s) v = f16r(sd(gen));
            b.scale[m].push_back(s);
        }
    b.x.assign(kBN, std::vector<float>(static_cast<size_t>(b.cols)));
    for (auto& r : b.x)
        for (float& v : r) v = xd(gen);
    return b;
}

// Shared memory of stage kt as the loader fills it: weights then activations.
struct Stage {
    std::vector<uint8_t> w, x;
};

Stage fill_stage(const Block& b, int kt) {
    Stage s;
    s.w.assign(kBM * kWRowBytes, 0xcc);
    s.x.assign(static_cast<size_t>(kBN * qg_bk(b.q4) * 2), 0xcc);
    for (int rr = 0; rr < kBM; ++rr) {
        const auto bytes = b.row_bytes(qg_row_matrix(b.pair, rr), qg_row_local(b.pair, rr));
        std::memcpy(s.w.data() + rr * kWRowBytes, bytes.data() + kt * kWRowBytes, kWRowBytes);
    }
    for (int r = 0; r < kBN; ++r)
        for (int ch = 0; ch < qg_x_chunks(b.q4); ++ch)
            for (int i = 0; i < 8; ++i) {
                const uint16_t h = f32_to_f16(b.x[static_cast<size_t>(r)][static_cast<size_t>(kt * qg_bk(b.q4) + ch * 8 + i)]);
                std::memcpy(s.x.data() + qg_x_offset(b.q4, r, ch) + 2 * i, &h, 2);
            }
    return s;
}

// Adds A (16 x 16) . B (16 x 8) assembled from 32 lanes' fragments (PTX layout) to d[16][8]; every A and
// B element must be set exactly once.
void mma_host(const uint32_t af[32][4], const uint32_t bf[32][2], double d[16][8]) {
    double A[16][16], B[16][8];
    int a_set[16][16] = {}, b_set[16][8] = {};
    for (int lane = 0; lane < 32; ++lane) {
        const int g = lane / 4, c = lane % 4, k0 = 2 * c, k1 = 2 * c + 8;
        const int ar[4] = {g, g + 8, g, g + 8}, ak[4] = {k0, k0, k1, k1};
        for (int r = 0; r < 4; ++r) {
            A[ar[r]][ak[r]] = lo_f(af[lane][r]);
            A[ar[r]][ak[r] + 1] = hi_f(af[lane][r]);
            ++a_set[ar[r]][ak[r]];
            ++a_set[ar[r]][ak[r] + 1];
        }
        const int bk[2] = {k0, k1};
        for (int r = 0; r < 2; ++r) {
            B[bk[r]][g] = lo_f(bf[lane][r]);
            B[bk[r] + 1][g] = hi_f(bf[lane][r]);
            ++b_set[bk[r]][g];
            ++b_set[bk[r] + 1][g];
        }
    }
    for (int r = 0; r < 16; ++r)
        for (int k = 0; k < 16; ++k) ASSERT_EQ(a_set[r][k], 1);
    for (int k = 0; k < 16; ++k)
        for (int n = 0; n < 8; ++n) ASSERT_EQ(b_set[k][n], 1);
    for (int r = 0; r < 16; ++r)
        for (int n = 0; n < 8; ++n)
            for (int k = 0; k < 16; ++k) d[r][n] += A[r][k] * B[k][n];
}

// The 8 lanes of each quarter-warp read or write 16 bytes at these byte offsets: distinct bank groups.
void expect_conflict_free(const std::vector<int>& off, const char* what) {
    ASSERT_EQ(off.size(), 32u);
    for (int qw = 0; qw < 4; ++qw) {
        std::set<int> groups;
        for (int l = 0; l < 8; ++l) {
            ASSERT_EQ(off[static_cast<size_t>(8 * qw + l)] % 16, 0) << what;
            groups.insert((off[static_cast<size_t>(8 * qw + l)] / 16) % 8);
        }
        EXPECT_EQ(groups.size(), 8u) << what << ", quarter-warp " << qw;
    }
}

// Every warp of the block, every lane as qgemm.cu: the accumulators before the epilogue, [m16 tile rows of
// the block = shared row][token], against sum_col w(row, col) * f16(x[token][col]) (int4: w = f16(q * s),
// int8: q, the row scale applied in the epilogue).
void check_block(bool q4, bool pair) {
    const int stages = 2;
    const Block b = make_block(q4, pair, stages, (q4 ? 100 : 200) + (pair ? 1 : 0));
    std::vector<std::vector<double>> acc(kBM, std::vector<double>(kBN, 0.0));
    for (int kt = 0; kt < stages; ++kt) {
        const Stage st = fill_stage(b, kt);
        for (int warp = 0; warp < kThreads / 32; ++warp) {
            const int wm = warp % kWarpsM, wn = warp / kWarpsM;
            // The lanes' raw weight words and read offsets.
            uint32_t wa[32][kMT][2][4];
            for (int i = 0; i < kMT; ++i)
                for (int h = 0; h < 2; ++h) {
                    std::vector<int> offs;
                    for (int lane = 0; lane < 32; ++lane) {
                        const int g = lane / 4, c = lane % 4;
                        const int off = (qg_warp_row(pair, wm, i) + g + 8 * h) * kWRowBytes + 16 * c;
                        offs.push_back(off);
                        qg_ld128(st.w.data() + off, wa[lane][i][h]);
                    }
                    expect_conflict_free(offs, "weight read");
                }
            double d[kMT][kNT][16][8] = {};
            const int words = q4 ? 4 : 2;  // int4: word w of the lane's 16 bytes; int8: half of the chunk pair
            for (int w = 0; w < words; ++w) {
                uint32_t xv[32][kNT][4];
                for (int j = 0; j < kNT; ++j) {
                    std::vector<int> offs;
                    for (int lane = 0; lane < 32; ++lane) {
                        const int g = lane / 4, c = lane % 4;
                        const int off = qg_x_offset(q4, wn * 64 + 8 * j + g, q4 ? 4 * c + w : 2 * c + w);
                        offs.push_back(off);
                        qg_ld128(st.x.data() + off, xv[lane][j]);
                    }
                    expect_conflict_free(offs, "activation read");
                }
                for (int i = 0; i < kMT; ++i)
                    for (int u = 0; u < 2; ++u) {  // int4: tile 2w + u; int8: tile t = 2 w + u
                        uint32_t af[32][4];
                        uint32_t bfr[kNT][32][2];
                        for (int lane = 0; lane < 32; ++lane) {
                            const int g = lane / 4;
                            if (q4) {
                                const int mat = qg_row_matrix(pair, qg_warp_row(pair, wm, i));
                                const int lr = qg_row_local(pair, qg_warp_row(pair, wm, i));
                                const uint32_t sg = tcfrag::pack_h2(
                                    f32_to_f16(b.scale[mat][lr + g][kt]), f32_to_f16(b.scale[mat][lr + g][kt]));
                                const uint32_t sg8 = tcfrag::pack_h2(
                                    f32_to_f16(b.scale[mat][lr + g + 8][kt]), f32_to_f16(b.scale[mat][lr + g + 8][kt]));
                                uint32_t both[2][4];
                                qg_q4_a_frags(wa[lane][i][0][w], wa[lane][i][1][w], sg, sg8, both);
                                std::memcpy(af[lane], both[u], sizeof af[lane]);
                                for (int j = 0; j < kNT; ++j) {
                                    uint32_t bb[2][2];
                                    qg_q4_b_frags(xv[lane][j], bb);
                                    bfr[j][lane][0] = bb[u][0];
                                    bfr[j][lane][1] = bb[u][1];
                                }
                            } else {
                                const int t = 2 * w + u;
                                tcfrag::q8_a_frag(wa[lane][i][0][t], wa[lane][i][1][t], af[lane]);
                                for (int j = 0; j < kNT; ++j) qg_q8_b_frag(xv[lane][j], t, bfr[j][lane]);
                            }
                        }
                        for (int j = 0; j < kNT; ++j) mma_host(af, bfr[j], d[i][j]);
                    }
            }
            for (int i = 0; i < kMT; ++i)
                for (int j = 0; j < kNT; ++j)
                    for (int r = 0; r < 16; ++r)
                        for (int n = 0; n < 8; ++n)
                            acc[static_cast<size_t>(qg_warp_row(pair, wm, i) + r)][static_cast<size_t>(wn * 64 + 8 * j + n)] +=
                                d[i][j][r][n];
        }
    }
    for (int rr = 0; rr < kBM; ++rr) {
        const int m = qg_row_matrix(pair, rr), lr = qg_row_local(pair, rr);
        for (int tok = 0; tok < kBN; ++tok) {
            double ref = 0.0;
            for (int col = 0; col < b.cols; ++col) {
                const int qv = b.q[m][lr][col];
                const double wv = q4 ? f16r(static_cast<float>(qv) * b.scale[m][lr][col / 128]) : qv;
                ref += wv * f16r(b.x[static_cast<size_t>(tok)][static_cast<size_t>(col)]);
            }
            ASSERT_NEAR(acc[static_cast<size_t>(rr)][static_cast<size_t>(tok)], ref, 1e-9 * (1.0 + std::abs(ref)))
                << (q4 ? "int4" : "int8") << (pair ? " pair" : "") << " shared row " << rr << " token " << tok;
        }
    }
}

TEST(QgemmFrag, Q8BlockProducts) { check_block(false, false); }
TEST(QgemmFrag, Q8PairBlockProducts) { check_block(false, true); }
TEST(QgemmFrag, Q4BlockProducts) { check_block(true, false); }
TEST(QgemmFrag, Q4PairBlockProducts) { check_block(true, true); }

TEST(QgemmFrag, Q4ScaledFragmentsRoundOnce) {
    // q * s rounded once to f16 for every nibble and a spread of scales (normal, tiny, large).
    for (float s : {0.0123f, 1.0f / 7.0f, 3.0e-5f, 250.0f}) {
        const uint16_t sh = f32_to_f16(s);
        const uint32_t s2 = tcfrag::pack_h2(sh, sh);
        for (uint32_t v = 0; v < 16; ++v) {
            const uint32_t w = v * 0x11111111u ^ 0x76543210u;
            uint32_t af[2][4];
            qg_q4_a_frags(w, w, s2, s2, af);
            for (int h = 0; h < 2; ++h)
                for (int r = 0; r < 4; ++r) {
                    // tc_frag::q4_col: fragment element pairs of tile h from word columns.
                    const int e_lo = (r >= 2 ? 2 : 0), e_hi = e_lo + 1;
                    const int col_lo = tcfrag::q4_col(h, e_lo), col_hi = tcfrag::q4_col(h, e_hi);
                    const auto q = [&](int col) { return static_cast<float>(static_cast<int>((w >> (4 * col)) & 15u) - 8); };
                    EXPECT_EQ(lo_f(af[h][r]), f16r(q(col_lo) * f16_to_f32(sh))) << s << " " << v;
                    EXPECT_EQ(hi_f(af[h][r]), f16r(q(col_hi) * f16_to_f32(sh))) << s << " " << v;
                }
        }
    }
}

TEST(QgemmFrag, CpAsyncWritesAreConflictFree) {
    // Weight copies: thread idx -> row idx / 4, chunk idx % 4 (qgemm.cu's loader).
    for (int i = 0; i < 2; ++i)
        for (int warp = 0; warp < 8; ++warp) {
            std::vector<int> offs;
            for (int lane = 0; lane < 32; ++lane) {
                const int idx = warp * 32 + lane + i * kThreads;
                offs.push_back((idx / 4) * kWRowBytes + (idx % 4) * 16);
            }
            expect_conflict_free(offs, "weight cp.async");
        }
    // Activation copies: thread tid -> chunk tid % chunks, row tid / chunks + i * (threads / chunks).
    for (bool q4 : {false, true}) {
        const int chunks = qg_x_chunks(q4);
        for (int i = 0; i < kBN * chunks / kThreads; ++i)
            for (int warp = 0; warp < 8; ++warp) {
                std::vector<int> offs;
                for (int lane = 0; lane < 32; ++lane) {
                    const int tid = warp * 32 + lane;
                    offs.push_back(qg_x_offset(q4, tid / chunks + i * (kThreads / chunks), tid % chunks));
                }
                expect_conflict_free(offs, q4 ? "int4 activation cp.async" : "int8 activation cp.async");
            }
    }
}

TEST(QgemmFrag, SwizzleIsAPermutationOfEachRow) {
    for (bool q4 : {false, true})
        for (int r = 0; r < kBN; ++r) {
            std::set<int> seen;
            for (int ch = 0; ch < qg_x_chunks(q4); ++ch) {
                const int off = qg_x_offset(q4, r, ch) - r * qg_bk(q4) * 2;
                ASSERT_GE(off, 0);
                ASSERT_LT(off, qg_bk(q4) * 2);
                seen.insert(off);
            }
            EXPECT_EQ(static_cast<int>(seen.size()), qg_x_chunks(q4));
        }
}

// Every (expert, row tile, position) exactly once, blocks past the work get no tile, and the order is
// expert, row tile, token tile (fastest). Experts in `skip` get no tile at all.
void check_schedule(const std::vector<int32_t>& counts, int64_t row_tiles, uint64_t skip = 0) {
    std::vector<int32_t> offsets{0};
    for (int32_t c : counts) offsets.push_back(offsets.back() + c);
    const int E = static_cast<int>(counts.size());
    const int64_t positions = offsets.back();
    const int64_t blocks = qg_grid_blocks(positions, E, false, row_tiles, kBN);
    std::map<std::tuple<int, int64_t, int64_t>, int> covered;  // (expert, row tile, position)
    std::tuple<int, int64_t, int64_t> last{-1, -1, -1};
    bool done = false;
    for (int64_t b = 0; b < blocks; ++b) {
        const QgTile t = qg_tile_of(b, offsets.data(), E, 0, row_tiles, kBN, skip);
        if (t.expert < 0) {
            done = true;
            continue;
        }
        ASSERT_FALSE(done) << "a tile after an empty block";
        ASSERT_FALSE((skip >> t.expert) & 1u) << "a tile of skipped expert " << t.expert;
        ASSERT_GE(t.count, 1);
        ASSERT_LE(t.count, kBN);
        ASSERT_GE(t.pos0, offsets[static_cast<size_t>(t.expert)]);
        ASSERT_LE(t.pos0 + t.count, offsets[static_cast<size_t>(t.expert) + 1]);
        ASSERT_LT(t.row_tile, row_tiles);
        const std::tuple<int, int64_t, int64_t> key{t.expert, t.row_tile, t.pos0};
        ASSERT_LT(last, key) << "block " << b << " out of order";
        last = key;
        for (int64_t p = t.pos0; p < t.pos0 + t.count; ++p) ++covered[{t.expert, t.row_tile, p}];
    }
    int64_t total = 0;
    for (const auto& [k, n] : covered) {
        ASSERT_EQ(n, 1);
        ++total;
    }
    int64_t live = 0;
    for (int e = 0; e < E; ++e)
        if (((skip >> e) & 1u) == 0) live += counts[static_cast<size_t>(e)];
    EXPECT_EQ(total, live * row_tiles);
}

TEST(QgemmFrag, ScheduleCoversUnevenExperts) {
    check_schedule({0, 1, 17, 300, 128, 129, 0, 256}, 3);
    check_schedule({0, 0, 0, 5}, 1);
    check_schedule({512, 512, 512, 512, 512, 512, 512, 512}, 224);
    check_schedule({127, 1, 127, 1, 255, 257}, 2);
    std::mt19937 gen(5);
    for (int rep = 0; rep < 20; ++rep) {
        std::vector<int32_t> counts(64);
        for (auto& c : counts) c = static_cast<int32_t>(gen() % 300) * static_cast<int32_t>(gen() % 2);
        check_schedule(counts, 1 + static_cast<int64_t>(gen() % 5));
    }
}

// Prefill with offloaded experts (CudaBackend::moe_experts): the one-launch grouped GEMM skips the host
// experts (run from staged copies in launches of their own), whatever their counts and positions.
TEST(QgemmFrag, ScheduleLeavesOutSkippedExperts) {
    check_schedule({0, 1, 17, 300, 128, 129, 0, 256}, 3, 0b10001000);  // experts 3 and 7
    check_schedule({512, 512, 512, 512, 512, 512, 512, 512}, 224, 0xff);  // all: no tile
    check_schedule({5, 0, 0, 5}, 1, 0b1001);
    std::mt19937 gen(9);
    for (int rep = 0; rep < 20; ++rep) {
        std::vector<int32_t> counts(64);
        for (auto& c : counts) c = static_cast<int32_t>(gen() % 300) * static_cast<int32_t>(gen() % 2);
        const uint64_t skip = (static_cast<uint64_t>(gen()) << 32) ^ gen();
        check_schedule(counts, 1 + static_cast<int64_t>(gen() % 5), skip);
    }
    // No block of a grid sized for all the positions gets a skipped expert's tile.
    std::vector<int32_t> offsets{0, 100, 400, 401};
    for (int64_t b = 0; b < qg_grid_blocks(401, 3, false, 2, kBN); ++b)
        EXPECT_NE(qg_tile_of(b, offsets.data(), 3, 0, 2, kBN, 0b010).expert, 1);
}

TEST(QgemmFrag, PlainScheduleIsExact) {
    for (int64_t n : {int64_t{1}, int64_t{9}, int64_t{128}, int64_t{129}, int64_t{2048}, int64_t{2047}}) {
        const int64_t row_tiles = 5;
        const int64_t blocks = qg_grid_blocks(n, 1, true, row_tiles, kBN);
        EXPECT_EQ(blocks, (n + kBN - 1) / kBN * row_tiles);
        int64_t sum = 0;
        for (int64_t b = 0; b < blocks; ++b) {
            const QgTile t = qg_tile_of(b, nullptr, 1, n, row_tiles, kBN);
            ASSERT_EQ(t.expert, 0);
            sum += t.count;
        }
        EXPECT_EQ(sum, n * row_tiles);
        EXPECT_EQ(qg_tile_of(blocks, nullptr, 1, n, row_tiles, kBN).expert, -1);
    }
}

}  // namespace
}  // namespace hr
