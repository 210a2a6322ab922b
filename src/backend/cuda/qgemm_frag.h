// Index math and fragment assembly of the quantized tensor-core GEMM (qgemm.cu): which tile a block
// computes, where the loader puts each 16-byte chunk in shared memory, and how a lane turns the chunks
// it reads back into mma.m16n8k16 fragments. Plain C++ with __host__ __device__ functions (the pattern
// of tc_frag.h), so tests/unit/quant/qgemm_frag_test.cpp runs this exact code on the host: it rebuilds a
// shared-memory stage, assembles every lane's fragments by the PTX layout, compares the products with a
// plain dot product, and checks that each quarter-warp's 16-byte reads hit eight different bank groups.
//
// Block tile (kThreads = 256, 8 warps as 4 along the weight rows x 2 along the tokens):
//   shared weight rows kBM = 128 per stage, 64 bytes each (int8: 64 columns; int4: 128 columns = one
//   scale group); pair mode (w1, w3 with silu(w1 x) * (w3 x) in the epilogue) stores 64 rows of w1 and
//   the same 64 rows of w3, so one lane holds the gate and the up value of the same (row, token).
//   tokens kBN = 128 per tile, stage row of kBK halves (int8: 64, int4: 128), natural column order,
//   16-byte chunks XOR-swizzled (qg_swizzle).
//   warp (wm, wn): m16 tiles i = 0, 1 at shared rows qg_warp_row(pair, wm, i); n8 tiles j = 0..7 at tokens
//   64 wn + 8 j.
// A fragments (weights): lane (g, c) reads bytes [16 c, 16 c + 16) of rows g and g + 8 (LDS.128 each) and
// decodes them with tc_frag.h's bit tricks, so the mma's k order is tc_frag's permutation of the real
// columns. B fragments (activations) take the same real columns: int8 reads the chunk as is; int4 pairs
// columns (b, b + 4) of each 8 with one PRMT per register (qg_q4_b_frags).
#pragma once

#include <cstdint>
#include <cstring>

#include "backend/cuda/tc_frag.h"

namespace hr::qgemm {

constexpr int kThreads = 256;
constexpr int kWarpsM = 4;
constexpr int kWarpsN = 2;
constexpr int kBM = 128;        // shared weight rows per stage
constexpr int kBN = 128;        // tokens per tile
constexpr int kWRowBytes = 64;  // weight bytes per shared row and stage
constexpr int kMT = 2;          // m16 tiles per warp
constexpr int kNT = 8;          // n8 tiles per warp (64 tokens)
static_assert(kWarpsM * kMT * 16 == kBM && kWarpsN * kNT * 8 == kBN, "warp tiling covers the block tile");

// Columns per stage: int8 64, int4 128 (one scale group); 16-byte activation chunks per token row.
HR_TC_FN constexpr int qg_bk(bool q4) { return q4 ? 128 : 64; }
HR_TC_FN constexpr int qg_x_chunks(bool q4) { return qg_bk(q4) / 8; }
// Output rows of one block tile: pair mode 64 (w1 and w3 share the shared rows), else 128.
HR_TC_FN constexpr int qg_out_rows(bool pair) { return pair ? kBM / 2 : kBM; }

// Physical 16-byte chunk of logical chunk ch in token row r of a stage. A lane (g, c) reads chunk 2c + h
// (int8, rows 128 bytes apart) or 4c + w (int4, rows 256 bytes apart) of token row 8 j + g; one
// quarter-warp is g in {0, 1}, c in 0..3. Without the swizzle c and c + 2 (int4) or rows g, g + 1 (int8)
// share a bank group; XOR 2 on chunks 8..15 and XOR 1 on odd rows give eight distinct groups.
HR_TC_FN int qg_swizzle(int r, int ch) { return ch ^ (((ch >> 3) & 1) << 1) ^ (r & 1); }

// Byte offset of chunk ch of token row r in a stage's activation tile.
HR_TC_FN int qg_x_offset(bool q4, int r, int ch) { return r * qg_bk(q4) * 2 + qg_swizzle(r, ch) * 16; }

// Shared weight row of m16 tile i of warp row wm. Pair mode: tile 0 = w1 rows, tile 1 = the same w3 rows.
HR_TC_FN int qg_warp_row(bool pair, int wm, int i) { return pair ? i * (kBM / 2) + wm * 16 : wm * 32 + i * 16; }

// Matrix (0 = w1 or the only one, 1 = w3) and row within the block's output rows of shared row rr.
HR_TC_FN int qg_row_matrix(bool pair, int rr) { return pair ? rr / (kBM / 2) : 0; }
HR_TC_FN int qg_row_local(bool pair, int rr) { return pair ? rr % (kBM / 2) : rr; }

// 16 bytes at p as four words (LDS.128 on the device).
HR_TC_FN void qg_ld128(const uint8_t* p, uint32_t v[4]) {
#if defined(__CUDA_ARCH__)
    const uint4 u = *reinterpret_cast<const uint4*>(p);
    v[0] = u.x;
    v[1] = u.y;
    v[2] = u.z;
    v[3] = u.w;
#else
    std::memcpy(v, p, 16);
#endif
}

// a * b per half.
HR_TC_FN uint32_t qg_h2_mul(uint32_t a, uint32_t b) {
#if defined(__CUDA_ARCH__)
    const __half2 r = __hmul2(*reinterpret_cast<const __half2*>(&a), *reinterpret_cast<const __half2*>(&b));
    return *reinterpret_cast<const uint32_t*>(&r);
#else
    return tcfrag::pack_h2(f32_to_f16(f16_to_f32(tcfrag::lo_h(a)) * f16_to_f32(tcfrag::lo_h(b))),
                           f32_to_f16(f16_to_f32(tcfrag::hi_h(a)) * f16_to_f32(tcfrag::hi_h(b))));
#endif
}

// --- int8 -----------------------------------------------------------------------------------------------
// k-tile t (0..3) of a stage: A from word t of the lane's 16 bytes of rows g (wg) and g + 8 (wg8) is
// tc_frag::q8_a_frag; B from chunk 2c + t / 2 of the token's row, words 2 (t % 2) and 2 (t % 2) + 1.
HR_TC_FN void qg_q8_b_frag(const uint32_t x[4], int t, uint32_t bf[2]) {
    bf[0] = x[2 * (t % 2)];
    bf[1] = x[2 * (t % 2) + 1];
}

// --- int4 -----------------------------------------------------------------------------------------------
// Word w (0..3) of the lane's 16 bytes covers real columns 32 c + 8 w .. + 7, k-tiles 2 w and 2 w + 1.
// A: tc_frag::q4_a_frags (pairs (q_b, q_{b+4})), each half multiplied by the row's group scale in f16
// (sg for row g, sg8 for row g + 8, the scale's f16 bits in both halves): one rounding of q * s.
HR_TC_FN void qg_q4_a_frags(uint32_t wg, uint32_t wg8, uint32_t sg, uint32_t sg8, uint32_t af[2][4]) {
    tcfrag::q4_a_frags(wg, wg8, af);
    HR_TC_UNROLL
    for (int h = 0; h < 2; ++h) {
        af[h][0] = qg_h2_mul(af[h][0], sg);
        af[h][1] = qg_h2_mul(af[h][1], sg8);
        af[h][2] = qg_h2_mul(af[h][2], sg);
        af[h][3] = qg_h2_mul(af[h][3], sg8);
    }
}

// B of k-tiles 2 w + h from the token's chunk 4 c + w in natural order (x[0] = columns 0, 1, ...):
// tile 2 w pairs columns (0, 4) and (1, 5), tile 2 w + 1 pairs (2, 6) and (3, 7), as tc_frag::q4_col.
HR_TC_FN void qg_q4_b_frags(const uint32_t x[4], uint32_t bf[2][2]) {
    bf[0][0] = tcfrag::byte_perm(x[0], x[2], 0x5410u);
    bf[0][1] = tcfrag::byte_perm(x[0], x[2], 0x7632u);
    bf[1][0] = tcfrag::byte_perm(x[1], x[3], 0x5410u);
    bf[1][1] = tcfrag::byte_perm(x[1], x[3], 0x7632u);
}

// --- tiles ------------------------------------------------------------------------------------------------
// The block's work: expert, row tile, and the token positions [pos0, pos0 + count) (sorted by expert).
struct QgTile {
    int expert = -1;  // -1: no tile (the grid covers the worst case; such blocks exit)
    int64_t row_tile = 0;
    int64_t pos0 = 0;
    int count = 0;
};

// Block b of a grid ordered expert by expert, then row tile, then token tile (fastest), so that the blocks
// running together share an expert's rows (read from memory once, from L2 by the other token tiles) and
// its activations. offsets [n_experts + 1] (device memory in the kernel), or null: one group of n_plain
// positions. An expert with no tokens (or offsets out of order) has no tiles, nor has an expert e < 64
// with bit e of `skip` set (offloaded experts the caller runs from staged copies in launches of their own:
// read in place over the host link, every token tile re-read them).
HR_TC_FN QgTile qg_tile_of(int64_t b, const int32_t* offsets, int n_experts, int64_t n_plain, int64_t row_tiles,
                           int bn, uint64_t skip = 0) {
    QgTile t;
    int64_t cum = 0;
    for (int e = 0; e < n_experts; ++e) {
        const int64_t c0 = offsets ? offsets[e] : 0;
        const int64_t c1 = offsets ? offsets[e + 1] : n_plain;
        if (c1 <= c0 || (e < 64 && ((skip >> e) & 1u) != 0)) continue;
        const int64_t tiles = (c1 - c0 + bn - 1) / bn;
        const int64_t nb = tiles * row_tiles;
        if (b < cum + nb) {
            const int64_t local = b - cum;
            const int64_t j = local % tiles;
            t.expert = e;
            t.row_tile = local / tiles;
            t.pos0 = c0 + j * bn;
            const int64_t left = c1 - t.pos0;
            t.count = static_cast<int>(left < bn ? left : bn);
            return t;
        }
        cum += nb;
    }
    return t;
}

// Blocks that cover every split of `positions` pairs among n_experts experts (each expert's last tile
// may be partial: at most one extra tile per expert), or exactly the tiles of one plain group.
HR_TC_FN int64_t qg_grid_blocks(int64_t positions, int n_experts, bool plain, int64_t row_tiles, int bn) {
    const int64_t tiles = (positions + bn - 1) / bn + (plain ? 0 : n_experts);
    return tiles * row_tiles;
}

}  // namespace hr::qgemm
