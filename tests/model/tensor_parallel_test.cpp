// Tensor parallel on the CPU (docs/parallel.md): N ranks, each a thread with its own CpuBackend, the
// rank's weights cut by shard_weights, the in-process communicator summing after o_proj and after the
// FFN. Logits of a two-sequence prefill and of two decode steps after it equal the one-device forward's
// within kLogitTol (the partial products are summed in another order), on every rank the same bits.
// Fixtures: tiny-llama (6 q / 2 kv heads: N = 2), tiny-mixtral (4 q / 2 kv heads, 4 experts of 96:
// N = 2, and N = 4 with the KV heads replicated), tiny-qwen2 (q/k/v bias cut by columns), tiny-qwen3
// (q/k norm) and tiny-qwen3-moe (dense and MoE layers); weights as stored (bf16) and int8.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <thread>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/local_communicator.h"
#include "loader/load.h"
#include "model/forward.h"
#include "model/shard.h"
#include "model/shard_weights.h"
#include "support/fixtures.h"

namespace hr {
namespace {

// |logit - one device's| <= kLogitTol * max |one device's logit| of the step. Measured on x86-64 (AVX-512
// path): at most 5.9e-7 relative on these fixtures (only the order of float sums differs); bound 1e-5.
// One rank with a communicator of one is the one-device forward bit for bit.
constexpr double kLogitTol = 1e-5;

constexpr int kBlockSize = 16;
constexpr int64_t kBlocksPerSeq = 2;  // context 32
constexpr int64_t kSeqs = 2;
const StepLimits kLimits{16, kSeqs, kBlocksPerSeq};

// Three steps: both prompts prefilled together (7 and 5 tokens), then two decode steps of one token each.
std::vector<StepBatch> steps(int64_t vocab) {
    std::vector<StepBatch> out;
    const int64_t lens[kSeqs] = {7, 5};
    std::vector<int32_t> block_tables = {0, 1, 2, 3};
    StepBatch pre;
    for (int64_t s = 0; s < kSeqs; ++s) {
        for (int64_t p = 0; p < lens[s]; ++p) {
            pre.token_ids.push_back(static_cast<int32_t>((37 * (s * 11 + p) + 5) % vocab));
            pre.positions.push_back(static_cast<int32_t>(p));
            pre.token_seq.push_back(static_cast<int32_t>(s));
            pre.slot_mapping.push_back(static_cast<int32_t>(block_tables[static_cast<size_t>(s * kBlocksPerSeq)] * kBlockSize + p));
        }
        pre.logit_rows.push_back(static_cast<int32_t>(pre.token_ids.size() - 1));
    }
    pre.block_tables = block_tables;
    out.push_back(pre);
    for (int step = 0; step < 2; ++step) {
        StepBatch d;
        for (int64_t s = 0; s < kSeqs; ++s) {
            const int64_t p = lens[s] + step;
            d.token_ids.push_back(static_cast<int32_t>((101 * (s + 3 * step) + 17) % vocab));
            d.positions.push_back(static_cast<int32_t>(p));
            d.token_seq.push_back(static_cast<int32_t>(s));
            d.slot_mapping.push_back(static_cast<int32_t>(block_tables[static_cast<size_t>(s * kBlocksPerSeq)] * kBlockSize + p));
            d.logit_rows.push_back(static_cast<int32_t>(s));
        }
        d.block_tables = block_tables;
        out.push_back(d);
    }
    return out;
}

// One rank's memory and state; runs the steps and keeps each step's logits.
struct Rank {
    std::unique_ptr<Backend> be = cpu::make_cpu_backend();
    ModelConfig cfg;
    RankWeights w;
    const ModelWeights* weights = nullptr;
    Activations act;
    KvCache kv;
    std::vector<std::shared_ptr<void>> regions;
    std::vector<std::vector<float>> logits;
    Status status;

    Status prepare(const ModelConfig& c, const StepLimits& lim) {
        cfg = c;
        HR_ASSIGN(void* a, be->allocate(activation_bytes(cfg, lim), "activations"));
        regions.emplace_back(a, [b = be.get()](void* p) { b->release(p); });
        act = carve_activations(cfg, lim, a);
        const int64_t n_blocks = kSeqs * kBlocksPerSeq;
        HR_ASSIGN(void* k, be->allocate(kv_cache_bytes(cfg, n_blocks, kBlockSize, DType::f32), "kv"));
        regions.emplace_back(k, [b = be.get()](void* p) { b->release(p); });
        kv = carve_kv_cache(cfg, n_blocks, kBlockSize, DType::f32, k);
        return ok();
    }
    void run(const std::vector<StepBatch>& batches, Communicator* comm) {
        for (const StepBatch& b : batches) {
            status = forward(*be, cfg, *weights, kLimits, act, kv, b, nullptr, comm);
            if (!status.ok()) return;
            std::vector<float> l(static_cast<size_t>(b.logit_rows.size() * cfg.vocab_size));
            be->download(l.data(), act.logits.data, l.size() * sizeof(float));
            logits.push_back(std::move(l));
        }
    }
};

struct Case {
    const char* fixture;
    int ranks;
    std::optional<DType> weights;
};

std::string case_name(const testing::TestParamInfo<Case>& i) {
    std::string n = fmt::format("{}_tp{}_{}", i.param.fixture, i.param.ranks,
                                i.param.weights ? std::string(dtype_name(*i.param.weights)) : std::string("stored"));
    std::replace(n.begin(), n.end(), '-', '_');
    return n;
}

class TensorParallel : public testing::TestWithParam<Case> {};

TEST_P(TensorParallel, LogitsEqualOneDevice) {
    const Case c = GetParam();
    auto host = cpu::make_cpu_backend();
    LoadOptions opts;
    opts.weights = c.weights;
    auto m = load_model(test::model_fixture(c.fixture), *host, opts);
    ASSERT_TRUE(m.ok()) << m.error().message;
    const std::vector<StepBatch> batches = steps(m->cfg.vocab_size);

    // One device: the model as loaded, no communicator.
    Rank one;
    ASSERT_TRUE(one.prepare(m->cfg, kLimits).ok());
    one.weights = &m->weights;
    one.run(batches, nullptr);
    ASSERT_TRUE(one.status.ok()) << one.status.error().message;

    // N ranks.
    auto plan = plan_shards(m->cfg, c.ranks);
    ASSERT_TRUE(plan.ok()) << plan.error().message;
    const ModelConfig local = shard_config(m->cfg, *plan);
    std::vector<Rank> ranks(static_cast<size_t>(c.ranks));
    std::vector<Backend*> raw;
    for (int r = 0; r < c.ranks; ++r) {
        Rank& k = ranks[static_cast<size_t>(r)];
        auto w = shard_weights(m->cfg, *plan, r, m->weights, *k.be);
        ASSERT_TRUE(w.ok()) << w.error().message;
        k.w = std::move(w).value();
        k.weights = &k.w.weights;
        ASSERT_TRUE(k.prepare(local, kLimits).ok());
        raw.push_back(k.be.get());
    }
    auto comms = cpu::make_local_group(raw);
    ASSERT_TRUE(comms.ok());
    std::vector<std::thread> threads;
    for (int r = 0; r < c.ranks; ++r)
        threads.emplace_back([&, r] { ranks[static_cast<size_t>(r)].run(batches, (*comms)[static_cast<size_t>(r)].get()); });
    for (auto& t : threads) t.join();

    for (int r = 0; r < c.ranks; ++r) {
        const Rank& k = ranks[static_cast<size_t>(r)];
        ASSERT_TRUE(k.status.ok()) << "rank " << r << ": " << k.status.error().message;
        ASSERT_EQ(k.logits.size(), batches.size());
        for (size_t s = 0; s < batches.size(); ++s) EXPECT_EQ(k.logits[s], ranks[0].logits[s]) << "rank " << r << " step " << s;
    }
    double worst = 0;
    for (size_t s = 0; s < batches.size(); ++s) {
        const std::vector<float>& want = one.logits[s];
        const std::vector<float>& got = ranks[0].logits[s];
        ASSERT_EQ(got.size(), want.size());
        double scale = 0, err = 0;
        for (size_t i = 0; i < want.size(); ++i) {
            scale = std::max(scale, std::fabs(static_cast<double>(want[i])));
            err = std::max(err, std::fabs(static_cast<double>(got[i]) - want[i]));
        }
        ASSERT_GT(scale, 0.0);
        worst = std::max(worst, err / scale);
        EXPECT_LE(err, kLogitTol * scale) << "step " << s << " (0: prefill, 1-2: decode)";
        if (c.ranks == 1) {
            EXPECT_EQ(got, want) << "step " << s;
        }
    }
    std::printf("[tensor parallel] %s x%d: max logit error %.3g of max |logit|\n", c.fixture, c.ranks, worst);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TensorParallel,
                         testing::Values(Case{"tiny-llama", 2, std::nullopt}, Case{"tiny-mixtral", 1, std::nullopt},
                                         Case{"tiny-llama", 2, DType::q8}, Case{"tiny-mixtral", 2, std::nullopt},
                                         Case{"tiny-mixtral", 4, std::nullopt}, Case{"tiny-mixtral", 2, DType::q8},
                                         Case{"tiny-qwen2", 2, std::nullopt}, Case{"tiny-qwen3", 2, std::nullopt},
                                         Case{"tiny-qwen3-moe", 2, std::nullopt}),
                         case_name);

TEST(TensorParallelWeights, Int4RefusedWhereTheSplitCutsItsGroups) {
    auto host = cpu::make_cpu_backend();
    auto m = load_model(test::model_fixture("tiny-llama"), *host, LoadOptions{.weights = DType::q4});
    ASSERT_TRUE(m.ok()) << m.error().message;
    auto plan = plan_shards(m->cfg, 2);
    ASSERT_TRUE(plan.ok());
    auto be = cpu::make_cpu_backend();
    auto w = shard_weights(m->cfg, *plan, 0, m->weights, *be);
    ASSERT_FALSE(w.ok());
    EXPECT_NE(w.error().message.find("o_proj"), std::string::npos) << w.error().message;
    EXPECT_EQ(be->allocation_count(), 0u);  // refused before anything was allocated
}

TEST(TensorParallelWeights, OneAllocationPerRank) {
    auto host = cpu::make_cpu_backend();
    auto m = load_model(test::model_fixture("tiny-mixtral"), *host, LoadOptions{});
    ASSERT_TRUE(m.ok()) << m.error().message;
    auto plan = plan_shards(m->cfg, 2);
    ASSERT_TRUE(plan.ok());
    auto be = cpu::make_cpu_backend();
    auto w = shard_weights(m->cfg, *plan, 1, m->weights, *be);
    ASSERT_TRUE(w.ok()) << w.error().message;
    EXPECT_EQ(be->allocation_count(), 1u);
    EXPECT_LT(w->bytes, m->weight_bytes);
    const LayerWeights& l = w->weights.layers[0];
    EXPECT_EQ(l.wq.rows, 2 * m->cfg.head_dim);
    EXPECT_EQ(l.wo.cols, 2 * m->cfg.head_dim);
    EXPECT_EQ(l.ew1[0].rows, 48);
    EXPECT_EQ(l.ew2[0].cols, 48);
    EXPECT_EQ(l.router.rows, m->cfg.n_experts);
}

}  // namespace
}  // namespace hr
