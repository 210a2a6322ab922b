// Decode steps replayed from recorded graphs (what `serve` does on CUDA) against the same steps with
// every op launched from the host: the logits must be bit-identical (same kernels, same launch shapes),
// through steps of 3, 2 and 1 sequences after a mixed prefill, and replaying allocates nothing.
#include <numeric>

#include "loader/load.h"
#include "parity_util.h"
#include "runtime/forward_runner.h"
#include "support/fixtures.h"

namespace hr::test {
namespace {

constexpr int kBlock = 16;
constexpr int64_t kBlocksPerSeq = 4;  // context 64
constexpr int64_t kSeqs = 3;

struct Rig {
    Backend& be;
    void* act_base = nullptr;
    void* kv_base = nullptr;
    Activations act;
    KvCache kv;
    std::unique_ptr<ForwardRunner> runner;

    Rig(Backend& b, const LoadedModel& m, const StepLimits& lim) : be(b) {
        act_base = be.allocate(activation_bytes(m.cfg, lim), "activations").value();
        const int64_t n_blocks = kSeqs * kBlocksPerSeq;
        kv_base = be.allocate(kv_cache_bytes(m.cfg, n_blocks, kBlock, DType::f16), "kv").value();
        act = carve_activations(m.cfg, lim, act_base);
        kv = carve_kv_cache(m.cfg, n_blocks, kBlock, DType::f16, kv_base);
        runner = std::make_unique<ForwardRunner>(be, m.cfg, m.weights, lim, act, kv);
    }
    ~Rig() {
        be.release(act_base);
        be.release(kv_base);
    }
};

// A step over `seqs` (sequence ids 0..kSeqs-1), tokens[i] appended to seqs[i] at lens[seqs[i]]; every
// token of sequence s goes to its blocks [s * kBlocksPerSeq, ...). Logits of each sequence's last token.
StepBatch step(const std::vector<int64_t>& seqs, const std::vector<std::vector<int32_t>>& tokens,
               std::vector<int32_t>& lens) {
    StepBatch b;
    for (size_t i = 0; i < seqs.size(); ++i) {
        const int64_t s = seqs[i];
        for (int64_t blk = 0; blk < kBlocksPerSeq; ++blk)
            b.block_tables.push_back(static_cast<int32_t>(s * kBlocksPerSeq + blk));
        for (int32_t tok : tokens[i]) {
            const int32_t pos = lens[static_cast<size_t>(s)]++;
            b.token_ids.push_back(tok);
            b.positions.push_back(pos);
            b.token_seq.push_back(static_cast<int32_t>(i));
            b.slot_mapping.push_back(static_cast<int32_t>((s * kBlocksPerSeq + pos / kBlock) * kBlock + pos % kBlock));
        }
        b.logit_rows.push_back(static_cast<int32_t>(b.token_ids.size() - 1));
    }
    return b;
}

int32_t argmax_row(const std::vector<float>& logits, size_t row, int64_t vocab) {
    const float* r = logits.data() + row * static_cast<size_t>(vocab);
    return static_cast<int32_t>(std::max_element(r, r + vocab) - r);
}

TEST(DecodeGraphs, ReplayEqualsDirectLaunch) {
    HR_REQUIRE_GPU();
    Backend& be = *gpu();
    auto m = load_model(model_fixture("tiny-mixtral"), be, {});
    ASSERT_TRUE(m.ok()) << m.error().message;
    const StepLimits lim{.max_tokens = 32, .max_seqs = 4, .max_blocks_per_seq = kBlocksPerSeq};
    Rig direct(be, *m, lim), graphs(be, *m, lim);
    auto recorded = graphs.runner->record_decode_graphs(8);
    ASSERT_TRUE(recorded.ok()) << recorded.error().message;
    EXPECT_EQ(*recorded, 4) << "capped by the step limits' sequences";
    const int64_t vocab = m->cfg.vocab_size;

    std::vector<int32_t> lens_d(kSeqs, 0), lens_g(kSeqs, 0);
    std::vector<float> ld(4 * static_cast<size_t>(vocab)), lg(ld.size());
    // Prefill: three prompts in one step (not decode-shaped: launched op by op in both).
    const std::vector<int64_t> all{0, 1, 2};
    const std::vector<std::vector<int32_t>> prompts{{1, 415, 2936, 9060, 285}, {1, 22557, 28725}, {1, 7, 8, 9, 10, 11, 12}};
    ASSERT_TRUE(direct.runner->run(step(all, prompts, lens_d), ld).ok());
    ASSERT_TRUE(graphs.runner->run(step(all, prompts, lens_g), lg).ok());
    EXPECT_EQ(ld, lg) << "prefill";

    const uint64_t allocs = be.allocation_count();
    // Decode: both get the direct runner's greedy tokens; steps of 3, 2 and 1 sequences.
    const std::vector<std::vector<int64_t>> schedule{{0, 1, 2}, {0, 1, 2}, {0, 1, 2}, {0, 2}, {0, 2}, {1}, {1}};
    std::vector<int32_t> next{argmax_row(ld, 0, vocab), argmax_row(ld, 1, vocab), argmax_row(ld, 2, vocab)};
    for (size_t k = 0; k < schedule.size(); ++k) {
        const auto& seqs = schedule[k];
        std::vector<std::vector<int32_t>> toks;
        for (int64_t s : seqs) toks.push_back({next[static_cast<size_t>(s)]});
        ASSERT_TRUE(direct.runner->run(step(seqs, toks, lens_d), ld).ok());
        ASSERT_TRUE(graphs.runner->run(step(seqs, toks, lens_g), lg).ok());
        const size_t n = seqs.size() * static_cast<size_t>(vocab);
        EXPECT_TRUE(std::equal(ld.begin(), ld.begin() + static_cast<std::ptrdiff_t>(n), lg.begin()))
            << "decode step " << k << " of " << seqs.size() << " sequences";
        for (size_t i = 0; i < seqs.size(); ++i) next[static_cast<size_t>(seqs[i])] = argmax_row(ld, i, vocab);
    }
    EXPECT_EQ(be.allocation_count(), allocs) << "replaying graphs allocated backend memory";
}

}  // namespace
}  // namespace hr::test
