// Tensor-parallel sharding plan (model/shard.h): ranges per rank, replicated KV heads, the rank-local
// config, and one error per dimension that does not divide.
#include <gtest/gtest.h>

#include "model/builtin_models.h"
#include "model/shard.h"
#include "support/fixtures.h"

namespace hr {
namespace {

ModelConfig mixtral() { return find_builtin_model("mixtral-8x7b")->config; }

ModelConfig small_llama(int64_t heads, int64_t kv, int64_t ffn) {
    ModelConfig c;
    c.vocab_size = 100;
    c.dim = heads * 8;
    c.head_dim = 8;
    c.ffn_dim = ffn;
    c.n_layers = 2;
    c.n_heads = heads;
    c.n_kv_heads = kv;
    c.max_position_embeddings = 128;
    return c;
}

TEST(Shard, OneRankIsTheWholeModel) {
    const ModelConfig c = mixtral();
    auto p = plan_shards(c, 1);
    ASSERT_TRUE(p.ok()) << p.error().message;
    const ModelConfig l = shard_config(c, *p);
    EXPECT_EQ(l.n_heads, c.n_heads);
    EXPECT_EQ(l.n_kv_heads, c.n_kv_heads);
    EXPECT_EQ(l.expert_ffn_dim(), c.expert_ffn_dim());
    const RankShard s = rank_shard(c, *p, 0);
    EXPECT_EQ(s.q_heads.size(), 32);
    EXPECT_EQ(s.expert_ffn.size(), 14336);
}

TEST(Shard, MixtralOnTwoAndEightRanks) {
    const ModelConfig c = mixtral();  // 32 q heads, 8 kv heads, 14336 per expert
    auto p2 = plan_shards(c, 2);
    ASSERT_TRUE(p2.ok());
    EXPECT_EQ(p2->q_heads, 16);
    EXPECT_EQ(p2->kv_heads, 4);
    EXPECT_FALSE(p2->kv_replicated);
    EXPECT_EQ(p2->expert_ffn, 7168);
    EXPECT_EQ(p2->ffn, 0);  // no dense layer
    const RankShard r1 = rank_shard(c, *p2, 1);
    EXPECT_EQ(r1.q_heads.begin, 16);
    EXPECT_EQ(r1.kv_heads.begin, 4);
    EXPECT_EQ(r1.expert_ffn.begin, 7168);
    EXPECT_EQ(r1.expert_ffn.end, 14336);
    const ModelConfig l = shard_config(c, *p2);
    EXPECT_EQ(l.q_dim(), 2048);
    EXPECT_EQ(l.kv_dim(), 512);
    EXPECT_EQ(l.expert_ffn_dim(), 7168);
    EXPECT_EQ(l.dim, c.dim);
    EXPECT_EQ(l.n_experts, c.n_experts);
    auto p8 = plan_shards(c, 8);
    ASSERT_TRUE(p8.ok());
    EXPECT_EQ(p8->kv_heads, 1);
    EXPECT_FALSE(p8->kv_replicated);
}

TEST(Shard, KvHeadsReplicatedWhenFewerThanRanks) {
    const ModelConfig c = small_llama(8, 2, 64);  // groups of 4 q heads
    auto p = plan_shards(c, 4);                    // 2 q heads a rank, inside one group
    ASSERT_TRUE(p.ok()) << p.error().message;
    EXPECT_TRUE(p->kv_replicated);
    EXPECT_EQ(p->kv_heads, 1);
    EXPECT_EQ(rank_shard(c, *p, 0).kv_heads.begin, 0);
    EXPECT_EQ(rank_shard(c, *p, 1).kv_heads.begin, 0);
    EXPECT_EQ(rank_shard(c, *p, 2).kv_heads.begin, 1);
    EXPECT_EQ(rank_shard(c, *p, 3).kv_heads.begin, 1);
}

TEST(Shard, ErrorsNameTheDimension) {
    auto e = [](const ModelConfig& c, int n) {
        auto p = plan_shards(c, n);
        return p.ok() ? std::string("<accepted>") : p.error().message;
    };
    EXPECT_NE(e(small_llama(6, 2, 64), 4).find("num_attention_heads 6"), std::string::npos);
    // 12 heads, 4 kv heads (groups of 3), 6 ranks: 2 q heads a rank straddle groups.
    EXPECT_NE(e(small_llama(12, 4, 96), 6).find("num_key_value_heads 4"), std::string::npos);
    EXPECT_NE(e(small_llama(8, 8, 100), 8).find("intermediate_size 100"), std::string::npos);
    ModelConfig moe = mixtral();
    moe.ffn_dim = 1000;
    moe.moe_ffn_dim = 0;
    EXPECT_NE(e(moe, 16).find("moe_intermediate_size 1000"), std::string::npos);
    EXPECT_NE(e(small_llama(8, 8, 64), 0).find("expected 1 to"), std::string::npos);
    EXPECT_NE(e(small_llama(8, 8, 64), 65).find("expected 1 to"), std::string::npos);
}

TEST(Shard, ColumnBlocksOfQuantizedFormats) {
    const ModelConfig c = small_llama(8, 8, 192);  // 8 heads of 8: wo has 64 columns
    auto p = plan_shards(c, 2);                    // wo: 32 columns a rank, w2: 96
    ASSERT_TRUE(p.ok());
    EXPECT_TRUE(check_shard_format(c, *p, DType::bf16).ok());
    EXPECT_TRUE(check_shard_format(c, *p, DType::q8).ok());
    Status s = check_shard_format(c, *p, DType::q4);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message.find("o_proj"), std::string::npos) << s.error().message;
    EXPECT_TRUE(check_shard_format(mixtral(), *plan_shards(mixtral(), 2), DType::q4).ok());
    EXPECT_TRUE(check_shard_format(mixtral(), *plan_shards(mixtral(), 8), DType::gg_q4_k).ok());
}

TEST(Shard, TinyFixturesSplitInTwo) {
    for (const char* name : {"tiny-llama", "tiny-mixtral", "tiny-qwen2", "tiny-qwen3", "tiny-qwen3-moe"}) {
        auto c = load_model_config(test::model_fixture(name) + "/config.json");
        ASSERT_TRUE(c.ok()) << name;
        EXPECT_TRUE(plan_shards(*c, 2).ok()) << name;
    }
    auto m = load_model_config(test::model_fixture("tiny-mixtral") + "/config.json");
    auto p4 = plan_shards(*m, 4);  // 4 q heads, 2 kv heads: one q head a rank, kv heads replicated
    ASSERT_TRUE(p4.ok()) << p4.error().message;
    EXPECT_TRUE(p4->kv_replicated);
}

}  // namespace
}  // namespace hr
