// Copy-on-write of KV blocks on the GPU: copy_kv_blocks (Backend::copy_rows, cudaMemcpy2DAsync on the
// stream) moves exactly the bytes the CPU backend moves, also when recorded in a CUDA graph and replayed;
// and score groups whose label sequences copy the prompt's partial block give the scores of each label
// scored on its own (no copy: a one-label group's only label writes in place).
#include <cstring>
#include <numeric>

#include "loader/load.h"
#include "parity_util.h"
#include "runtime/local_engine.h"
#include "support/fixtures.h"

namespace hr::test {
namespace {

ModelConfig kv_config() {
    ModelConfig c;
    c.n_layers = 4;
    c.n_kv_heads = 2;
    c.head_dim = 64;
    return c;
}

std::vector<uint8_t> pattern(size_t n, uint32_t seed) {
    std::vector<uint8_t> p(n);
    for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>((i * 131 + seed) % 251);
    return p;
}

class KvCopyOnGpu : public ::testing::TestWithParam<DType> {};

TEST_P(KvCopyOnGpu, CopiesWhatTheCpuCopiesAlsoFromAGraph) {
    HR_REQUIRE_GPU();
    const DType dt = GetParam();
    const ModelConfig cfg = kv_config();
    constexpr int64_t kBlocks = 8;
    constexpr int kBlockSize = 16;
    const uint64_t bytes = kv_cache_bytes(cfg, kBlocks, kBlockSize, dt);
    const std::vector<KvBlockCopy> copies = {{1, 4}, {4, 6}, {7, 0}};

    cpu::CpuBackend cpu;
    void* host = cpu.allocate(bytes, "kv").value();
    std::vector<uint8_t> start = pattern(bytes, 7);
    std::memcpy(host, start.data(), bytes);
    copy_kv_blocks(cpu, carve_kv_cache(cfg, kBlocks, kBlockSize, dt, host), copies);
    const std::vector<uint8_t> want(static_cast<uint8_t*>(host), static_cast<uint8_t*>(host) + bytes);
    cpu.release(host);

    void* dev = gpu()->allocate(bytes, "kv").value();
    const KvCache kv = carve_kv_cache(cfg, kBlocks, kBlockSize, dt, dev);
    gpu()->upload(dev, start.data(), bytes);
    copy_kv_blocks(*gpu(), kv, copies);
    std::vector<uint8_t> got(bytes);
    gpu()->download(got.data(), dev, bytes);
    EXPECT_TRUE(got == want) << "direct copies differ from the CPU's";

    // Recorded once, replayed: the copies are stream ops without host synchronisation.
    auto graph = gpu()->capture_graph([&] { copy_kv_blocks(*gpu(), kv, copies); });
    ASSERT_TRUE(graph.ok()) << graph.error().message;
    gpu()->upload(dev, start.data(), bytes);
    gpu()->launch_graph(*graph);
    gpu()->synchronize();
    std::fill(got.begin(), got.end(), 0);
    gpu()->download(got.data(), dev, bytes);
    EXPECT_TRUE(got == want) << "replayed copies differ from the CPU's";
    gpu()->release(dev);
}

INSTANTIATE_TEST_SUITE_P(CacheTypes, KvCopyOnGpu, ::testing::Values(DType::f16, DType::i8),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

ScoreOutcome score(Engine& e, const std::vector<int32_t>& prompt, const std::vector<std::vector<int32_t>>& labels) {
    auto r = e.submit_score({prompt, labels});
    if (auto* err = std::get_if<SubmitError>(&r)) {
        ADD_FAILURE() << err->message;
        return {.error = err->message};
    }
    auto& f = std::get<std::future<ScoreOutcome>>(r);
    EXPECT_EQ(f.wait_for(std::chrono::seconds(60)), std::future_status::ready);
    return f.get();
}

TEST(KvCopyOnGpuEngine, LabelsThatCopyThePartialBlockScoreAsEachLabelAlone) {
    HR_REQUIRE_GPU();
    auto m = load_model(model_fixture("tiny-mixtral"), *gpu(), {});
    ASSERT_TRUE(m.ok()) << m.error().message;
    const std::vector<std::vector<int32_t>> labels = {{2961, 2}, {28705, 1300, 2}, {5000, 2}, {42, 43, 44, 45, 2}};
    for (DType kv : {DType::f16, DType::i8}) {
        // No prefix cache: every group computes its prompt, so the two runs differ only by the copies.
        auto le = LocalEngine::start(*gpu(), *m, {.context = 128, .max_seqs = 8, .max_tokens = 64, .n_kv_blocks = 64,
                                                  .kv_dtype = kv, .prefix_caching = false});
        ASSERT_TRUE(le.ok()) << le.error().message;
        Engine& e = (*le)->engine();
        for (int n : {17, 37}) {  // not a multiple of the block size (16): a partial last block
            std::vector<int32_t> prompt{1};
            for (int i = 1; i < n; ++i) prompt.push_back(100 + (i * 37) % 5000);
            const uint64_t copies0 = e.metrics().kv_block_copies.load();
            const ScoreOutcome all = score(e, prompt, labels);
            ASSERT_TRUE(all.error.empty()) << all.error;
            EXPECT_EQ(all.block_copies, static_cast<int64_t>(labels.size()) - 1);
            EXPECT_EQ(e.metrics().kv_block_copies.load() - copies0, labels.size() - 1);
            EXPECT_EQ(all.prompt_forward_tokens, n);
            for (size_t j = 0; j < labels.size(); ++j) {
                const ScoreOutcome alone = score(e, prompt, {labels[j]});
                ASSERT_TRUE(alone.error.empty()) << alone.error;
                EXPECT_EQ(alone.block_copies, 0);
                // Same kernels on other batch shapes: a few ulp of the logits, far under a wrong K/V.
                EXPECT_NEAR(all.logprob[j], alone.logprob[0], 2e-3)
                    << dtype_name(kv) << " prompt " << n << " label " << j;
            }
        }
    }
}

}  // namespace
}  // namespace hr::test
