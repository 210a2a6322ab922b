// copy_kv_blocks (the copy-on-write of a shared KV block) on the CPU backend: every layer's k, v and, for
// a quantized cache, scales of the source block land in the destination block; nothing else changes;
// copies apply in order (a later copy reads what an earlier one wrote).
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/kv_quant.h"
#include "model/forward.h"

namespace hr {
namespace {

ModelConfig tiny_config() {
    ModelConfig c;
    c.n_layers = 3;
    c.n_kv_heads = 2;
    c.head_dim = 8;
    return c;
}

// Bytes of one block in each part of each layer, in part order (k, v, k_scale, v_scale).
std::vector<std::pair<const uint8_t*, size_t>> block_slices(const KvCache& kv, int32_t block) {
    std::vector<std::pair<const uint8_t*, size_t>> out;
    for (const KvLayer& l : kv.layers) {
        for (const Tensor* t : {&l.k, &l.v, &l.k_scale, &l.v_scale}) {
            if (!t->data) continue;
            const size_t bb = t->bytes() / static_cast<size_t>(kv.n_blocks);
            out.emplace_back(static_cast<const uint8_t*>(t->data) + static_cast<size_t>(block) * bb, bb);
        }
    }
    return out;
}

std::vector<uint8_t> block_bytes(const KvCache& kv, int32_t block) {
    std::vector<uint8_t> out;
    for (auto [p, n] : block_slices(kv, block)) out.insert(out.end(), p, p + n);
    return out;
}

class KvCopy : public ::testing::TestWithParam<DType> {};

TEST_P(KvCopy, CopiesEveryLayerAndPartOfABlockAndNothingElse) {
    const DType dt = GetParam();
    const ModelConfig cfg = tiny_config();
    constexpr int64_t kBlocks = 6;
    constexpr int kBlockSize = 4;
    cpu::CpuBackend be;
    const uint64_t bytes = kv_cache_bytes(cfg, kBlocks, kBlockSize, dt);
    void* base = be.allocate(bytes, "kv").value();
    // A different byte everywhere (the padding too), so a misplaced copy shows.
    auto* p = static_cast<uint8_t*>(base);
    for (uint64_t i = 0; i < bytes; ++i) p[i] = static_cast<uint8_t>((i * 131 + 7) % 251);
    KvCache kv = carve_kv_cache(cfg, kBlocks, kBlockSize, dt, base);
    ASSERT_EQ(kv.layers[0].k_scale.data != nullptr, is_quantized_kv(dt));

    std::vector<std::vector<uint8_t>> before;
    for (int32_t b = 0; b < kBlocks; ++b) before.push_back(block_bytes(kv, b));
    const std::vector<uint8_t> whole_before(p, p + bytes);
    // 1 -> 4, then 4 -> 5: block 5 ends up with block 1's contents too.
    const std::vector<KvBlockCopy> copies = {{1, 4}, {4, 5}};
    copy_kv_blocks(be, kv, copies);
    EXPECT_EQ(block_bytes(kv, 4), before[1]);
    EXPECT_EQ(block_bytes(kv, 5), before[1]);
    for (int32_t b : {0, 1, 2, 3}) EXPECT_EQ(block_bytes(kv, b), before[static_cast<size_t>(b)]) << "block " << b;
    // Outside blocks 4 and 5 of each part, not one byte moved (alignment padding included).
    std::vector<uint8_t> expect = whole_before;
    for (int32_t b : {4, 5}) {
        auto dst = block_slices(kv, b);
        auto src = block_slices(kv, 1);
        for (size_t i = 0; i < dst.size(); ++i) {
            std::memcpy(expect.data() + (dst[i].first - p), whole_before.data() + (src[i].first - p), dst[i].second);
        }
    }
    EXPECT_EQ(std::vector<uint8_t>(p, p + bytes), expect);
    be.release(base);
}

INSTANTIATE_TEST_SUITE_P(CacheTypes, KvCopy, ::testing::Values(DType::f32, DType::f16, DType::i8),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(KvCopy, ForwardRefusesACopyOutsideTheCache) {
    ModelConfig cfg = tiny_config();
    cfg.vocab_size = 8;
    cpu::CpuBackend be;
    void* base = be.allocate(kv_cache_bytes(cfg, 4, 4, DType::f32), "kv").value();
    KvCache kv = carve_kv_cache(cfg, 4, 4, DType::f32, base);
    StepLimits lim;
    lim.max_tokens = 4;
    lim.max_seqs = 1;
    lim.max_blocks_per_seq = 4;
    StepBatch b;
    b.token_ids = {0};
    b.positions = {0};
    b.token_seq = {0};
    b.slot_mapping = {0};
    b.block_tables = {0, 0, 0, 0};
    b.logit_rows = {0};
    for (KvBlockCopy bad : {KvBlockCopy{0, 4}, KvBlockCopy{-1, 2}, KvBlockCopy{2, 2}}) {
        b.block_copies = {bad};
        Activations act;  // never reached: validation fails first
        auto r = forward_upload(be, cfg, lim, act, kv, b);
        ASSERT_FALSE(r.ok());
        EXPECT_NE(r.error().message.find("block copy"), std::string::npos) << r.error().message;
    }
    be.release(base);
}

}  // namespace
}  // namespace hr
